-- Verify memoriesdb:reader_policies on pg
BEGIN;
SELECT 1/(count(*) = 6)::int FROM pg_catalog.pg_policies
 WHERE schemaname = 'memoriesdb' AND roles @> ARRAY['memoriesdb_app', 'memoriesdb_reader']::name[];
ROLLBACK;
