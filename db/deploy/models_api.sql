-- Deploy memoriesdb:models_api to pg
-- requires: embedding_models
-- requires: embedding_queue
-- Live functions of the model registry (issue 15, "Versioned embeddings"): add_model(), activate_model(),
-- pause_model(), resume_model(), retire_model(), model_progress(), import_embeddings(), and the dead jobs by model
-- (dead_embedding_jobs(max_rows, model), requeue_dead_embedding_jobs(memory_ids, model)). For the operator (the runner's
-- `memoriesdb models ...`, role memoriesdb_worker, as requeue_dead_embedding_jobs()).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework models_api`.
-- Errors: MDB16 no such model; MDB30 a model definition refused; MDB31 the model's state forbids it;
-- MDB32 activation refused: the model has not embedded every memory's current content; MDB12 an import batch
-- refused (arrays of different lengths, more than 5000 rows).
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.model_named(model_name text) RETURNS memoriesdb.embedding_models
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m memoriesdb.embedding_models;
BEGIN
  SELECT * INTO m FROM memoriesdb.embedding_models AS em WHERE em.name = model_name;
  IF m.id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB16', MESSAGE = 'no such embedding model',
      DETAIL = format('no model is named %L', model_name),
      HINT = 'memoriesdb models list (model_progress()) names the registered models; add_model() registers one';
  END IF;
  RETURN m;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.model_named(text) IS 'Internal: the registry row of a model by name; MDB16 when there is none.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.model_index_name(model_id uuid) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'embeddings_model_' || replace(model_id::text, '-', '') $$;
COMMENT ON FUNCTION memoriesdb_internal.model_index_name(uuid) IS 'Internal: the name of a model''s partial HNSW index on memoriesdb.embeddings.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.model_index_definition(model_id uuid, dimension integer) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- the column is an untyped vector: the index is on the model's dimension, for its rows only. Its graph's
  -- parameters from config (search_hnsw_m, search_hnsw_ef_construction; 32 and 128 before that change has run):
  -- at 1,000,000 memories pgvector's defaults (16, 64) left recall@10 at 0.94 with the longest candidate list
  -- (ef_search 1000), 32 and 128 reach 0.99 at ef_search 400 (bench/results/search_1m.md)
  SELECT format('ON memoriesdb.embeddings USING hnsw ((embedding::public.vector(%s)) public.vector_cosine_ops) WITH (m = %s, ef_construction = %s) WHERE model_id = %L::uuid',
                dimension,
                coalesce((SELECT (c.value #>> '{}')::integer FROM memoriesdb.config AS c WHERE c.key = 'search_hnsw_m'), 32),
                coalesce((SELECT (c.value #>> '{}')::integer FROM memoriesdb.config AS c WHERE c.key = 'search_hnsw_ef_construction'), 128),
                model_id)
$$;
COMMENT ON FUNCTION memoriesdb_internal.model_index_definition(uuid, integer) IS
  'Internal: what follows CREATE INDEX <name> for a model''s partial HNSW index on memoriesdb.embeddings: its expression (the model''s dimension), m and ef_construction from config search_hnsw_m and search_hnsw_ef_construction (32, 128 when not set), WHERE model_id = the model. create_model_index() and model_index_rebuild() build from it.';

-- Every model that is not retired has its HNSW index on memoriesdb.embeddings, the active one too: search()
-- reads the active model's there (active_model_index.sql); memories.embedding, the mirror, has none.
CREATE OR REPLACE FUNCTION memoriesdb_internal.create_model_index(model_id uuid, dimension integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF to_regclass(format('memoriesdb.%I', memoriesdb_internal.model_index_name(model_id))) IS NOT NULL THEN
    RETURN;   -- made already (its filling, or before a pause)
  END IF;
  EXECUTE format('CREATE INDEX IF NOT EXISTS %I %s', memoriesdb_internal.model_index_name(model_id),
                 memoriesdb_internal.model_index_definition(model_id, dimension));
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.create_model_index(uuid, integer) IS
  'Internal: makes a model''s partial HNSW index on memoriesdb.embeddings (model_index_name(), model_index_definition()) unless it exists, with m and ef_construction from config search_hnsw_m and search_hnsw_ef_construction: every model that is not retired has one (search() reads the active model''s). An index keeps the parameters it was built with: model_index_rebuild() gives the statements that rebuild it with the current ones.';

-- CREATE INDEX CONCURRENTLY cannot run in a function (nor in any transaction block): this one says what to run,
-- the caller (`memoriesdb models reindex`, as the deployer) runs each statement on its own, in order. A run
-- stopped halfway is resumed by asking again: the steps depend on what is there.
CREATE OR REPLACE FUNCTION memoriesdb_internal.model_index_rebuild(model text)
RETURNS TABLE (step integer, action text, statement text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target memoriesdb.embedding_models := memoriesdb_internal.model_named(model);
  name text := memoriesdb_internal.model_index_name(target.id);
  copy text := name || '_rebuild';
  live regclass := to_regclass(format('memoriesdb.%I', name));
  built regclass := to_regclass(format('memoriesdb.%I', copy));
  copy_valid boolean := (SELECT i.indisvalid FROM pg_catalog.pg_index AS i WHERE i.indexrelid = built);
BEGIN
  IF target.state = 'retired' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'a retired model has no index to rebuild',
      DETAIL = format('model %L was retired at %s', target.name, target.retired_at),
      HINT = 'memoriesdb models list shows the models that are not retired';
  END IF;
  step := 0;
  -- (stopped after the old index was dropped, with the copy whole: only the rename below is left)
  IF NOT (live IS NULL AND coalesce(copy_valid, false)) THEN
    IF built IS NOT NULL THEN
      -- a copy left by a run stopped while building (invalid) or before the swap: built again, with today's settings
      step := step + 1; action := 'drop the copy an earlier run left';
      statement := format('DROP INDEX CONCURRENTLY IF EXISTS memoriesdb.%I', copy);
      RETURN NEXT;
    END IF;
    step := step + 1; action := 'build a new index beside the old one (searches go on)';
    statement := format('CREATE INDEX CONCURRENTLY %I %s', copy, memoriesdb_internal.model_index_definition(target.id, target.dimension));
    RETURN NEXT;
    IF live IS NOT NULL THEN
      step := step + 1; action := 'drop the old index (searches use the new one)';
      statement := format('DROP INDEX CONCURRENTLY IF EXISTS memoriesdb.%I', name);
      RETURN NEXT;
    END IF;
  END IF;
  step := step + 1; action := 'name the new index';
  statement := format('ALTER INDEX memoriesdb.%I RENAME TO %I', copy, name);
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.model_index_rebuild(text) IS
  'Internal (the deployer, `memoriesdb models reindex`): the statements, in order, that rebuild a model''s HNSW index with the current search_hnsw_m and search_hnsw_ef_construction without blocking searches or writes: CREATE INDEX CONCURRENTLY a copy (<index>_rebuild), DROP INDEX CONCURRENTLY the old one, rename the copy. Each runs on its own, outside a transaction block. Asked again after a run stopped halfway, the steps resume it (an invalid or unswapped copy is dropped and built again; a whole copy whose original is gone is only renamed). MDB16 for no such model, MDB31 for a retired one.';

CREATE OR REPLACE FUNCTION memoriesdb.add_model(name text, provider text, dimension integer)
RETURNS TABLE (model_id uuid, jobs bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  new_id uuid;
  queued bigint;
BEGIN
  IF name IS NULL OR name !~ '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB30', MESSAGE = 'invalid model name',
      DETAIL = format('name %L', name),
      HINT = 'a model name is 1 to 200 characters: letters, digits and . _ : / @ + -, starting with a letter or digit (the provider''s model name)';
  END IF;
  IF provider IS NULL OR provider NOT IN ('local', 'ollama', 'openai', 'configured') THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB30', MESSAGE = 'invalid provider',
      DETAIL = format('provider %L', provider),
      HINT = 'provider is local, ollama or openai (the runner''s providers), or configured (each worker''s own MEMORIESDB_PROVIDER)';
  END IF;
  IF dimension IS NULL OR dimension < 1 OR dimension > 2000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB30', MESSAGE = 'invalid dimension',
      DETAIL = format('dimension %s', dimension),
      HINT = 'the model''s vector dimension, 1 to 2000 (the HNSW index limit)';
  END IF;
  IF EXISTS (SELECT 1 FROM memoriesdb.embedding_models AS em WHERE em.name = add_model.name) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB30', MESSAGE = 'model already registered',
      DETAIL = format('a model named %L exists (state %s)', add_model.name,
                      (SELECT em.state FROM memoriesdb.embedding_models AS em WHERE em.name = add_model.name)),
      HINT = 'model_progress() shows it; a retired model''s name is not reused';
  END IF;
  INSERT INTO memoriesdb.embedding_models AS em (name, provider, dimension, state)
  VALUES (add_model.name, add_model.provider, add_model.dimension, 'filling')
  RETURNING em.id INTO new_id;
  PERFORM memoriesdb_internal.create_model_index(new_id, add_model.dimension);   -- its own HNSW index
  -- a job per memory (the workers are woken by the queue's notify trigger)
  INSERT INTO memoriesdb.embedding_schedule (memory_id, model_id, content_hash)
  SELECT m.id, new_id, m.content_hash FROM memoriesdb.memories AS m;
  GET DIAGNOSTICS queued = ROW_COUNT;
  RETURN QUERY SELECT new_id, queued;
END
$$;
COMMENT ON FUNCTION memoriesdb.add_model(text, text, integer) IS
  'Operator: registers an embedding model (state filling), makes its partial HNSW index (memoriesdb_internal.model_index_name(id)) and queues a job for every memory, which the running workers embed with it beside the active model (memoriesdb reembed --wait follows them). Returns the model id and the jobs queued. MDB30 for an invalid name, provider (local, ollama, openai, configured) or dimension (1..2000), or a name already registered.';

CREATE OR REPLACE FUNCTION memoriesdb.activate_model(name text)
RETURNS TABLE (model text, previous text, memories bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  target memoriesdb.embedding_models;
  prev text;
  missing bigint;
  total bigint;
  column_dim integer;
  mirrored bigint;
BEGIN
  -- one switch at a time, and no add/pause/retire in between (every model function updates the registry)
  LOCK TABLE memoriesdb.embedding_models IN SHARE ROW EXCLUSIVE MODE;
  target := memoriesdb_internal.model_named(activate_model.name);
  SELECT em.name INTO prev FROM memoriesdb.embedding_models AS em WHERE em.state = 'active';
  IF target.state = 'active' THEN
    RETURN QUERY SELECT target.name, target.name, 0::bigint;
    RETURN;
  END IF;
  IF target.state = 'retired' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'a retired model cannot be activated',
      DETAIL = format('model %L was retired at %s; its vectors are gone', target.name, target.retired_at),
      HINT = 'register the model again under another name with add_model() and let it fill';
  END IF;
  SELECT count(*), count(*) FILTER (WHERE e.memory_id IS NULL OR e.content_hash <> m.content_hash) INTO total, missing
    FROM memoriesdb.memories AS m
    LEFT JOIN memoriesdb.embeddings AS e ON e.memory_id = m.id AND e.model_id = target.id;
  IF missing > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB32', MESSAGE = 'the model has not embedded every memory',
      DETAIL = format('model %L: %s of %s memories have no vector of their current content (state %s)', target.name, missing, total, target.state),
      HINT = CASE WHEN target.state = 'paused' THEN 'resume_model() and wait until model_progress() shows it done (memoriesdb reembed --wait)'
                  ELSE 'wait until model_progress() shows it done (memoriesdb reembed --wait); dead jobs go back with requeue_dead_embedding_jobs()' END;
  END IF;
  UPDATE memoriesdb.embedding_models AS em SET state = 'paused' WHERE em.state = 'active';
  UPDATE memoriesdb.embedding_models AS em SET state = 'active', activated_at = now() WHERE em.id = target.id;
  -- search()'s large-caller plan reads the active model's vectors in embeddings through its HNSW index, which
  -- its filling built (made here if it is missing); the previous model keeps its own
  PERFORM memoriesdb_internal.create_model_index(target.id, target.dimension);
  -- the mirror: memories.embedding holds the active model's vectors (search()'s exact plan, the graph); it has
  -- no HNSW index (active_model_index.sql), so this rewrite is one set-wise UPDATE with its audit rows
  SELECT a.atttypmod INTO column_dim FROM pg_catalog.pg_attribute AS a
   WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding';
  IF column_dim <> target.dimension THEN
    -- another dimension: the column is retyped (a table rewrite); searches wait for the commit
    UPDATE memoriesdb.memories AS m SET embedding = NULL, embedding_model = NULL, embedded_at = NULL, embedded_hash = NULL
     WHERE m.embedding IS NOT NULL;
    -- the vindexing trigger names the column (WHEN new.embedding IS NOT NULL): taken off for the retype and
    -- put back as triggers.sql states it
    DROP TRIGGER enqueue_vindexing ON memoriesdb.memories;
    EXECUTE format('ALTER TABLE memoriesdb.memories ALTER COLUMN embedding TYPE public.vector(%s)', target.dimension);
    CREATE TRIGGER enqueue_vindexing AFTER UPDATE OF embedding ON memoriesdb.memories FOR EACH ROW
      WHEN (new.embedding IS NOT NULL) EXECUTE FUNCTION memoriesdb_internal.enqueue_vindexing();
    UPDATE memoriesdb.config AS c SET value = to_jsonb(target.dimension) WHERE c.key = 'embedding_dim';
  END IF;
  UPDATE memoriesdb.memories AS m
     SET embedding = e.embedding, embedding_model = target.name, embedded_at = e.updated_at, embedded_hash = e.content_hash
    FROM memoriesdb.embeddings AS e
   WHERE e.memory_id = m.id AND e.model_id = target.id;
  GET DIAGNOSTICS mirrored = ROW_COUNT;
  -- a memory remembered since the check has no vector of the new model yet: no other model's vector stays
  UPDATE memoriesdb.memories AS m SET embedding = NULL, embedding_model = NULL, embedded_at = NULL, embedded_hash = NULL
   WHERE m.embedding IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM memoriesdb.embeddings AS e WHERE e.memory_id = m.id AND e.model_id = target.id);
  RETURN QUERY SELECT target.name, prev, mirrored;
END
$$;
COMMENT ON FUNCTION memoriesdb.activate_model(text) IS
  'Operator: makes a model the active one, atomically (one transaction): search() and search_hybrid() without a model, and the graph, use it from the commit on. Refused (MDB32) unless it holds a vector of the current content of every memory; MDB31 for a retired model; MDB16 for no such model. The previous active model becomes paused (its vectors and HNSW index kept: resume_model() keeps it current, retire_model() drops it). search()''s large-caller plan reads the active model''s vectors through its HNSW index on embeddings, which its filling built; memories.embedding (the mirror, no HNSW index) is rewritten with the new model''s vectors in one set-wise UPDATE (one audited row per memory) that searches do not wait for; a model of another dimension also retypes the column, which blocks searches until the commit. Returns the model, the previous one and how many memories now carry its vector.';

CREATE OR REPLACE FUNCTION memoriesdb.pause_model(name text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  target memoriesdb.embedding_models;
BEGIN
  LOCK TABLE memoriesdb.embedding_models IN SHARE ROW EXCLUSIVE MODE;
  target := memoriesdb_internal.model_named(pause_model.name);
  IF target.state = 'paused' THEN RETURN 'paused'; END IF;
  IF target.state <> 'filling' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = format('a %s model cannot be paused', target.state),
      DETAIL = format('model %L is %s; only a filling model pauses', target.name, target.state),
      HINT = CASE WHEN target.state = 'active' THEN 'activate another model first (the active one embeds every new memory)'
                  ELSE 'a retired model has no jobs' END;
  END IF;
  UPDATE memoriesdb.embedding_models AS em SET state = 'paused' WHERE em.id = target.id;
  RETURN 'paused';
END
$$;
COMMENT ON FUNCTION memoriesdb.pause_model(text) IS
  'Operator: stops the workers from claiming a filling model''s jobs (leases already out finish). New memories and new content still queue its jobs, so resume_model() loses nothing. MDB31 for the active or a retired model, MDB16 for no such model. Returns the new state.';

CREATE OR REPLACE FUNCTION memoriesdb.resume_model(name text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  target memoriesdb.embedding_models;
BEGIN
  LOCK TABLE memoriesdb.embedding_models IN SHARE ROW EXCLUSIVE MODE;
  target := memoriesdb_internal.model_named(resume_model.name);
  IF target.state IN ('filling', 'active') THEN RETURN target.state; END IF;
  IF target.state = 'retired' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'a retired model cannot be resumed',
      DETAIL = format('model %L was retired at %s; its vectors are gone', target.name, target.retired_at),
      HINT = 'register the model again under another name with add_model()';
  END IF;
  UPDATE memoriesdb.embedding_models AS em SET state = 'filling' WHERE em.id = target.id;
  PERFORM memoriesdb_internal.create_model_index(target.id, target.dimension);   -- made if it is missing
  PERFORM pg_notify('memoriesdb_embedding', '');   -- its jobs are ready now: wake the workers
  RETURN 'filling';
END
$$;
COMMENT ON FUNCTION memoriesdb.resume_model(text) IS
  'Operator: a paused model fills again (its queued jobs are claimed from now on; the workers are woken; its HNSW index on embeddings is made if it has none). A filling or active model is left as it is. MDB31 for a retired model, MDB16 for no such model. Returns the new state.';

CREATE OR REPLACE FUNCTION memoriesdb.retire_model(name text)
RETURNS TABLE (vectors bigint, jobs bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  target memoriesdb.embedding_models;
  dropped_vectors bigint;
  dropped_jobs bigint;
BEGIN
  LOCK TABLE memoriesdb.embedding_models IN SHARE ROW EXCLUSIVE MODE;
  target := memoriesdb_internal.model_named(retire_model.name);
  IF target.state = 'active' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'the active model cannot be retired',
      DETAIL = format('model %L is the one search uses', target.name),
      HINT = 'activate another (complete) model first with activate_model()';
  END IF;
  IF target.state = 'retired' THEN
    RETURN QUERY SELECT 0::bigint, 0::bigint;
    RETURN;
  END IF;
  EXECUTE format('DROP INDEX IF EXISTS memoriesdb.%I', memoriesdb_internal.model_index_name(target.id));
  DELETE FROM memoriesdb.embeddings AS e WHERE e.model_id = target.id;
  GET DIAGNOSTICS dropped_vectors = ROW_COUNT;
  DELETE FROM memoriesdb.embedding_schedule AS s WHERE s.model_id = target.id;
  GET DIAGNOSTICS dropped_jobs = ROW_COUNT;
  UPDATE memoriesdb.embedding_models AS em SET state = 'retired', retired_at = now() WHERE em.id = target.id;
  RETURN QUERY SELECT dropped_vectors, dropped_jobs;
END
$$;
COMMENT ON FUNCTION memoriesdb.retire_model(text) IS
  'Operator: drops a model that is not active: its vectors, its HNSW index and its jobs; the registry row stays (state retired) as history, its name is not reused. MDB31 for the active model, MDB16 for no such model. Returns how many vectors and jobs were dropped (0, 0 when already retired).';

CREATE OR REPLACE FUNCTION memoriesdb.model_progress()
RETURNS TABLE (model text, provider text, dimension integer, state text, done bigint, total bigint,
               pending bigint, leased bigint, dead bigint, activated_at timestamptz, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
  WITH total AS (SELECT count(*) AS n FROM memoriesdb.memories),
  done AS (
    SELECT e.model_id, count(*) AS n FROM memoriesdb.embeddings AS e
      JOIN memoriesdb.memories AS m ON m.id = e.memory_id AND m.content_hash = e.content_hash
     GROUP BY e.model_id),
  jobs AS (
    SELECT s.model_id,
           count(*) FILTER (WHERE s.dead_at IS NULL AND (s.lease_until IS NULL OR s.lease_until < now())) AS pending,
           count(*) FILTER (WHERE s.dead_at IS NULL AND s.lease_until >= now()) AS leased,
           count(*) FILTER (WHERE s.dead_at IS NOT NULL) AS dead
      FROM memoriesdb.embedding_schedule AS s GROUP BY s.model_id)
  SELECT em.name, em.provider, em.dimension, em.state, coalesce(d.n, 0), CASE WHEN em.state = 'retired' THEN 0 ELSE t.n END,
         coalesce(j.pending, 0), coalesce(j.leased, 0), coalesce(j.dead, 0), em.activated_at, em.created_at
    FROM memoriesdb.embedding_models AS em CROSS JOIN total AS t
    LEFT JOIN done AS d ON d.model_id = em.id LEFT JOIN jobs AS j ON j.model_id = em.id
   ORDER BY em.state = 'retired', em.created_at, em.id
$$;
COMMENT ON FUNCTION memoriesdb.model_progress() IS
  'Operator: every registered model (retired ones last) with its provider, dimension and state, and its progress: done = memories holding a vector of their current content, total = memories (0 for a retired model), and its jobs pending, leased and dead. activate_model() needs done = total. No tenant data.';

-- dead jobs by model: the operator's `memoriesdb status` (each dead job with its model) and
-- `memoriesdb requeue --model NAME` (overloads of the queue's functions, embedding_queue.sql)
CREATE OR REPLACE FUNCTION memoriesdb.dead_embedding_jobs(max_rows integer, model text)
RETURNS TABLE (memory_id uuid, model_name text, attempts integer, dead_at timestamptz, last_error text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  only_model uuid := CASE WHEN dead_embedding_jobs.model IS NOT NULL
                          THEN (memoriesdb_internal.model_named(dead_embedding_jobs.model)).id END;   -- MDB16
BEGIN
  IF max_rows IS NULL OR max_rows < 0 OR max_rows > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'max_rows must be between 0 and 10000',
      DETAIL = format('max_rows %s', max_rows),
      HINT = 'model_progress() counts every model''s dead jobs; this lists the newest of them';
  END IF;
  RETURN QUERY
  SELECT s.memory_id, em.name, s.attempts, s.dead_at, s.last_error
    FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
   WHERE s.dead_at IS NOT NULL AND (only_model IS NULL OR s.model_id = only_model)
   ORDER BY s.dead_at DESC, s.memory_id, em.name LIMIT max_rows;
END
$$;
COMMENT ON FUNCTION memoriesdb.dead_embedding_jobs(integer, text) IS
  'Operator: dead jobs with their model (model_name) and errors, newest first, at most max_rows (0..10000, MDB12 otherwise): of the model named, or of every model when model is NULL (MDB16 for no such model). model_progress() counts them per model.';

CREATE OR REPLACE FUNCTION memoriesdb.requeue_dead_embedding_jobs(memory_ids uuid[], model text)
RETURNS TABLE (memory_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  target memoriesdb.embedding_models;
  revived uuid[];
BEGIN
  IF requeue_dead_embedding_jobs.model IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'model must not be NULL',
      DETAIL = 'requeue_dead_embedding_jobs(memory_ids, model) puts back the dead jobs of one model',
      HINT = 'name the model (model_progress() lists them), or call requeue_dead_embedding_jobs(memory_ids) for every model';
  END IF;
  target := memoriesdb_internal.model_named(requeue_dead_embedding_jobs.model);   -- MDB16
  IF target.state = 'retired' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'a retired model has no jobs',
      DETAIL = format('model %L was retired at %s', target.name, target.retired_at),
      HINT = 'register the model again under another name with add_model()';
  END IF;
  WITH back AS (
    UPDATE memoriesdb.embedding_schedule AS s SET dead_at = NULL, attempts = 0, run_after = now()
     WHERE s.model_id = target.id AND s.dead_at IS NOT NULL
       AND (requeue_dead_embedding_jobs.memory_ids IS NULL OR s.memory_id = ANY (requeue_dead_embedding_jobs.memory_ids))
    RETURNING s.memory_id
  )
  SELECT coalesce(array_agg(b.memory_id ORDER BY b.memory_id), '{}') INTO revived FROM back AS b;
  IF cardinality(revived) > 0 AND target.state IN ('active', 'filling') THEN   -- ready now: wake the workers
    PERFORM pg_notify('memoriesdb_embedding', '');
  END IF;
  IF requeue_dead_embedding_jobs.memory_ids IS NULL THEN   -- every dead job of the model: the ones put back
    RETURN QUERY SELECT u.mid, 'requeued'::text FROM unnest(revived) AS u(mid);
    RETURN;
  END IF;
  RETURN QUERY   -- each id once, in the order first given; NULL elements name no memory
  SELECT w.mid,
         CASE WHEN w.mid = ANY (revived) THEN 'requeued'
              WHEN EXISTS (SELECT 1 FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id = w.mid AND s.model_id = target.id)
                THEN 'not_dead'
              ELSE 'no_job' END
    FROM (SELECT u.mid, min(u.i) AS i FROM unnest(requeue_dead_embedding_jobs.memory_ids) WITH ORDINALITY AS u(mid, i)
           WHERE u.mid IS NOT NULL GROUP BY u.mid) AS w
   ORDER BY w.i;
END
$$;
COMMENT ON FUNCTION memoriesdb.requeue_dead_embedding_jobs(uuid[], text) IS
  'Operator: puts dead jobs of one model back in the queue (attempts from 0, ready now; last_error kept until the next attempt) and wakes the workers when the model is active or filling (a paused model''s jobs wait for resume_model()). memory_ids NULL: every dead job of the model, one row (memory_id, requeued) per job put back. Else one row per distinct id, in the order given: requeued; not_dead (its job of this model is queued or leased); no_job (no job of this model: embedded already, forgotten, or no such memory). MDB12 for a NULL model, MDB16 for no such model, MDB31 for a retired one.';

CREATE OR REPLACE FUNCTION memoriesdb.import_embeddings(model text, memory_ids uuid[], content_hashes text[],
                                                         embeddings public.vector[])
RETURNS TABLE (memory_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  max_rows constant integer := 5000;   -- one call is one transaction: bounded
  target memoriesdb.embedding_models;
  n integer := coalesce(cardinality(memory_ids), 0);
BEGIN
  IF model IS NULL OR btrim(model) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'model name is required',
      DETAIL = 'import_embeddings() was called without a model',
      HINT = 'name a registered model (model_progress() lists them)';
  END IF;
  IF n IS DISTINCT FROM coalesce(cardinality(content_hashes), 0) OR n IS DISTINCT FROM coalesce(cardinality(embeddings), 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids, content_hashes and embeddings must have the same length',
      DETAIL = format('%s memory ids, %s content hashes, %s embeddings', n, coalesce(cardinality(content_hashes), 0),
                      coalesce(cardinality(embeddings), 0)),
      HINT = 'one element of each array per row imported';
  END IF;
  IF n > max_rows THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'too many rows in one import batch',
      DETAIL = format('%s rows; at most %s per call', n, max_rows),
      HINT = format('split the import into batches of at most %s rows (memoriesdb import-embeddings --batch)', max_rows);
  END IF;
  -- no activation, pause or retirement while the batch is stored (those take SHARE ROW EXCLUSIVE);
  -- imports do not wait for one another here
  LOCK TABLE memoriesdb.embedding_models IN SHARE MODE;
  target := memoriesdb_internal.model_named(import_embeddings.model);   -- MDB16
  IF target.state = 'retired' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'a retired model takes no vectors',
      DETAIL = format('model %L was retired at %s', target.name, target.retired_at),
      HINT = 'register the model again under another name with add_model(), then import into that one';
  END IF;
  IF n = 0 THEN RETURN; END IF;
  -- the memories stay as checked until the commit (a revise() waits); in id order: no deadlock between imports
  PERFORM 1 FROM memoriesdb.memories AS m WHERE m.id = ANY (memory_ids) ORDER BY m.id FOR NO KEY UPDATE;
  RETURN QUERY
  WITH input AS (
    SELECT u.mid, lower(u.h) AS h, u.e, u.i FROM unnest(memory_ids, content_hashes, embeddings) WITH ORDINALITY AS u(mid, h, e, i)
  ), classified AS (
    SELECT i.mid, i.i, i.e,
           CASE WHEN i.h ~ '^[0-9a-f]{64}$' THEN decode(i.h, 'hex') END AS hb,
           CASE WHEN i.mid IS NULL THEN 'no_memory'
                WHEN i.i > min(i.i) OVER (PARTITION BY i.mid) THEN 'duplicate'
                WHEN m.id IS NULL THEN 'no_memory'
                WHEN i.h IS NULL OR i.h !~ '^[0-9a-f]{64}$' THEN 'invalid_hash'
                WHEN decode(i.h, 'hex') <> m.content_hash THEN 'hash_mismatch'
                WHEN i.e IS NULL THEN 'invalid_vector'
                WHEN public.vector_dims(i.e) <> target.dimension THEN 'wrong_dimension'
                WHEN public.vector_norm(i.e) IN (0, 'NaN'::float8, 'Infinity'::float8) THEN 'invalid_vector'
                ELSE 'stored' END AS outcome
      FROM input AS i LEFT JOIN memoriesdb.memories AS m ON m.id = i.mid
  ), good AS (
    SELECT c.mid, c.hb, public.l2_normalize(c.e) AS emb FROM classified AS c WHERE c.outcome = 'stored'
  ), kept AS (
    INSERT INTO memoriesdb.embeddings AS e (memory_id, model_id, content_hash, embedding)
    SELECT g.mid, target.id, g.hb, g.emb FROM good AS g
    ON CONFLICT ON CONSTRAINT embeddings_pkey DO UPDATE SET content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding
    RETURNING e.memory_id
  ), mirrored AS (
    -- the active model's vector is also memories.embedding (search(), the graph), as complete_embedding_jobs() writes it
    UPDATE memoriesdb.memories AS m
       SET embedding = g.emb, embedding_model = target.name, embedded_at = now(), embedded_hash = g.hb
      FROM good AS g
     WHERE target.state = 'active' AND m.id = g.mid AND m.content_hash = g.hb
    RETURNING m.id
  ), finished AS (
    -- the (memory, model) job for this content is done: no worker embeds it again. A job a worker holds
    -- (leased, even past its lease) is left to finish: its complete stores the same content's vector;
    -- removed under it, the complete would take it for a lost lease (and check the vector against the mirror)
    DELETE FROM memoriesdb.embedding_schedule AS s
     USING good AS g
     WHERE s.memory_id = g.mid AND s.model_id = target.id AND s.content_hash = g.hb AND s.lease_id IS NULL
    RETURNING s.memory_id
  )
  SELECT c.mid, c.outcome FROM classified AS c ORDER BY c.i;
END
$$;
COMMENT ON FUNCTION memoriesdb.import_embeddings(text, uuid[], text[], public.vector[]) IS
  'Operator: stores vectors a user already has (memoriesdb import-embeddings) for a model that is not retired, at most 5000 rows per call (MDB12 past it, or for arrays of different lengths). A row is stored (L2-normalised, in embeddings; for the active model also in memories.embedding, embedding_model = the model''s name) only where the memory exists and its CURRENT content_hash equals the row''s (hex SHA-256 of the UTF-8 content); its queued job for that model and content is removed (the workers do not embed it again; a job a worker has leased is left to finish, its vector of the same content replacing the imported one). Returns each row''s outcome, in input order: stored, hash_mismatch (the content changed since), no_memory, invalid_hash (not 64 hex digits), wrong_dimension (not the model''s), invalid_vector (NULL, zero, NaN or infinite), duplicate (the memory again in the same batch: the first row counts). MDB16 for no such model, MDB31 for a retired one.';

COMMIT;
