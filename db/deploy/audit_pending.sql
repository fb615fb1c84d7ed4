-- Deploy memoriesdb:audit_pending to pg
-- requires: audit_chains
-- Run once. Seals that wait for their chain (issue 13: no tenant's open transaction holds up another's
-- commit). A committing transaction seals each chain it touched under that chain's row lock in
-- audit_chain_heads, taken with SKIP LOCKED: when another transaction holds the chain (one that fired its
-- seal early with SET CONSTRAINTS ALL IMMEDIATE and stays open, say), the commit does not wait: its rows
-- of that chain are listed here and sealed later, in the chain's order, by the next transaction that
-- locks the chain (its owner's next write) or by memoriesdb.audit_seal_pending() (the runner, the anchor).
-- Verification counts a listed (transaction, chain) as waiting, not as rows inserted behind the ledger.
-- The functions: audit_log.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb_internal.audit_pending (
  chain      uuid NOT NULL,
  txid       xid8 NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (chain, txid)
);
COMMENT ON TABLE memoriesdb_internal.audit_pending IS
  'The (chain, transaction) pairs whose audit rows are committed but not yet sealed: the chain was locked by another transaction at their commit, which did not wait for it. Sealed (and removed from here) by the next transaction that locks the chain, or by memoriesdb.audit_seal_pending(). Only the ledger''s functions write it.';
ALTER TABLE memoriesdb_internal.audit_pending ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE INDEX audit_pending_txid ON memoriesdb_internal.audit_pending (txid);  -- a transaction's other chains (peers)
-- a chain's oldest waiting pairs, the few each sealer adopts, without sorting all of them (a tenant who
-- holds another's chain can leave many waiting in it: a sort of all of them in every commit of its owner)
CREATE INDEX audit_pending_order ON memoriesdb_internal.audit_pending (chain, created_at, txid);
CREATE POLICY audit_pending_owner ON memoriesdb_internal.audit_pending TO memoriesdb_owner USING (true) WITH CHECK (true);

-- what an auditor verifying outside the database (memoriesdb verify-audit --recompute) needs to tell
-- rows that wait for their seal from rows inserted behind the ledger
CREATE VIEW memoriesdb.audit_waiting AS
  SELECT w.chain, w.txid, w.created_at AS since FROM memoriesdb_internal.audit_pending AS w;
COMMENT ON VIEW memoriesdb.audit_waiting IS
  'The (chain, transaction) pairs whose audit rows are committed and wait for their seal (their chain was held at their commit): memoriesdb_internal.audit_pending, for the auditor.';

COMMIT;
