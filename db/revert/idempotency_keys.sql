-- Revert memoriesdb:idempotency_keys from pg
BEGIN;
DROP TABLE memoriesdb.idempotency_keys;
COMMIT;
