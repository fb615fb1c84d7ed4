-- Verify memoriesdb:worker_bounds on pg
BEGIN;
SELECT 1/(count(*) = 2)::int FROM memoriesdb.config
 WHERE key IN ('embedding_max_batch_size', 'embedding_max_lease_seconds') AND jsonb_typeof(value) = 'number' AND value::int > 0;
ROLLBACK;
