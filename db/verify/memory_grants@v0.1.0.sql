-- Verify memoriesdb:memory_grants on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb.memory_grants'::regclass AND relrowsecurity AND relforcerowsecurity;
SELECT 1/count(*) FROM pg_catalog.pg_policies
 WHERE schemaname = 'memoriesdb' AND tablename = 'memories' AND policyname = 'memories_visible' AND qual LIKE '%memory_grants%';
ROLLBACK;
