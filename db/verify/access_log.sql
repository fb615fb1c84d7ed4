-- Verify memoriesdb:access_log on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_trigger WHERE tgname = 'append_only' AND tgrelid = 'memoriesdb.access_log'::regclass;
SELECT 1/(NOT has_table_privilege('memoriesdb_app', 'memoriesdb.access_log', 'insert,select'))::int;
SELECT 1/(NOT has_table_privilege('memoriesdb_app', 'memoriesdb.access_log_sink', 'select'))::int;
SELECT 1/has_table_privilege('memoriesdb_auditor', 'memoriesdb.access_log', 'select')::int;
SELECT 1/(NOT has_schema_privilege('memoriesdb_app', 'memoriesdb_dblink', 'usage'))::int;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text)', 'execute'))::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.access_history(uuid, timestamptz)', 'execute')::int;
SELECT 1/count(*) FROM memoriesdb.access_log_sink AS s JOIN pg_catalog.pg_roles AS r ON r.rolname = s.logger_role;
ROLLBACK;
