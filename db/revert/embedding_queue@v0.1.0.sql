-- Revert memoriesdb:embedding_queue from pg
BEGIN;
DROP FUNCTION memoriesdb.embedding_models();
DROP FUNCTION memoriesdb.dead_embedding_jobs(integer);
DROP FUNCTION memoriesdb.embedding_queue_status();
DROP FUNCTION memoriesdb.requeue_dead_embedding_jobs();
DROP FUNCTION memoriesdb.reclaim_expired_embedding_leases();
DROP FUNCTION memoriesdb.release_embedding_jobs(uuid[], uuid[]);
DROP FUNCTION memoriesdb.fail_embedding_job(uuid, uuid, text, boolean);
DROP FUNCTION memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text);
DROP FUNCTION memoriesdb.complete_embedding_job(uuid, uuid, public.vector, text);
DROP FUNCTION memoriesdb.check_embedding(public.vector);
DROP FUNCTION memoriesdb.claim_embedding_jobs(integer, interval, text);
DROP TRIGGER enqueue_embedding_on_revise ON memoriesdb.memories;
DROP TRIGGER enqueue_embedding ON memoriesdb.memories;
DROP TABLE memoriesdb.embedding_schedule;
DROP FUNCTION memoriesdb.notify_embedding();
DROP FUNCTION memoriesdb.enqueue_embedding();
COMMIT;
