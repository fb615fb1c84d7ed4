-- Verify memoriesdb:config on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb.config'::regclass AND relrowsecurity AND relforcerowsecurity;
SELECT 1/(memoriesdb.setting('embedding_dim')::int > 0)::int;
ROLLBACK;
