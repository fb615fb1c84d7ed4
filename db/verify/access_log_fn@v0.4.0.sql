-- Verify memoriesdb:access_log_fn on pg
BEGIN;
SELECT 'memoriesdb_internal.record_read(text, uuid[], bytea)'::regprocedure, 'memoriesdb_internal.record_refusal(text, uuid)'::regprocedure;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text)', 'execute'))::int;
SELECT 1/count(*) FROM memoriesdb.access_log_sink AS s JOIN pg_catalog.pg_roles AS r ON r.rolname = s.logger_role;
SELECT 'memoriesdb_internal.append_access_entry(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea)'::regprocedure,
       'memoriesdb_internal.write_access_entry(text, uuid[], bytea, text, text)'::regprocedure,
       'memoriesdb_internal.log_read(text, uuid[], bytea)'::regprocedure;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb_internal.record_refusal(text, uuid)', 'execute'))::int;
SELECT 1/count(*) FROM memoriesdb.access_log_sink AS s
 WHERE has_function_privilege(s.logger_role, 'memoriesdb_internal.append_access_entry(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea)', 'execute')
   AND NOT has_table_privilege(s.logger_role, 'memoriesdb.access_log_sink', 'select');
ROLLBACK;
