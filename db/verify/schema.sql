-- Verify memoriesdb:schema on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_namespace
 WHERE nspname = 'memoriesdb' AND nspowner = 'memoriesdb_owner'::regrole;
SELECT 1/(NOT has_schema_privilege('public', 'memoriesdb', 'usage'))::int;
ROLLBACK;
