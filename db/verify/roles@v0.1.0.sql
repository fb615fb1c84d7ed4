-- Verify memoriesdb:roles on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_roles
 WHERE rolname IN ('memoriesdb_owner', 'memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor')
HAVING count(*) = 4;
SELECT 1/(NOT rolcanlogin)::int FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_owner';
ROLLBACK;
