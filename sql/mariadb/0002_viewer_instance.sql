-- SWAMP's tables that launch_viewer reads and writes, with the columns it uses
-- (../shared/reference/swamp-vrun.md). A real SWAMP database has them already, with more
-- columns; launchviewer only UPDATEs status, status_code, vm_ip_address, proxy_url and
-- update_date of viewer_instance.

CREATE TABLE IF NOT EXISTS viewer_version (
  viewer_version_uuid VARCHAR(45) NOT NULL PRIMARY KEY,
  name                VARCHAR(100) NOT NULL
);
INSERT IGNORE INTO viewer_version (viewer_version_uuid, name) VALUES
  ('5d0fb63c-865a-11e3-88bb-001a4a81450b', 'CodeDX'),
  ('b0e931d7-bfb2-11e5-bf72-001a4a814413', 'ThreadFix');

-- What an assessment run left: its results file and the package it assessed.
CREATE TABLE IF NOT EXISTS assessment_result (
  assessment_result_uuid VARCHAR(45) NOT NULL PRIMARY KEY,
  project_uuid           VARCHAR(45) NOT NULL,
  file_path              VARCHAR(1000) NOT NULL,
  package_name           VARCHAR(100),
  tool_name              VARCHAR(100),
  source_archive_path    VARCHAR(1000),
  package_type           VARCHAR(45)
);

-- One row per (viewer version, project): what the portal polls until proxy_url appears.
CREATE TABLE IF NOT EXISTS viewer_instance (
  viewer_instance_uuid VARCHAR(45) NOT NULL PRIMARY KEY,
  viewer_version_uuid  VARCHAR(45) NOT NULL,
  project_uuid         VARCHAR(45) NOT NULL,
  status               VARCHAR(1000),
  status_code          INT,
  vm_ip_address        VARCHAR(100),
  proxy_url            VARCHAR(1000),
  create_user          VARCHAR(45),
  create_date          DATETIME,
  update_date          DATETIME,
  UNIQUE KEY viewer_instance_pair (viewer_version_uuid, project_uuid)
);
