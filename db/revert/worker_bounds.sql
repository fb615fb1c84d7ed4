-- Revert memoriesdb:worker_bounds from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.config WHERE key IN ('embedding_max_batch_size', 'embedding_max_lease_seconds');
COMMIT;
