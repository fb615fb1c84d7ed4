-- Revert memoriesdb:embedding_queue from pg: restores the bodies of embedding_queue@v0.4.0
-- Reworked after @v0.3.0 (released version: embedding_queue@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: embedding_queue@v0.2.0
-- requires: worker_bounds
-- Live functions of the embedding queue: Enqueue trigger, NOTIFY, and the worker API: claim, renew, complete, fail, release, reclaim, requeue, status.
-- v0.3: a claim may take at most embedding_max_batch_size jobs for at most embedding_max_lease_seconds
-- (config, worker_bounds.sql), and a live worker renews its leases (renew_embedding_leases) instead
-- of asking for a long one.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework embedding_queue`.
-- Run once, by embedding_queue@v0.1.0.sql: table embedding_schedule, its index, policy and the triggers on memories. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP FUNCTION memoriesdb.requeue_dead_embedding_jobs(uuid[]);
DROP FUNCTION memoriesdb.claim_model_embedding_jobs(integer, interval, text, text[]);
DROP FUNCTION memoriesdb_internal.check_embedding(public.vector, integer);

-- enqueue ------------------------------------------------------------------
CREATE OR REPLACE FUNCTION memoriesdb_internal.enqueue_embedding() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO memoriesdb.embedding_schedule AS s (memory_id, content_hash)
  VALUES (NEW.id, NEW.content_hash)
  ON CONFLICT (memory_id) DO UPDATE
     SET content_hash = EXCLUDED.content_hash, attempts = 0, run_after = now(),
         last_error = NULL, dead_at = NULL;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.enqueue_embedding() IS
  'Trigger: a new memory or new content puts (or refreshes) the memory''s one embedding job. A job already leased keeps its lease; its completion will find the content changed and re-queue it.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.notify_embedding() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pg_notify('memoriesdb_embedding', '');  -- identical payloads fold into one per transaction
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.notify_embedding() IS
  'Trigger: NOTIFY memoriesdb_embedding when jobs become ready, so that listening workers wake at once (one notification per transaction).';

-- worker functions -----------------------------------------------------------
CREATE OR REPLACE FUNCTION memoriesdb_internal.checked_lease(lease interval) RETURNS interval
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cap numeric := (memoriesdb.setting('embedding_max_lease_seconds'))::numeric;
  secs numeric := trim_scale(extract(epoch FROM lease));
BEGIN
  IF lease IS NULL OR secs <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'lease must be a positive interval';
  END IF;
  IF cap IS NULL OR secs > cap THEN   -- no cap configured: refuse rather than grant any lease
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'lease is longer than a claim may hold',
      DETAIL = format('asked for a lease of %s seconds (%s); the cap is %s', secs, lease, coalesce(trim_scale(cap) || ' seconds', 'not set')),
      HINT = format('ask for at most %s seconds (config embedding_max_lease_seconds) and renew the lease with renew_embedding_leases() while the batch is worked on',
                    coalesce(trim_scale(cap)::text, '(not set)'));
  END IF;
  -- counted in seconds, so the lease held is the one checked: now() + '1 year -31556700 s'
  -- would be a day or more, not the 900 s the cap counts it as
  RETURN make_interval(secs => secs);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.checked_lease(interval) IS
  'The lease a worker asked for, as the number of seconds it counts for (extract(epoch)); MDB12 unless it is positive and at most config embedding_max_lease_seconds.';

CREATE OR REPLACE FUNCTION memoriesdb.claim_embedding_jobs(batch_size integer DEFAULT 32,
                                               lease interval DEFAULT '5 minutes',
                                               worker text DEFAULT NULL)
RETURNS TABLE (memory_id uuid, lease_id uuid, content text, content_hash bytea, attempts integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  max_attempts integer := memoriesdb.setting('max_attempts')::int;
  max_batch integer := memoriesdb.setting('embedding_max_batch_size')::int;
  held interval;
  ids uuid[];
  leases uuid[];
  hashes bytea[];
  tries integer[];
BEGIN
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'batch_size must be at least 1';
  END IF;
  IF max_batch IS NULL OR batch_size > max_batch THEN   -- no cap configured: refuse rather than lease the whole queue
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'batch_size is larger than a claim may take',
      DETAIL = format('asked for %s jobs; the cap is %s', batch_size, coalesce(max_batch::text, 'not set')),
      HINT = format('claim at most %s jobs at a time (config embedding_max_batch_size)', coalesce(max_batch::text, '(not set)'));
  END IF;
  held := memoriesdb_internal.checked_lease(lease);
  -- the batch is leased first, then its contents are on the access log as this
  -- worker login's read (one entry per claim), then returned: MDB22 (and no
  -- lease, the claim rolls back) when the entry cannot be written
  WITH ready AS (
    SELECT s.memory_id FROM memoriesdb.embedding_schedule AS s
     WHERE s.dead_at IS NULL AND s.run_after <= now() AND s.attempts < max_attempts
       AND (s.lease_until IS NULL OR s.lease_until < now())   -- an expired lease is free again
     ORDER BY s.run_after
     LIMIT batch_size
     FOR UPDATE SKIP LOCKED
  ), leased AS (
    UPDATE memoriesdb.embedding_schedule AS s
       SET lease_id = gen_random_uuid(), lease_until = now() + held, leased_hash = s.content_hash,
           leased_by = worker, leased_at = now(), attempts = s.attempts + 1
      FROM ready WHERE s.memory_id = ready.memory_id
    RETURNING s.memory_id, s.lease_id, s.leased_hash, s.attempts
  )
  SELECT array_agg(l.memory_id ORDER BY l.memory_id), array_agg(l.lease_id ORDER BY l.memory_id),
         array_agg(l.leased_hash ORDER BY l.memory_id), array_agg(l.attempts ORDER BY l.memory_id)
    INTO ids, leases, hashes, tries
    FROM leased AS l;
  IF cardinality(ids) > 0 THEN
    PERFORM memoriesdb_internal.log_read('claim_embedding_jobs', ids, NULL);
  END IF;
  RETURN QUERY
  SELECT j.mid, j.lid, m.content, j.h, j.a
    FROM unnest(ids, leases, hashes, tries) AS j(mid, lid, h, a) JOIN memoriesdb.memories AS m ON m.id = j.mid;
END
$$;
COMMENT ON FUNCTION memoriesdb.claim_embedding_jobs(integer, interval, text) IS
  'Worker: leases up to batch_size ready jobs (FOR UPDATE SKIP LOCKED, so concurrent workers never share a job) and returns their content, after writing one access log entry for the batch (function claim_embedding_jobs, the memory ids, the worker''s login; MDB22 and no claim when it cannot be written). A worker that dies loses nothing: once the lease expires another worker claims the job again. batch_size may be at most config embedding_max_batch_size and the lease at most embedding_max_lease_seconds (MDB12 past either): a worker that needs longer renews its leases with renew_embedding_leases().';

CREATE OR REPLACE FUNCTION memoriesdb.renew_embedding_leases(memory_ids uuid[], lease_ids uuid[],
                                                 lease interval DEFAULT '5 minutes')
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  held interval;
  renewed integer;
BEGIN
  IF cardinality(memory_ids) IS DISTINCT FROM cardinality(lease_ids) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids and lease_ids must have the same length';
  END IF;
  held := memoriesdb_internal.checked_lease(lease);
  -- only a lease that is still this claim's: its lease_id, and not expired (an expired lease is
  -- nobody's: another worker may claim the job at any moment, so it cannot be taken back)
  UPDATE memoriesdb.embedding_schedule AS s
     SET lease_until = now() + held
    FROM unnest(memory_ids, lease_ids) AS j(mid, lid)
   WHERE s.memory_id = j.mid AND s.lease_id = j.lid AND s.lease_until >= now() AND s.dead_at IS NULL;
  GET DIAGNOSTICS renewed = ROW_COUNT;
  RETURN renewed;
END
$$;
COMMENT ON FUNCTION memoriesdb.renew_embedding_leases(uuid[], uuid[], interval) IS
  'Worker heartbeat: extends the leases of a claim still being worked on to lease from now (at most config embedding_max_lease_seconds, MDB12 past it). Only leases that are still this claim''s are renewed: the matching lease_id, not yet expired. Returns how many were renewed; fewer than asked means the others were lost (expired, re-claimed, released, or the memory forgotten).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_embedding(embedding public.vector) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  dim integer;
  norm double precision;
BEGIN
  SELECT a.atttypmod INTO dim FROM pg_catalog.pg_attribute AS a
   WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding';
  IF embedding IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB11', MESSAGE = 'embedding is NULL';
  END IF;
  IF public.vector_dims(embedding) <> dim THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB11', MESSAGE = 'embedding has the wrong dimension',
      DETAIL = format('expected %s dimensions, got %s', dim, public.vector_dims(embedding)),
      HINT = 'the model must match the dimension chosen at deploy time (sqitch variable embedding_dim)';
  END IF;
  norm := public.vector_norm(embedding);
  IF norm = 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB11', MESSAGE = 'embedding is the zero vector', HINT = 'a zero vector has no direction; cosine similarity is undefined';
  END IF;
  IF norm IN ('NaN'::float8, 'Infinity'::float8) THEN   -- NaN = NaN in PostgreSQL
    RAISE EXCEPTION USING ERRCODE = 'MDB11', MESSAGE = 'embedding contains NaN or infinite values';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_embedding(public.vector) IS
  'Raises MDB11 unless the vector has the deployed dimension, is finite and is not zero.';

CREATE OR REPLACE FUNCTION memoriesdb.complete_embedding_job(memory_id uuid, lease_id uuid,
                                                 embedding public.vector, model text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  job memoriesdb.embedding_schedule;
  stored integer;
BEGIN
  SELECT * INTO job FROM memoriesdb.embedding_schedule AS s
   WHERE s.memory_id = complete_embedding_job.memory_id AND s.lease_id = complete_embedding_job.lease_id
   FOR UPDATE;
  IF job.memory_id IS NULL THEN
    RETURN 'lease_lost';   -- expired and re-leased, released, or the memory was forgotten
  END IF;
  PERFORM memoriesdb_internal.check_embedding(complete_embedding_job.embedding);
  IF complete_embedding_job.model IS NULL OR btrim(complete_embedding_job.model) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'model name is required';
  END IF;
  -- stored only if the content is still the one that was embedded
  UPDATE memoriesdb.memories AS m
     SET embedding = public.l2_normalize(complete_embedding_job.embedding),
         embedding_model = complete_embedding_job.model,
         embedded_at = now(), embedded_hash = job.leased_hash
   WHERE m.id = job.memory_id AND m.content_hash = job.leased_hash;
  GET DIAGNOSTICS stored = ROW_COUNT;
  IF stored = 1 AND job.content_hash = job.leased_hash THEN
    DELETE FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id = job.memory_id;
    RETURN 'stored';
  END IF;
  -- the content changed after the claim: the job goes back to the queue
  UPDATE memoriesdb.embedding_schedule AS s
     SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL,
         attempts = 0, run_after = now()
   WHERE s.memory_id = job.memory_id;
  RETURN CASE WHEN stored = 1 THEN 'stored_requeued' ELSE 'stale' END;
END
$$;
COMMENT ON FUNCTION memoriesdb.complete_embedding_job(uuid, uuid, public.vector, text) IS
  'Worker: stores a leased job''s embedding (L2-normalised) with its model name, only if the memory''s content hash still matches the one claimed; otherwise the vector is discarded and the job re-queued (stale). Returns stored, stored_requeued, stale or lease_lost. MDB11 for a wrong-dimension, NaN or zero vector.';

CREATE OR REPLACE FUNCTION memoriesdb.complete_embedding_jobs(memory_ids uuid[], lease_ids uuid[],
                                                  embeddings public.vector[], model text)
RETURNS TABLE (memory_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  bad integer;
BEGIN
  IF cardinality(memory_ids) IS DISTINCT FROM cardinality(lease_ids)
     OR cardinality(memory_ids) IS DISTINCT FROM cardinality(embeddings) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids, lease_ids and embeddings must have the same length';
  END IF;
  IF model IS NULL OR btrim(model) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'model name is required';
  END IF;
  -- every vector checked first (MDB11 names the first bad one); then the whole
  -- batch in four set-based statements instead of four per job
  SELECT min(u.i)::integer INTO bad FROM unnest(embeddings) WITH ORDINALITY AS u(e, i)
   WHERE u.e IS NULL OR public.vector_dims(u.e) <> (SELECT a.atttypmod FROM pg_catalog.pg_attribute AS a
                                                   WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding')
      OR public.vector_norm(u.e) IN (0, 'NaN'::float8, 'Infinity'::float8);
  IF bad IS NOT NULL THEN
    PERFORM memoriesdb_internal.check_embedding(embeddings[bad]);
  END IF;
  RETURN QUERY
  WITH input AS (
    SELECT u.mid, u.lid, u.emb FROM unnest(memory_ids, lease_ids, embeddings) AS u(mid, lid, emb)
  ), job AS (
    SELECT s.memory_id, s.content_hash, s.leased_hash, i.emb
      FROM memoriesdb.embedding_schedule AS s JOIN input AS i ON i.mid = s.memory_id AND i.lid = s.lease_id
     FOR UPDATE OF s
  ), stored AS (
    -- stored only if the content is still the one that was embedded
    UPDATE memoriesdb.memories AS m
       SET embedding = public.l2_normalize(j.emb), embedding_model = model, embedded_at = now(), embedded_hash = j.leased_hash
      FROM job AS j
     WHERE m.id = j.memory_id AND m.content_hash = j.leased_hash
    RETURNING m.id
  ), finished AS (
    DELETE FROM memoriesdb.embedding_schedule AS s
     USING job AS j
     WHERE s.memory_id = j.memory_id AND j.content_hash = j.leased_hash AND j.memory_id IN (SELECT st.id FROM stored AS st)
    RETURNING s.memory_id
  ), requeued AS (
    -- the content changed after the claim: back to the queue for the new content
    UPDATE memoriesdb.embedding_schedule AS s
       SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL, attempts = 0, run_after = now()
      FROM job AS j
     WHERE s.memory_id = j.memory_id AND NOT (j.content_hash = j.leased_hash AND j.memory_id IN (SELECT st.id FROM stored AS st))
    RETURNING s.memory_id
  )
  SELECT i.mid,
         CASE WHEN i.mid IN (SELECT f.memory_id FROM finished AS f) THEN 'stored'
              WHEN i.mid IN (SELECT st.id FROM stored AS st) THEN 'stored_requeued'
              WHEN i.mid IN (SELECT r.memory_id FROM requeued AS r) THEN 'stale'
              ELSE 'lease_lost' END
    FROM input AS i;
END
$$;
COMMENT ON FUNCTION memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text) IS
  'Worker: complete_embedding_job() for a whole batch in one round trip and a few set-based statements; returns each job''s outcome (stored, stored_requeued, stale, lease_lost). MDB11 for any bad vector (nothing of the batch is stored then).';

CREATE OR REPLACE FUNCTION memoriesdb.fail_embedding_job(memory_id uuid, lease_id uuid, error text,
                                             permanent boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  job memoriesdb.embedding_schedule;
  base double precision := memoriesdb.setting('backoff_base_seconds')::float8;
  cap  double precision := memoriesdb.setting('backoff_max_seconds')::float8;
BEGIN
  SELECT * INTO job FROM memoriesdb.embedding_schedule AS s
   WHERE s.memory_id = fail_embedding_job.memory_id AND s.lease_id = fail_embedding_job.lease_id
   FOR UPDATE;
  IF job.memory_id IS NULL THEN RETURN 'lease_lost'; END IF;
  IF permanent OR job.attempts >= memoriesdb.setting('max_attempts')::int THEN
    UPDATE memoriesdb.embedding_schedule AS s
       SET dead_at = now(), last_error = left(coalesce(error, 'unknown error'), 4000),
           lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL
     WHERE s.memory_id = job.memory_id;
    RETURN 'dead';
  END IF;
  -- exponential backoff with jitter: base * 2^(attempts-1), capped
  UPDATE memoriesdb.embedding_schedule AS s
     SET last_error = left(coalesce(error, 'unknown error'), 4000),
         run_after = now() + make_interval(secs => least(cap, base * 2 ^ (job.attempts - 1)) * (0.75 + random() / 2)),
         lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL
   WHERE s.memory_id = job.memory_id;
  RETURN 'retry';
END
$$;
COMMENT ON FUNCTION memoriesdb.fail_embedding_job(uuid, uuid, text, boolean) IS
  'Worker: records a failed attempt. Permanent errors, and the last allowed attempt (config max_attempts), make the job dead with its error kept; others are retried after an exponential backoff. Returns retry, dead or lease_lost.';

CREATE OR REPLACE FUNCTION memoriesdb.release_embedding_jobs(memory_ids uuid[], lease_ids uuid[]) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH released AS (
    UPDATE memoriesdb.embedding_schedule AS s
       SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL,
           attempts = greatest(s.attempts - 1, 0), run_after = now()
      FROM unnest(memory_ids, lease_ids) AS j(mid, lid)
     WHERE s.memory_id = j.mid AND s.lease_id = j.lid
    RETURNING 1)
  SELECT count(*)::int FROM released
$$;
COMMENT ON FUNCTION memoriesdb.release_embedding_jobs(uuid[], uuid[]) IS
  'Worker: gives leased jobs back unworked (a worker stopping on SIGTERM); the attempt is not counted.';

CREATE OR REPLACE FUNCTION memoriesdb.defer_embedding_jobs(memory_ids uuid[], lease_ids uuid[], error text,
                                               delay interval DEFAULT '30 seconds')
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cap double precision := memoriesdb.setting('backoff_max_seconds')::float8;
  secs double precision := greatest(0, least(coalesce(extract(epoch FROM delay)::float8, 0), cap));
  deferred integer;
BEGIN
  IF cardinality(memory_ids) IS DISTINCT FROM cardinality(lease_ids) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids and lease_ids must have the same length';
  END IF;
  -- the attempt the claim counted is taken back: the provider never saw these jobs
  UPDATE memoriesdb.embedding_schedule AS s
     SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL,
         attempts = greatest(s.attempts - 1, 0), run_after = now() + make_interval(secs => secs),
         last_error = left(coalesce(error, 'provider unreachable'), 4000)
    FROM unnest(memory_ids, lease_ids) AS j(mid, lid)
   WHERE s.memory_id = j.mid AND s.lease_id = j.lid;
  GET DIAGNOSTICS deferred = ROW_COUNT;
  RETURN deferred;
END
$$;
COMMENT ON FUNCTION memoriesdb.defer_embedding_jobs(uuid[], uuid[], text, interval) IS
  'Worker: gives leased jobs back when the provider could not be reached at all (connection refused, DNS failure, connect timeout): the attempt is not counted, so an outage of the provider does not turn jobs dead; the error is kept (status shows it) and the jobs wait delay (at most config backoff_max_seconds). Only leases still this claim''s; returns how many were deferred.';

CREATE OR REPLACE FUNCTION memoriesdb.reclaim_expired_embedding_leases() RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH expired AS (
    UPDATE memoriesdb.embedding_schedule AS s
       SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL,
           dead_at = CASE WHEN s.attempts >= memoriesdb.setting('max_attempts')::int THEN now() END,
           last_error = CASE WHEN s.attempts >= memoriesdb.setting('max_attempts')::int
                             THEN format('lease expired on each of %s attempts (worker died or hung)', s.attempts)
                             ELSE s.last_error END
     WHERE s.lease_until < now()
    RETURNING 1)
  SELECT count(*)::int FROM expired
$$;
COMMENT ON FUNCTION memoriesdb.reclaim_expired_embedding_leases() IS
  'Worker: frees jobs whose lease expired (their worker died); a job that used up its attempts this way becomes dead. claim_embedding_jobs() also takes expired leases, so this is housekeeping, not a requirement.';

CREATE OR REPLACE FUNCTION memoriesdb.requeue_dead_embedding_jobs() RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH revived AS (
    UPDATE memoriesdb.embedding_schedule AS s SET dead_at = NULL, attempts = 0, run_after = now()
     WHERE s.dead_at IS NOT NULL RETURNING 1)
  SELECT count(*)::int FROM revived
$$;
COMMENT ON FUNCTION memoriesdb.requeue_dead_embedding_jobs() IS 'Operator: puts every dead job back in the queue (after fixing the provider); last_error is kept until the next attempt.';

CREATE OR REPLACE FUNCTION memoriesdb.embedding_queue_status()
RETURNS TABLE (pending bigint, leased bigint, dead bigint, oldest_pending timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT count(*) FILTER (WHERE s.dead_at IS NULL AND (s.lease_until IS NULL OR s.lease_until < now())),
         count(*) FILTER (WHERE s.dead_at IS NULL AND s.lease_until >= now()),
         count(*) FILTER (WHERE s.dead_at IS NOT NULL),
         min(s.created_at) FILTER (WHERE s.dead_at IS NULL)
    FROM memoriesdb.embedding_schedule AS s
$$;
COMMENT ON FUNCTION memoriesdb.embedding_queue_status() IS 'Queue depths: pending (including expired leases), leased, dead; and the age of the oldest live job.';

CREATE OR REPLACE FUNCTION memoriesdb.embedding_queue_health()
RETURNS TABLE (oldest_lease_at timestamptz, oldest_lease_age interval, oldest_lease_holder text,
               holders bigint, last_error text, last_error_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH oldest AS (
    SELECT s.leased_at, s.leased_by FROM memoriesdb.embedding_schedule AS s
     WHERE s.lease_id IS NOT NULL AND s.lease_until >= now() AND s.dead_at IS NULL
     ORDER BY s.leased_at NULLS LAST LIMIT 1
  ), err AS (
    SELECT s.last_error, s.updated_at FROM memoriesdb.embedding_schedule AS s
     WHERE s.last_error IS NOT NULL ORDER BY s.updated_at DESC LIMIT 1
  )
  SELECT o.leased_at, now() - o.leased_at, o.leased_by,
         (SELECT count(DISTINCT s.leased_by) FROM memoriesdb.embedding_schedule AS s
           WHERE s.lease_id IS NOT NULL AND s.lease_until >= now() AND s.dead_at IS NULL),
         e.last_error, e.updated_at
    FROM (SELECT 1) AS one LEFT JOIN oldest AS o ON true LEFT JOIN err AS e ON true
$$;
COMMENT ON FUNCTION memoriesdb.embedding_queue_health() IS
  'What makes a stuck worker visible (memoriesdb status): the oldest live lease (claimed when, how long ago, by which worker), how many workers hold leases, and the newest error a job carries (provider errors and unreachable providers) with when it was recorded. One row, NULLs when there is nothing to show.';

CREATE OR REPLACE FUNCTION memoriesdb.dead_embedding_jobs(max_rows integer DEFAULT 20)
RETURNS TABLE (memory_id uuid, attempts integer, dead_at timestamptz, last_error text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.memory_id, s.attempts, s.dead_at, s.last_error FROM memoriesdb.embedding_schedule AS s
   WHERE s.dead_at IS NOT NULL ORDER BY s.dead_at DESC LIMIT max_rows
$$;
COMMENT ON FUNCTION memoriesdb.dead_embedding_jobs(integer) IS 'Dead jobs with their errors, newest first.';

CREATE OR REPLACE FUNCTION memoriesdb.embedding_models()
RETURNS TABLE (model text, memories bigint, newest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT m.embedding_model, count(*), max(m.embedded_at) FROM memoriesdb.memories AS m
   WHERE m.embedding_model IS NOT NULL GROUP BY 1 ORDER BY 2 DESC
$$;
COMMENT ON FUNCTION memoriesdb.embedding_models() IS 'How many memories carry an embedding from each model (no tenant data).';

COMMIT;
