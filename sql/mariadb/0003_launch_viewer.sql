-- launch_viewer, shaped like SWAMP's assessment.launch_viewer: creates or reuses the
-- viewer_instance row of (viewer version, project) and runs launchviewer with the results'
-- files, package and source. Unlike SWAMP's, no command line is built: the options go to
-- the vrun_launchviewer UDF as a JSON array of names and values, each of which becomes one
-- argument (no shell). NULL options are left out, as SWAMP's were.
-- return_string: 'SUCCESS', launchviewer's ERROR line, or 'Error Launching Viewer'.
-- return_url: the row's proxy_url when the viewer was already up (else the portal polls).
-- Call it with autocommit on: launchviewer reads the row through its own connection.

DELIMITER //
CREATE OR REPLACE PROCEDURE launch_viewer(
  IN  assessment_result_uuid_in VARCHAR(5000),
  IN  user_uuid_in              VARCHAR(45),
  IN  viewer_version_uuid_in    VARCHAR(45),
  IN  project_uuid_in           VARCHAR(45),
  OUT return_url                VARCHAR(1000),
  OUT return_string             VARCHAR(4000),
  OUT viewer_instance_uuid_out  VARCHAR(45))
proc: BEGIN
  DECLARE viewer_name_var VARCHAR(100) DEFAULT NULL;
  DECLARE instance_var    VARCHAR(45) DEFAULT NULL;
  DECLARE args_var        LONGTEXT;
  DECLARE rest_var        VARCHAR(5000);
  DECLARE result_var      VARCHAR(45);
  DECLARE file_var        VARCHAR(1000);
  DECLARE package_var     VARCHAR(100);
  DECLARE tool_var        VARCHAR(100);
  DECLARE source_var      VARCHAR(1000);
  DECLARE type_var        VARCHAR(45);
  DECLARE found_var       INT DEFAULT 0;
  DECLARE output_var      TEXT;

  SET return_url = NULL, return_string = NULL, viewer_instance_uuid_out = NULL;
  SELECT name INTO viewer_name_var FROM viewer_version WHERE viewer_version_uuid = viewer_version_uuid_in;
  IF viewer_name_var IS NULL THEN
    SET return_string = 'ERROR unknown viewer version';
    LEAVE proc;
  END IF;

  -- One row per pair, however many calls arrive together (the unique key decides).
  INSERT IGNORE INTO viewer_instance
    (viewer_instance_uuid, viewer_version_uuid, project_uuid, status, status_code, create_user, create_date, update_date)
    VALUES (UUID(), viewer_version_uuid_in, project_uuid_in, 'Launching viewer', 1, user_uuid_in, NOW(), NOW());
  SELECT viewer_instance_uuid INTO instance_var FROM viewer_instance
    WHERE viewer_version_uuid = viewer_version_uuid_in AND project_uuid = project_uuid_in;
  SET viewer_instance_uuid_out = instance_var;

  SET args_var = JSON_ARRAY('viewer_name', viewer_name_var, 'project', project_uuid_in, 'viewer_uuid', instance_var);
  SET rest_var = assessment_result_uuid_in;
  WHILE rest_var IS NOT NULL AND rest_var <> '' DO
    SET result_var = TRIM(SUBSTRING_INDEX(rest_var, ',', 1));
    SET rest_var = IF(LOCATE(',', rest_var) > 0, SUBSTRING(rest_var, LOCATE(',', rest_var) + 1), '');
    SET file_var = NULL;
    SELECT file_path, package_name, tool_name, source_archive_path, package_type
      INTO file_var, package_var, tool_var, source_var, type_var
      FROM assessment_result WHERE assessment_result_uuid = result_var AND project_uuid = project_uuid_in;
    IF file_var IS NULL THEN
      SET return_string = CONCAT('ERROR no assessment result ', result_var, ' in project ', project_uuid_in);
      LEAVE proc;
    END IF;
    SET args_var = JSON_MERGE_PRESERVE(args_var, JSON_ARRAY('file_path', file_var));
    SET found_var = found_var + 1;
  END WHILE;
  IF found_var = 0 THEN
    SET return_string = 'ERROR no assessment results given';
    LEAVE proc;
  END IF;
  SET args_var = JSON_MERGE_PRESERVE(args_var, JSON_ARRAY(
    'package', package_var, 'tool_name', tool_var, 'source_archive_path', source_var,
    'package_type', type_var, 'user_uuid', user_uuid_in));

  SET output_var = vrun_launchviewer(args_var);
  IF output_var IS NULL THEN
    SET return_string = 'Error Launching Viewer';
  ELSEIF UPPER(output_var) LIKE '%ERROR%' THEN
    SET return_string = output_var;
    -- launchviewer records run-time failures itself; a refused invocation it does not
    -- (it touches nothing then), so the row would say "Launching viewer" for ever.
    UPDATE viewer_instance
      SET status = LEFT(CONCAT('Unable to launch viewer: ', TRIM(LEADING 'ERROR ' FROM output_var)), 1000),
          status_code = -5, update_date = NOW()
      WHERE viewer_instance_uuid = instance_var AND NOT (status_code <=> 2);
  ELSE
    SET return_string = 'SUCCESS';
  END IF;
  SELECT proxy_url INTO return_url FROM viewer_instance WHERE viewer_instance_uuid = instance_var;
END //
DELIMITER ;
