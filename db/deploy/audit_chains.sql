-- Deploy memoriesdb:audit_chains to pg
-- requires: audit_log@v0.4.0
-- requires: identity
-- requires: ledger_locks
-- Run once. Per-owner audit chains (issue 14): an audit row belongs to the chain of the owner it
-- is about (audit_log.chain); rows about no owner (users, config, seeded edge types) to the common chain
-- 00000000-0000-0000-0000-000000000000. A committing transaction seals each chain it touched; the
-- seals of one transaction name each other (peers). No lock is shared between chains: a seal locks
-- its chain's row in audit_chain_heads. Rows and seals written before this change (chain NULL) are
-- the legacy single chain, frozen and still verified as before. The function bodies: audit_log.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

ALTER TABLE memoriesdb.audit_log ADD COLUMN chain uuid;
COMMENT ON COLUMN memoriesdb.audit_log.chain IS
  'The chain the row belongs to: the owner the row is about (a memory''s owner, a key''s or offer''s user), 00000000-0000-0000-0000-000000000000 for rows about no owner (users, config, the edge types the deploy seeds; an edge type a user creates is in the creator''s chain); NULL for rows written before per-owner chains (the legacy single chain). Covered by row_hash.';

ALTER TABLE memoriesdb.audit_seals
  ADD COLUMN chain uuid,
  ADD COLUMN chain_seq bigint CHECK (chain_seq > 0),
  ADD COLUMN peers jsonb,
  ADD CONSTRAINT audit_seals_chain_position CHECK ((chain IS NULL) = (chain_seq IS NULL));
COMMENT ON COLUMN memoriesdb.audit_seals.chain IS
  'The chain this seal extends (see audit_log.chain); NULL: the legacy single chain of the rows written before per-owner chains, ordered by seq.';
COMMENT ON COLUMN memoriesdb.audit_seals.chain_seq IS 'The seal''s position in its chain (1, 2, ...); prev_hash is the seal_hash of the position before it, or the chain''s genesis.';
COMMENT ON COLUMN memoriesdb.audit_seals.peers IS
  'The other seals of the same transaction ([{"chain": ..., "seq": ...}], e.g. both owners of a transfer): each names the others, so neither side can be removed alone.';
COMMENT ON COLUMN memoriesdb.audit_seals.seq IS
  'Unique number of the seal. Legacy chain: its position (1, 2, ... without gaps). Per-owner chains: from a sequence, with gaps; their position is chain_seq.';
CREATE UNIQUE INDEX audit_seals_chain_seq ON memoriesdb.audit_seals (chain, chain_seq) WHERE chain IS NOT NULL;
-- the legacy chain's seals by position, without walking past the newer chains' seals
CREATE INDEX audit_seals_legacy ON memoriesdb.audit_seals (seq) WHERE chain IS NULL;

-- the seq of a per-owner chain's seal: unique, no lock shared between chains
CREATE SEQUENCE memoriesdb_internal.audit_seal_seq AS bigint;
SELECT setval('memoriesdb_internal.audit_seal_seq', coalesce(max(seq), 0) + 1, false) FROM memoriesdb.audit_seals;
COMMENT ON SEQUENCE memoriesdb_internal.audit_seal_seq IS 'The seq of seals of per-owner chains (after the legacy chain''s last).';

CREATE TABLE memoriesdb_internal.audit_chain_heads (
  chain     uuid PRIMARY KEY,
  chain_seq bigint NOT NULL CHECK (chain_seq >= 0),
  seal_hash bytea NOT NULL
);
COMMENT ON TABLE memoriesdb_internal.audit_chain_heads IS
  'One row per chain: its newest seal (position and hash). A seal locks its chain''s row from the seal to the end of the commit: what serialises one chain and nothing else. A cache and a lock, never trusted by verification (which reads audit_seals).';
ALTER TABLE memoriesdb_internal.audit_chain_heads ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_chain_heads_owner ON memoriesdb_internal.audit_chain_heads TO memoriesdb_owner USING (true) WITH CHECK (true);

-- which ledger a checkpoint belongs to
CREATE TABLE memoriesdb_internal.ledger_identity (
  only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  ledger_id uuid NOT NULL DEFAULT gen_random_uuid()
);
COMMENT ON TABLE memoriesdb_internal.ledger_identity IS 'One row: the ledger''s id, named by every audit checkpoint (fixed at deploy; kept by dump/restore).';
ALTER TABLE memoriesdb_internal.ledger_identity ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY ledger_identity_owner ON memoriesdb_internal.ledger_identity TO memoriesdb_owner USING (true) WITH CHECK (true);
INSERT INTO memoriesdb_internal.ledger_identity DEFAULT VALUES;

COMMENT ON TABLE memoriesdb_internal.audit_seal_lock IS
  'No rows. Unused since per-owner chains (v0.5): the legacy chain''s lock, kept so a revert to v0.4 finds it. Each chain now locks its row in audit_chain_heads.';

COMMIT;
