-- Revert memoriesdb:audit_pending from pg
-- Rows still waiting for their seal stay unsealed (verification of the reverted version names them).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP VIEW memoriesdb.audit_waiting;
DROP TABLE memoriesdb_internal.audit_pending;
COMMIT;
