-- Verify memoriesdb:memory_transfers on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb.memory_transfers'::regclass AND relrowsecurity AND relforcerowsecurity;
ROLLBACK;
