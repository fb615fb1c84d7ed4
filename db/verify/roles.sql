-- Verify memoriesdb:roles on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_roles
 WHERE rolname IN ('memoriesdb_owner', 'memoriesdb_reader', 'memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor')
HAVING count(*) = 5;
SELECT 1/(NOT rolcanlogin AND NOT rolbypassrls AND NOT rolsuper)::int FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_backend';
SELECT 1/(NOT rolcanlogin AND rolbypassrls)::int FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_owner';
SELECT 1/(NOT rolcanlogin AND NOT rolbypassrls)::int FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_reader';
ROLLBACK;
