-- Verify memoriesdb:idempotency_keys on pg
BEGIN;
SELECT owner_id, key, memory_id, created_at, created_by, updated_at, updated_by FROM memoriesdb.idempotency_keys WHERE false;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb.idempotency_keys'::regclass AND relrowsecurity AND relforcerowsecurity;
SELECT 1/count(*) FROM pg_catalog.pg_index
 WHERE indrelid = 'memoriesdb.idempotency_keys'::regclass AND indisprimary AND indnatts = 2;
ROLLBACK;
