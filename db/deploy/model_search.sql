-- Deploy memoriesdb:model_search to pg
-- requires: embedding_models
-- requires: search_fn
-- requires: search_text_fn
-- Search by a named embedding model (issue 15, "Versioned embeddings"): search(query, model, ...) and
-- search_hybrid(query, query_vector, model, ...), overloads of the released functions with the model
-- second. The active model (and a NULL model) answers from memories.embedding through the released
-- functions, unchanged; any other model that is not retired from memoriesdb.embeddings and its own
-- HNSW index. Re-deployable (CREATE OR REPLACE only): change it with `sqitch rework model_search`.
-- Who may execute what: privileges.sql.
BEGIN;

CREATE OR REPLACE FUNCTION memoriesdb_internal.model_vector_ranking(query public.vector, model_id uuid, dim integer,
                                  k integer DEFAULT 10, filter jsonb DEFAULT '{}', min_similarity real DEFAULT NULL)
RETURNS TABLE (id uuid, similarity real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
  q public.vector;
  f jsonb := memoriesdb_internal.check_search_filter(filter);
  linked uuid[] := CASE WHEN f ? 'linked_to' THEN memoriesdb_internal.linked_ids(f) END;
  -- the filter's parts, split once for the exact plan (filter_holds())
  f_meta jsonb := f->'metadata';
  f_scope text := f->>'scope';
  f_after timestamptz := (f->>'created_after')::timestamptz;
  f_before timestamptz := (f->>'created_before')::timestamptz;
  ids uuid[];
  chosen text;
  budget integer;
BEGIN
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  PERFORM memoriesdb_internal.check_embedding(query, dim);   -- the model's dimension, NaN, zero: MDB11
  q := public.l2_normalize(query);
  IF uid IS NULL THEN RETURN; END IF;   -- no context: nothing is visible
  SELECT c.plan, c.max_tuples INTO chosen, budget FROM memoriesdb_internal.choose_search_plan(f, uid, linked, k) AS c;
  IF chosen = 'hnsw' THEN   -- as vector_ranking() chooses, with the same budget (37-redteam-search)
    -- approximate: the model's partial HNSW index (memoriesdb_internal.model_index_name()), which matches only a query
    -- with its dimension and its model id as constants: hence EXECUTE
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true),
            set_config('hnsw.ef_search', greatest(memoriesdb.setting('search_ef_search')::int, 4 * k)::text, true),
            set_config('hnsw.max_scan_tuples', budget::text, true);
    EXECUTE format($q$
      SELECT array_agg(r.memory_id ORDER BY r.distance) FROM (
        SELECT e.memory_id, (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1 AS distance
          FROM memoriesdb.embeddings AS e JOIN memoriesdb.memories AS m ON m.id = e.memory_id
         WHERE e.model_id = %2$L::uuid AND memoriesdb_internal.matches_filter(m, $2, $3, $4)
         ORDER BY (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1
         LIMIT $5) AS r $q$, dim, model_id)
      INTO ids USING q, f, uid, linked, k;
    IF cardinality(ids) >= k THEN
      RETURN QUERY
        SELECT m.id, (-(e.embedding OPERATOR(public.<#>) q))::real, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
          FROM unnest(ids) WITH ORDINALITY AS u(id, ord) JOIN memoriesdb.memories AS m ON m.id = u.id
          JOIN memoriesdb.embeddings AS e ON e.memory_id = m.id AND e.model_id = model_vector_ranking.model_id
         WHERE min_similarity IS NULL OR -(e.embedding OPERATOR(public.<#>) q) >= min_similarity
         ORDER BY u.ord;
      RETURN;
    END IF;
    PERFORM set_config('memoriesdb.search_plan', current_setting('memoriesdb.search_plan') || ' -> exact', true);
  END IF;
  -- exact: the caller's rows by index, each with its vector of this model
  RETURN QUERY
    SELECT m.id, (-(e.embedding OPERATOR(public.<#>) q))::real, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
      FROM memoriesdb_internal.visible_memories(uid) AS m
      JOIN memoriesdb.embeddings AS e ON e.memory_id = m.id AND e.model_id = model_vector_ranking.model_id
     WHERE memoriesdb_internal.filter_holds(m, f_meta, f_scope, f_after, f_before, uid, linked)
       AND (min_similarity IS NULL OR -(e.embedding OPERATOR(public.<#>) q) >= min_similarity)
     ORDER BY (e.embedding OPERATOR(public.<#>) q) + 0
     LIMIT k;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.model_vector_ranking(public.vector, uuid, integer, integer, jsonb, real) IS
  'Internal: the vector ranking of one model''s vectors (memoriesdb.embeddings), as vector_ranking() ranks memories.embedding: exact over the caller''s rows when few, else the model''s HNSW index with iterative scan. Runs as memoriesdb_reader under row-level security; called by the model overloads of search() and search_hybrid() only.';
ALTER FUNCTION memoriesdb_internal.model_vector_ranking(public.vector, uuid, integer, integer, jsonb, real) OWNER TO memoriesdb_reader;

-- which model a search names: NULL for the active one (memories.embedding), else (id, dimension)
CREATE OR REPLACE FUNCTION memoriesdb_internal.search_model(model text) RETURNS memoriesdb.embedding_models
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m memoriesdb.embedding_models;
BEGIN
  IF model IS NULL THEN RETURN NULL; END IF;
  SELECT * INTO m FROM memoriesdb.embedding_models AS em WHERE em.name = model;
  IF m.id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB16', MESSAGE = 'no such embedding model',
      DETAIL = format('no model is named %L', model),
      HINT = 'name a registered model (memoriesdb models list), or none for the active one';
  END IF;
  IF m.state = 'retired' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'a retired model has no vectors to search',
      DETAIL = format('model %L was retired at %s', m.name, m.retired_at),
      HINT = 'search with the active model (no model) or one that is filling, paused or active';
  END IF;
  IF m.state = 'active' THEN RETURN NULL; END IF;
  RETURN m;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.search_model(text) IS
  'Internal: the model a search names: NULL for none or the active model (searched through memories.embedding), else its registry row; MDB16 for no such model, MDB31 for a retired one.';
ALTER FUNCTION memoriesdb_internal.search_model(text) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.search_model_info(name text)
RETURNS TABLE (model text, provider text, dimension integer, state text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  m memoriesdb.embedding_models;
BEGIN
  SELECT * INTO m FROM memoriesdb.embedding_models AS em WHERE em.name = search_model_info.name;
  IF m.id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB16', MESSAGE = 'no such embedding model',
      DETAIL = format('no model is named %L', search_model_info.name),
      HINT = 'name a registered model (memoriesdb models list), or none for the active one';
  END IF;
  RETURN QUERY SELECT m.name, m.provider, m.dimension, m.state;
END
$$;
COMMENT ON FUNCTION memoriesdb.search_model_info(text) IS
  'A registered model''s provider, dimension and state, for a client that embeds a query for search(query, model, ...) (memoriesdb search --model): which provider makes its vectors, of which dimension. No tenant data. MDB16 for no such model.';
ALTER FUNCTION memoriesdb.search_model_info(text) OWNER TO memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb.search(query public.vector, model text, k integer DEFAULT 10, filter jsonb DEFAULT '{}',
                                  min_similarity real DEFAULT NULL)
RETURNS TABLE (id uuid, similarity real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
SET jit = off
AS $$
DECLARE
  chosen memoriesdb.embedding_models := memoriesdb_internal.search_model(model);
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea;
  viewer uuid;
BEGIN
  PERFORM memoriesdb_internal.context_user();   -- the proof verified once, before the policies below ask
  IF chosen.id IS NULL THEN   -- the active model: the released search(), which logs itself
    RETURN QUERY SELECT * FROM memoriesdb.search(query, k, filter, min_similarity);
    RETURN;
  END IF;
  log_query := memoriesdb_internal.query_fingerprint(NULL, query, k, filter, concat_ws(',', min_similarity, chosen.name));
  FOR id, similarity, content, metadata, owner_id, created_by, created_at IN
      SELECT * FROM memoriesdb_internal.model_vector_ranking(query, chosen.id, chosen.dimension, k, filter, min_similarity) LOOP
    log_ids := log_ids || id;
    IF created_by <> owner_id THEN
      viewer := coalesce(viewer, memoriesdb.current_user_id());
      created_by := memoriesdb_internal.disclosed_user(created_by, viewer, owner_id);
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb_internal.record_read('search', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search(public.vector, text, integer, jsonb, real) IS
  'search() with the embedding model named (the query vector must be that model''s, of its dimension: MDB11 otherwise): NULL or the active model searches as search(query, k, ...) does; a filling or paused model searches the vectors it has so far. MDB16 for no such model, MDB31 for a retired one. Same visibility, filter and access log entry as search().';
ALTER FUNCTION memoriesdb.search(public.vector, text, integer, jsonb, real) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.search_hybrid(query text, query_vector public.vector, model text, k integer DEFAULT 10,
                                                    filter jsonb DEFAULT '{}', vector_weight real DEFAULT 1,
                                                    text_weight real DEFAULT 1, rrf_k integer DEFAULT 2)
RETURNS TABLE (id uuid, score real, vector_rank integer, text_rank integer, similarity real,
               content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
SET jit = off
AS $$
DECLARE
  chosen memoriesdb.embedding_models := memoriesdb_internal.search_model(model);
  depth integer;
  viewer uuid;
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea;
BEGIN
  PERFORM memoriesdb_internal.context_user();   -- the proof verified once, before the policies below ask
  IF chosen.id IS NULL THEN   -- the active model: the released search_hybrid(), which checks and logs
    RETURN QUERY SELECT * FROM memoriesdb.search_hybrid(query, query_vector, k, filter, vector_weight, text_weight, rrf_k);
    RETURN;
  END IF;
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  IF vector_weight IS NULL OR text_weight IS NULL OR rrf_k IS NULL
     OR NOT (vector_weight >= 0 AND vector_weight < 'Infinity'::real AND text_weight >= 0 AND text_weight < 'Infinity'::real)
     OR (vector_weight = 0 AND text_weight = 0) OR rrf_k < 1 OR rrf_k > 1000000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid fusion parameters',
      DETAIL = format('vector_weight %s, text_weight %s, rrf_k %s', vector_weight, text_weight, rrf_k),
      HINT = 'weights are finite, >= 0 and not both 0; rrf_k is between 1 and 1000000 (the default, 2, lets the top of either ranking lead)';
  END IF;
  log_query := memoriesdb_internal.query_fingerprint(query, query_vector, k, filter,
                                                     concat_ws(',', vector_weight, text_weight, rrf_k, chosen.name));
  depth := least(1000, greatest(4 * k, 40));
  FOR id, score, vector_rank, text_rank, similarity, content, metadata, owner_id, created_by, created_at IN
    WITH v AS (SELECT s.*, row_number() OVER (ORDER BY s.similarity DESC)::int AS r
                 FROM memoriesdb_internal.model_vector_ranking(query_vector, chosen.id, chosen.dimension, depth, filter) AS s),
         t AS (SELECT s.*, row_number() OVER (ORDER BY s.score DESC)::int AS r
                 FROM memoriesdb_internal.text_ranking(query, depth, filter) AS s)
    SELECT coalesce(v.id, t.id),
           (coalesce(vector_weight / (rrf_k + v.r), 0) + coalesce(text_weight / (rrf_k + t.r), 0))::real AS fused,
           v.r, t.r, v.similarity, coalesce(v.content, t.content), coalesce(v.metadata, t.metadata),
           coalesce(v.owner_id, t.owner_id), coalesce(v.created_by, t.created_by), coalesce(v.created_at, t.created_at)
      FROM v FULL JOIN t ON t.id = v.id
     ORDER BY fused DESC, 1
     LIMIT k
  LOOP
    log_ids := log_ids || id;
    IF created_by <> owner_id THEN
      viewer := coalesce(viewer, memoriesdb.current_user_id());
      created_by := memoriesdb_internal.disclosed_user(created_by, viewer, owner_id);
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb_internal.record_read('search_hybrid', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search_hybrid(text, public.vector, text, integer, jsonb, real, real, integer) IS
  'search_hybrid() with the embedding model named for the vector ranking (query_vector must be that model''s): NULL or the active model fuses as search_hybrid(query, query_vector, k, ...) does; a filling or paused model ranks the vectors it has so far. MDB16 for no such model, MDB31 for a retired one; otherwise as search_hybrid().';
ALTER FUNCTION memoriesdb.search_hybrid(text, public.vector, text, integer, jsonb, real, real, integer) OWNER TO memoriesdb_reader;

COMMIT;
