-- Deploy memoriesdb:lease_clock to pg
-- requires: embedding_queue@v0.3.0
-- Run once: when the current lease of an embedding job was claimed. lease_until moves with every
-- renewal, so it cannot tell a batch stuck for an hour (on a hung provider, its worker still
-- renewing) from one claimed a second ago; embedding_queue_health() (embedding_queue.sql) reports
-- the oldest claim, its holder and the last provider error from it, for `memoriesdb status`.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

ALTER TABLE memoriesdb.embedding_schedule ADD COLUMN leased_at timestamptz;
COMMENT ON COLUMN memoriesdb.embedding_schedule.leased_at IS
  'When the current lease was claimed (claim_embedding_jobs); renewals keep it. NULL when not leased (or leased by a worker older than v0.4).';

COMMIT;
