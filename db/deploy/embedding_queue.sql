-- Deploy memoriesdb:embedding_queue to pg
-- Reworked after @v0.4.0 (released version: embedding_queue@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: embedding_queue@v0.2.0
-- requires: worker_bounds
-- requires: embedding_models
-- Live functions of the embedding queue: Enqueue trigger, NOTIFY, and the worker API: claim, renew, complete, fail, release, reclaim, requeue, status.
-- v0.3: a claim may take at most embedding_max_batch_size jobs for at most embedding_max_lease_seconds
-- (config, worker_bounds.sql), and a live worker renews its leases (renew_embedding_leases) instead
-- of asking for a long one.
-- v0.5: requeue_dead_embedding_jobs(memory_ids) puts chosen dead jobs back, and says of each other id
-- why it was not (not_dead, no_job); requeue_dead_embedding_jobs() still puts every dead job back.
-- v0.5 (versioned embeddings, embedding_models.sql): one job per (memory, model) for every model not
-- retired; claim_model_embedding_jobs() hands out the jobs of the active and filling models with their
-- model (claim_embedding_jobs() the active model's only, for workers older than v0.5); completions
-- store into embeddings, and into memories.embedding (the mirror) for the active model's jobs.
-- v0.5 (throughput): complete_embedding_jobs() finds each job by its key (one index probe per vector), never by a
-- scan of the whole queue (a hash join the planner chose for a batch: 20,000 queued jobs scanned twice per batch).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework embedding_queue`.
-- Run once, by embedding_queue@v0.1.0.sql: table embedding_schedule, its index, policy and the triggers on memories. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- enqueue ------------------------------------------------------------------
CREATE OR REPLACE FUNCTION memoriesdb_internal.enqueue_embedding() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    -- a new memory has no job: a job references an existing memory (and goes with it), and
    -- this memory's id was new. A plain INSERT: no speculative insertion, and the statement
    -- trigger notify fires once (an upsert fires it for INSERT and for UPDATE)
    INSERT INTO memoriesdb.embedding_schedule (memory_id, model_id, content_hash)
    SELECT NEW.id, em.id, NEW.content_hash FROM memoriesdb.embedding_models AS em WHERE em.state <> 'retired';
    RETURN NULL;
  END IF;
  -- new content: every model not retired embeds it again (a paused model's job waits for resume_model())
  INSERT INTO memoriesdb.embedding_schedule AS s (memory_id, model_id, content_hash)
  SELECT NEW.id, em.id, NEW.content_hash FROM memoriesdb.embedding_models AS em WHERE em.state <> 'retired'
  ON CONFLICT (memory_id, model_id) DO UPDATE
     SET content_hash = EXCLUDED.content_hash, attempts = 0, run_after = now(),
         last_error = NULL, dead_at = NULL;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.enqueue_embedding() IS
  'Trigger: a new memory or new content puts (or refreshes) one embedding job per model that is not retired (active, filling, paused). A job already leased keeps its lease; its completion will find the content changed and re-queue it. Metadata-only revisions do not fire it.';

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
SET memoriesdb.context_checked = ''
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
    SELECT s.memory_id, s.model_id FROM memoriesdb.embedding_schedule AS s
     WHERE s.dead_at IS NULL AND s.run_after <= now() AND s.attempts < max_attempts
       AND (s.lease_until IS NULL OR s.lease_until < now())   -- an expired lease is free again
       AND s.model_id = (SELECT em.id FROM memoriesdb.embedding_models AS em WHERE em.state = 'active')
     ORDER BY s.run_after
     LIMIT batch_size
     FOR UPDATE SKIP LOCKED
  ), leased AS (
    UPDATE memoriesdb.embedding_schedule AS s
       SET lease_id = gen_random_uuid(), lease_until = now() + held, leased_hash = s.content_hash,
           leased_by = worker, leased_at = now(), attempts = s.attempts + 1
      FROM ready WHERE s.memory_id = ready.memory_id AND s.model_id = ready.model_id
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
  'Worker (before v0.5; claim_model_embedding_jobs() names each job''s model): leases up to batch_size ready jobs of the active model (FOR UPDATE SKIP LOCKED, so concurrent workers never share a job) and returns their content, after writing one access log entry for the batch (function claim_embedding_jobs, the memory ids, the worker''s login; MDB22 and no claim when it cannot be written). A worker that dies loses nothing: once the lease expires another worker claims the job again. batch_size may be at most config embedding_max_batch_size and the lease at most embedding_max_lease_seconds (MDB12 past either): a worker that needs longer renews its leases with renew_embedding_leases().';

CREATE OR REPLACE FUNCTION memoriesdb.claim_model_embedding_jobs(batch_size integer DEFAULT 32,
                                               lease interval DEFAULT '5 minutes',
                                               worker text DEFAULT NULL,
                                               models text[] DEFAULT NULL)
RETURNS TABLE (memory_id uuid, lease_id uuid, content text, content_hash bytea, attempts integer,
               model text, provider text, dimension integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  max_attempts integer := memoriesdb.setting('max_attempts')::int;
  max_batch integer := memoriesdb.setting('embedding_max_batch_size')::int;
  held interval;
  picked record;
  ids uuid[] := '{}'::uuid[];
  mids uuid[] := '{}'::uuid[];
  m record;
BEGIN
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'batch_size must be at least 1';
  END IF;
  IF max_batch IS NULL OR batch_size > max_batch THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'batch_size is larger than a claim may take',
      DETAIL = format('asked for %s jobs; the cap is %s', batch_size, coalesce(max_batch::text, 'not set')),
      HINT = format('claim at most %s jobs at a time (config embedding_max_batch_size)', coalesce(max_batch::text, '(not set)'));
  END IF;
  held := memoriesdb_internal.checked_lease(lease);
  -- model by model, the active one first (new memories become searchable while a new model
  -- fills), then the filling ones; paused and retired models' jobs are never claimed
  FOR m IN SELECT em.id FROM memoriesdb.embedding_models AS em
            WHERE em.state IN ('active', 'filling') AND (models IS NULL OR em.name = ANY (models))
            ORDER BY em.state = 'active' DESC, em.created_at, em.id LOOP
    EXIT WHEN cardinality(ids) >= batch_size;
    FOR picked IN
      WITH ready AS (
        SELECT s.memory_id, s.model_id FROM memoriesdb.embedding_schedule AS s
         WHERE s.model_id = m.id AND s.dead_at IS NULL AND s.run_after <= now() AND s.attempts < max_attempts
           AND (s.lease_until IS NULL OR s.lease_until < now())
         ORDER BY s.run_after
         LIMIT batch_size - cardinality(ids)
         FOR UPDATE SKIP LOCKED)
      UPDATE memoriesdb.embedding_schedule AS s
         SET lease_id = gen_random_uuid(), lease_until = now() + held, leased_hash = s.content_hash,
             leased_by = worker, leased_at = now(), attempts = s.attempts + 1
        FROM ready WHERE s.memory_id = ready.memory_id AND s.model_id = ready.model_id
      RETURNING s.memory_id, s.model_id
    LOOP
      ids := ids || picked.memory_id;
      mids := mids || picked.model_id;
    END LOOP;
  END LOOP;
  IF cardinality(ids) > 0 THEN   -- one access log entry per claim, as claim_embedding_jobs()
    PERFORM memoriesdb_internal.log_read('claim_embedding_jobs', ARRAY(SELECT DISTINCT u FROM unnest(ids) AS u), NULL);
  END IF;
  RETURN QUERY
  SELECT s.memory_id, s.lease_id, mem.content, s.leased_hash, s.attempts, em.name, em.provider, em.dimension
    FROM unnest(ids, mids) AS j(mid, model_id)
    JOIN memoriesdb.embedding_schedule AS s ON s.memory_id = j.mid AND s.model_id = j.model_id
    JOIN memoriesdb.embedding_models AS em ON em.id = j.model_id
    JOIN memoriesdb.memories AS mem ON mem.id = j.mid
   ORDER BY em.id, s.memory_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.claim_model_embedding_jobs(integer, interval, text, text[]) IS
  'Worker: as claim_embedding_jobs(), for every model a worker serves: leases up to batch_size ready jobs of the active model first, then of the filling models (models: only these names; NULL: all), and returns each with its model''s name, provider and dimension. Paused and retired models'' jobs are never claimed. One access log entry per claim (function claim_embedding_jobs). MDB12 past the batch or lease caps.';

CREATE OR REPLACE FUNCTION memoriesdb.renew_embedding_leases(memory_ids uuid[], lease_ids uuid[],
                                                 lease interval DEFAULT '5 minutes')
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
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

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_embedding(embedding public.vector, dim integer) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  norm double precision;
BEGIN
  IF embedding IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB11', MESSAGE = 'embedding is NULL';
  END IF;
  IF public.vector_dims(embedding) <> dim THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB11', MESSAGE = 'embedding has the wrong dimension',
      DETAIL = format('expected %s dimensions, got %s', dim, public.vector_dims(embedding)),
      HINT = 'the vector must come from the model the job names, of its dimension (model_progress())';
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
COMMENT ON FUNCTION memoriesdb_internal.check_embedding(public.vector, integer) IS
  'Raises MDB11 unless the vector has dim dimensions (its model''s), is finite and is not zero.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_embedding(embedding public.vector) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  dim integer;
BEGIN
  SELECT a.atttypmod INTO dim FROM pg_catalog.pg_attribute AS a
   WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding';
  PERFORM memoriesdb_internal.check_embedding(embedding, dim);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_embedding(public.vector) IS
  'Raises MDB11 unless the vector has the dimension of memories.embedding (the active model''s), is finite and is not zero.';

CREATE OR REPLACE FUNCTION memoriesdb.complete_embedding_job(memory_id uuid, lease_id uuid,
                                                 embedding public.vector, model text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  dim integer;
BEGIN
  SELECT em.dimension INTO dim FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
   WHERE s.memory_id = complete_embedding_job.memory_id AND s.lease_id = complete_embedding_job.lease_id;
  IF dim IS NULL THEN
    RETURN 'lease_lost';   -- expired and re-leased, released, or the memory was forgotten
  END IF;
  PERFORM memoriesdb_internal.check_embedding(complete_embedding_job.embedding, dim);
  RETURN (SELECT c.outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[complete_embedding_job.memory_id],
            ARRAY[complete_embedding_job.lease_id], ARRAY[complete_embedding_job.embedding], complete_embedding_job.model) AS c);
END
$$;
COMMENT ON FUNCTION memoriesdb.complete_embedding_job(uuid, uuid, public.vector, text) IS
  'Worker: complete_embedding_jobs() for one job: stores a leased job''s embedding (L2-normalised) for the job''s model, only if the memory''s content hash still matches the one claimed; otherwise the vector is discarded and the job re-queued (stale). Returns stored, stored_requeued, stale or lease_lost. MDB11 for a vector not of the model''s dimension, NaN or zero.';

CREATE OR REPLACE FUNCTION memoriesdb.complete_embedding_jobs(memory_ids uuid[], lease_ids uuid[],
                                                  embeddings public.vector[], model text)
RETURNS TABLE (memory_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  bad integer;
  bad_dim integer;
BEGIN
  IF cardinality(memory_ids) IS DISTINCT FROM cardinality(lease_ids)
     OR cardinality(memory_ids) IS DISTINCT FROM cardinality(embeddings) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids, lease_ids and embeddings must have the same length';
  END IF;
  IF model IS NULL OR btrim(model) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'model name is required';
  END IF;
  -- every vector checked first against its job's model (MDB11 names the first bad one; a job whose
  -- lease is gone, or whose memory was forgotten meanwhile, has no model to check against: it ends as
  -- lease_lost and stores nothing, so only NULL, zero and NaN are refused for it); then the whole batch
  -- in a few set-based statements
  SELECT u.i::integer, coalesce(em.dimension, (SELECT a.atttypmod FROM pg_catalog.pg_attribute AS a
                                                  WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding'))
    INTO bad, bad_dim
    FROM unnest(memory_ids, lease_ids, embeddings) WITH ORDINALITY AS u(mid, lid, e, i)
    LEFT JOIN LATERAL (   -- the job by its primary key's memory_id, one index probe per vector
      SELECT em.dimension FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
       WHERE s.memory_id = u.mid AND s.lease_id = u.lid) AS em ON true
   WHERE u.e IS NULL
      OR (em.dimension IS NOT NULL AND public.vector_dims(u.e) <> em.dimension)
      OR public.vector_norm(u.e) IN (0, 'NaN'::float8, 'Infinity'::float8)
   ORDER BY u.i LIMIT 1;
  IF bad IS NOT NULL THEN
    PERFORM memoriesdb_internal.check_embedding(embeddings[bad], bad_dim);
  END IF;
  RETURN QUERY
  WITH input AS (
    SELECT u.mid, u.lid, u.emb FROM unnest(memory_ids, lease_ids, embeddings) AS u(mid, lid, emb)
  ), job AS (
    -- each job found by its primary key's memory_id (LATERAL: one index probe per input row, never a scan of the queue)
    SELECT i.lid, s.memory_id, s.model_id, s.content_hash, s.leased_hash, public.l2_normalize(i.emb) AS emb, em.state = 'active' AS active
      FROM input AS i
      CROSS JOIN LATERAL (SELECT s.memory_id, s.model_id, s.content_hash, s.leased_hash FROM memoriesdb.embedding_schedule AS s
                           WHERE s.memory_id = i.mid AND s.lease_id = i.lid FOR UPDATE) AS s
      JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
  ), fresh AS (
    -- stored only if the content is still the one that was embedded
    SELECT j.* FROM job AS j JOIN memoriesdb.memories AS m ON m.id = j.memory_id AND m.content_hash = j.leased_hash
  ), kept AS (
    INSERT INTO memoriesdb.embeddings AS e (memory_id, model_id, content_hash, embedding)
    SELECT f.memory_id, f.model_id, f.leased_hash, f.emb FROM fresh AS f
    ON CONFLICT ON CONSTRAINT embeddings_pkey DO UPDATE SET content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding
    RETURNING e.memory_id
  ), mirrored AS (
    -- the active model's vector is also memories.embedding, which search() and the graph read
    UPDATE memoriesdb.memories AS m
       SET embedding = f.emb, embedding_model = model, embedded_at = now(), embedded_hash = f.leased_hash
      FROM fresh AS f
     WHERE f.active AND m.id = f.memory_id AND m.content_hash = f.leased_hash
    RETURNING m.id
  ), finished AS (
    DELETE FROM memoriesdb.embedding_schedule AS s
     USING fresh AS f
     WHERE s.memory_id = f.memory_id AND s.model_id = f.model_id AND f.content_hash = f.leased_hash
    RETURNING s.memory_id, s.model_id
  ), requeued AS (
    -- the content changed after the claim: back to the queue for the new content
    UPDATE memoriesdb.embedding_schedule AS s
       SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL, attempts = 0, run_after = now()
      FROM job AS j
     WHERE s.memory_id = j.memory_id AND s.model_id = j.model_id
       AND NOT EXISTS (SELECT 1 FROM fresh AS f WHERE f.memory_id = j.memory_id AND f.model_id = j.model_id AND f.content_hash = f.leased_hash)
    RETURNING s.memory_id, s.model_id
  )
  SELECT i.mid,
         CASE WHEN j.lid IS NULL THEN 'lease_lost'
              WHEN EXISTS (SELECT 1 FROM finished AS f WHERE f.memory_id = j.memory_id AND f.model_id = j.model_id) THEN 'stored'
              WHEN EXISTS (SELECT 1 FROM fresh AS f WHERE f.lid = j.lid) THEN 'stored_requeued'
              ELSE 'stale' END
    FROM input AS i LEFT JOIN job AS j ON j.lid = i.lid AND j.memory_id = i.mid;
END
$$;
COMMENT ON FUNCTION memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text) IS
  'Worker: stores a batch of leased jobs'' vectors (L2-normalised) in one round trip: into embeddings for each job''s model, and for the active model''s jobs also into memories.embedding with embedding_model = model (the name the worker embedded with). Only where the memory''s content hash is still the one claimed; otherwise the vector is discarded and the job re-queued. Returns each job''s outcome (stored, stored_requeued, stale, lease_lost). MDB11 for any vector not of its model''s dimension, NaN or zero (nothing of the batch is stored then).';

CREATE OR REPLACE FUNCTION memoriesdb.fail_embedding_job(memory_id uuid, lease_id uuid, error text,
                                             permanent boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
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
     WHERE s.memory_id = job.memory_id AND s.model_id = job.model_id;
    RETURN 'dead';
  END IF;
  -- exponential backoff with jitter: base * 2^(attempts-1), capped
  UPDATE memoriesdb.embedding_schedule AS s
     SET last_error = left(coalesce(error, 'unknown error'), 4000),
         run_after = now() + make_interval(secs => least(cap, base * 2 ^ (job.attempts - 1)) * (0.75 + random() / 2)),
         lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL
   WHERE s.memory_id = job.memory_id AND s.model_id = job.model_id;
  RETURN 'retry';
END
$$;
COMMENT ON FUNCTION memoriesdb.fail_embedding_job(uuid, uuid, text, boolean) IS
  'Worker: records a failed attempt. Permanent errors, and the last allowed attempt (config max_attempts), make the job dead with its error kept; others are retried after an exponential backoff. Returns retry, dead or lease_lost.';

CREATE OR REPLACE FUNCTION memoriesdb.release_embedding_jobs(memory_ids uuid[], lease_ids uuid[]) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
AS $$
  WITH revived AS (
    UPDATE memoriesdb.embedding_schedule AS s SET dead_at = NULL, attempts = 0, run_after = now()
     WHERE s.dead_at IS NOT NULL RETURNING 1)
  SELECT count(*)::int FROM revived
$$;
COMMENT ON FUNCTION memoriesdb.requeue_dead_embedding_jobs() IS 'Operator: puts every dead job back in the queue (after fixing the provider); last_error is kept until the next attempt.';

CREATE OR REPLACE FUNCTION memoriesdb.requeue_dead_embedding_jobs(memory_ids uuid[])
RETURNS TABLE (memory_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  revived uuid[];
BEGIN
  IF requeue_dead_embedding_jobs.memory_ids IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids must not be NULL',
      DETAIL = 'requeue_dead_embedding_jobs(memory_ids) puts back the dead jobs of the memories named',
      HINT = 'name the memories whose dead jobs go back, or call requeue_dead_embedding_jobs() to put back every dead job';
  END IF;
  WITH back AS (
    UPDATE memoriesdb.embedding_schedule AS s SET dead_at = NULL, attempts = 0, run_after = now()
     WHERE s.memory_id = ANY (requeue_dead_embedding_jobs.memory_ids) AND s.dead_at IS NOT NULL
    RETURNING s.memory_id
  )
  SELECT coalesce(array_agg(b.memory_id), '{}') INTO revived FROM back AS b;
  IF cardinality(revived) > 0 THEN   -- the enqueue NOTIFY fires on new content only: wake the workers here
    PERFORM pg_notify('memoriesdb_embedding', '');
  END IF;
  RETURN QUERY   -- each id once, in the order first given; NULL elements name no memory
  SELECT w.mid,
         CASE WHEN w.mid = ANY (revived) THEN 'requeued'
              WHEN EXISTS (SELECT 1 FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id = w.mid) THEN 'not_dead'
              ELSE 'no_job' END
    FROM (SELECT u.mid, min(u.i) AS i FROM unnest(requeue_dead_embedding_jobs.memory_ids) WITH ORDINALITY AS u(mid, i)
           WHERE u.mid IS NOT NULL GROUP BY u.mid) AS w
   ORDER BY w.i;
END
$$;
COMMENT ON FUNCTION memoriesdb.requeue_dead_embedding_jobs(uuid[]) IS
  'Operator: puts the dead jobs of these memories back in the queue (attempts from 0, ready now; last_error kept until the next attempt) and wakes the workers. One row per distinct id, in the order given: requeued; not_dead (its job is queued or leased, not dead: nothing done); no_job (no job: already embedded, forgotten, or no such memory). MDB12 for a NULL array.';

CREATE OR REPLACE FUNCTION memoriesdb.embedding_queue_status()
RETURNS TABLE (pending bigint, leased bigint, dead bigint, oldest_pending timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
AS $$
  SELECT s.memory_id, s.attempts, s.dead_at, s.last_error FROM memoriesdb.embedding_schedule AS s
   WHERE s.dead_at IS NOT NULL ORDER BY s.dead_at DESC LIMIT max_rows
$$;
COMMENT ON FUNCTION memoriesdb.dead_embedding_jobs(integer) IS 'Dead jobs with their errors, newest first.';

CREATE OR REPLACE FUNCTION memoriesdb.embedding_models()
RETURNS TABLE (model text, memories bigint, newest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
  SELECT m.embedding_model, count(*), max(m.embedded_at) FROM memoriesdb.memories AS m
   WHERE m.embedding_model IS NOT NULL GROUP BY 1 ORDER BY 2 DESC
$$;
COMMENT ON FUNCTION memoriesdb.embedding_models() IS 'How many memories carry an embedding from each model (no tenant data).';

COMMIT;
