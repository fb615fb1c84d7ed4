-- Verify memoriesdb:memory_grants on pg
BEGIN;
SELECT 'memoriesdb_internal.access_level(uuid, uuid)'::regprocedure;
SELECT 1/(strpos(prosrc, 'statement_timestamp()') > 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.access_level(uuid, uuid)'::regprocedure;
ROLLBACK;
