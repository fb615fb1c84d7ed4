-- Revert memoriesdb:audit_chains from pg
-- Destructive for history written since: rows of per-owner chains lose their chain and stop verifying.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

COMMENT ON TABLE memoriesdb_internal.audit_seal_lock IS
  'No rows. audit_seal_now() holds an EXCLUSIVE lock on it from a transaction''s seal to the end of its commit: the one serialised step of auditing.';

DROP TABLE memoriesdb_internal.ledger_identity, memoriesdb_internal.audit_chain_heads;
DROP SEQUENCE memoriesdb_internal.audit_seal_seq;
DROP INDEX memoriesdb.audit_seals_chain_seq, memoriesdb.audit_seals_legacy;
ALTER TABLE memoriesdb.audit_seals DROP CONSTRAINT audit_seals_chain_position,
  DROP COLUMN peers, DROP COLUMN chain_seq, DROP COLUMN chain;
ALTER TABLE memoriesdb.audit_log DROP COLUMN chain;
COMMENT ON COLUMN memoriesdb.audit_seals.seq IS NULL;

COMMIT;
