-- Verify memoriesdb:embedding_queue on pg
BEGIN;
SELECT 'memoriesdb_internal.enqueue_embedding()'::regprocedure;
SELECT 'memoriesdb_internal.notify_embedding()'::regprocedure;
SELECT 'memoriesdb.claim_embedding_jobs(integer, interval, text)'::regprocedure;
SELECT 'memoriesdb.claim_model_embedding_jobs(integer, interval, text, text[])'::regprocedure;
SELECT 'memoriesdb_internal.check_embedding(public.vector)'::regprocedure;
SELECT 'memoriesdb.complete_embedding_job(uuid, uuid, public.vector, text)'::regprocedure;
SELECT 'memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text)'::regprocedure;
SELECT 'memoriesdb.fail_embedding_job(uuid, uuid, text, boolean)'::regprocedure;
SELECT 'memoriesdb.release_embedding_jobs(uuid[], uuid[])'::regprocedure;
SELECT 'memoriesdb.renew_embedding_leases(uuid[], uuid[], interval)'::regprocedure;
SELECT 'memoriesdb_internal.checked_lease(interval)'::regprocedure;
SELECT 'memoriesdb.reclaim_expired_embedding_leases()'::regprocedure;
SELECT 'memoriesdb.requeue_dead_embedding_jobs()'::regprocedure;
SELECT 'memoriesdb.requeue_dead_embedding_jobs(uuid[])'::regprocedure;
SELECT 'memoriesdb.embedding_queue_status()'::regprocedure;
SELECT 'memoriesdb.dead_embedding_jobs(integer)'::regprocedure;
SELECT 'memoriesdb.embedding_models()'::regprocedure;
SELECT 'memoriesdb.defer_embedding_jobs(uuid[], uuid[], text, interval)'::regprocedure;
SELECT 'memoriesdb.embedding_queue_health()'::regprocedure;
-- a claim past the batch cap is refused (MDB12) before any job is touched
DO $$
BEGIN
  PERFORM memoriesdb.claim_embedding_jobs(2147483647);
  RAISE EXCEPTION 'claim_embedding_jobs took a batch past embedding_max_batch_size';
EXCEPTION WHEN SQLSTATE 'MDB12' THEN NULL;
END
$$;
ROLLBACK;
