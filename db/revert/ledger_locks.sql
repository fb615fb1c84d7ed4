-- Revert memoriesdb:ledger_locks from pg
BEGIN;
DROP TABLE memoriesdb_internal.vindexing_lock;
DROP TABLE memoriesdb_internal.audit_seal_lock;
COMMIT;
