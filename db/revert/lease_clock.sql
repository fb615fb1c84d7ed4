-- Revert memoriesdb:lease_clock from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
ALTER TABLE memoriesdb.embedding_schedule DROP COLUMN leased_at;
COMMIT;
