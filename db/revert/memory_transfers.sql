-- Revert memoriesdb:memory_transfers from pg
BEGIN;
DROP TABLE memoriesdb.memory_transfers;
COMMIT;
