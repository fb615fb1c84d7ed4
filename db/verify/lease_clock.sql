-- Verify memoriesdb:lease_clock on pg
BEGIN;
SELECT leased_at FROM memoriesdb.embedding_schedule WHERE false;
SELECT 1/count(*) FROM pg_attribute
 WHERE attrelid = 'memoriesdb.embedding_schedule'::regclass AND attname = 'leased_at' AND atttypid = 'timestamptz'::regtype;
ROLLBACK;
