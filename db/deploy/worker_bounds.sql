-- Deploy memoriesdb:worker_bounds to pg
-- requires: config
-- Run once: the caps on what one claim of the embedding queue may take, so that no worker
-- (misconfigured or hostile) can lease every job of every tenant, or hold jobs for a century.
-- claim_embedding_jobs() and renew_embedding_leases() (embedding_queue.sql) read them and refuse
-- (MDB12) a request past them. A worker that needs longer renews its leases while it works.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('embedding_max_batch_size', '256', 'most embedding jobs one claim_embedding_jobs() call may lease; a larger batch_size is refused (MDB12)'),
  ('embedding_max_lease_seconds', '900', 'longest lease, in seconds, that claim_embedding_jobs() grants or renew_embedding_leases() extends to; a longer one is refused (MDB12). A worker that needs longer renews its leases while it works');

COMMIT;
