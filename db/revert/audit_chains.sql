-- Revert memoriesdb:audit_chains from pg
-- Destructive for history written since: rows of per-owner chains lose their chain and stop verifying.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP TABLE memoriesdb_internal.ledger_identity, memoriesdb_internal.audit_chain_heads;
DROP SEQUENCE memoriesdb_internal.audit_seal_seq;
DROP INDEX memoriesdb.audit_seals_chain_seq;
ALTER TABLE memoriesdb.audit_seals DROP CONSTRAINT audit_seals_chain_position,
  DROP COLUMN peers, DROP COLUMN chain_seq, DROP COLUMN chain;
ALTER TABLE memoriesdb.audit_log DROP COLUMN chain;
COMMENT ON COLUMN memoriesdb.audit_seals.seq IS NULL;

COMMIT;
