-- Verify memoriesdb:access_log on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_trigger WHERE tgname = 'append_only' AND tgrelid = 'memoriesdb.access_log'::regclass;
SELECT 1/(c.relrowsecurity AND c.relforcerowsecurity)::int FROM pg_catalog.pg_class AS c WHERE c.oid = 'memoriesdb.access_log_sink'::regclass;
SELECT 1/(NOT has_schema_privilege('memoriesdb_app', 'memoriesdb_dblink', 'usage'))::int;
SELECT 1/count(*) FROM memoriesdb.config WHERE key = 'access_log_reads';
ROLLBACK;
