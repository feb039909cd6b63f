-- The UDF through which launch_viewer runs launchviewer (udf/, libvrun_udf.so in the
-- server's plugin_dir). Global to the server, like every UDF; it runs as the server's user.
CREATE OR REPLACE FUNCTION vrun_launchviewer RETURNS STRING SONAME 'libvrun_udf.so';
