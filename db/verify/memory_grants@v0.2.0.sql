-- Verify memoriesdb:memory_grants on pg
BEGIN;
SELECT 'memoriesdb_internal.access_level(uuid, uuid)'::regprocedure;
ROLLBACK;
