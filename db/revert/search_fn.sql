-- Revert memoriesdb:search_fn from pg (back to the @v0.4.0 functions)
-- Reworked after @v0.3.0 (released version: search_fn@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: search_fn@v0.2.0
-- requires: internal_schema
-- Live functions of vector search: search() (logged) over vector_ranking() (the ranking itself), and the helpers both search paths share.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework search_fn`.
-- Run once, by search_fn@v0.1.0.sql: the HNSW index on memories.embedding, search settings. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_query_vector(query public.vector) RETURNS public.vector
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM memoriesdb_internal.check_embedding(query);   -- dimension, NaN, zero: MDB11
  RETURN public.l2_normalize(query);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_query_vector(public.vector) IS 'Internal: a query vector checked like a stored embedding, then L2-normalised.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_search_filter(filter jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  unknown text[];
BEGIN
  IF filter IS NULL THEN RETURN '{}'::jsonb; END IF;
  IF jsonb_typeof(filter) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'filter must be a JSON object';
  END IF;
  SELECT array_agg(k ORDER BY k) INTO unknown FROM jsonb_object_keys(filter) AS k
   WHERE k NOT IN ('metadata', 'scope', 'created_after', 'created_before', 'linked_to');
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'unknown filter key',
      DETAIL = format('unknown: %s', array_to_string(unknown, ', ')),
      HINT = 'filter keys: metadata (object, containment), scope (own | shared | all), created_after, created_before (timestamps), linked_to (memory id)';
  END IF;
  IF filter ? 'metadata' AND jsonb_typeof(filter->'metadata') <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'filter.metadata must be a JSON object';
  END IF;
  IF filter ? 'scope' AND (filter->>'scope') NOT IN ('own', 'shared', 'all') THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'filter.scope must be own, shared or all';
  END IF;
  IF filter ?| ARRAY['created_after', 'created_before', 'linked_to'] THEN
    BEGIN   -- a subtransaction, only when there is something to parse
      PERFORM (filter->>'created_after')::timestamptz, (filter->>'created_before')::timestamptz, (filter->>'linked_to')::uuid;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_text_representation THEN
      RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid filter value', DETAIL = SQLERRM,
        HINT = 'created_after/created_before take timestamps, linked_to a memory id';
    END;
  END IF;
  RETURN filter;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_search_filter(jsonb) IS 'Internal: validates a search filter; unknown keys are an error (MDB12), not ignored.';

-- Inlined into the search queries, so it must have no SET clause and no
-- subquery (either stops inlining, and it would run, and be planned, per row);
-- linked_to is therefore resolved once, by linked_ids(), into an array.
CREATE OR REPLACE FUNCTION memoriesdb_internal.matches_filter(m memoriesdb.memories, filter jsonb, uid uuid, linked uuid[]) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT (NOT filter OPERATOR(pg_catalog.?) 'metadata' OR m.metadata OPERATOR(pg_catalog.@>) (filter->'metadata'))
     AND (coalesce(filter->>'scope', 'all') = 'all'
          OR (filter->>'scope' = 'own' AND m.owner_id = uid)
          OR (filter->>'scope' = 'shared' AND m.owner_id <> uid))
     AND (NOT filter OPERATOR(pg_catalog.?) 'created_after' OR m.created_at > (filter->>'created_after')::timestamptz)
     AND (NOT filter OPERATOR(pg_catalog.?) 'created_before' OR m.created_at < (filter->>'created_before')::timestamptz)
     AND (linked IS NULL OR m.id = ANY (linked))
$$;
COMMENT ON FUNCTION memoriesdb_internal.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[]) IS 'Internal: does a memory pass a (validated) search filter? linked: the ids of linked_ids(filter), NULL for no linked_to.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.linked_ids(filter jsonb) RETURNS uuid[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
  -- the memories linked to filter.linked_to either way, read under the caller's RLS
  SELECT CASE WHEN filter ? 'linked_to' THEN coalesce((
    SELECT array_agg(CASE WHEN e.source_id = (filter->>'linked_to')::uuid THEN e.target_id ELSE e.source_id END)
      FROM memoriesdb.memory_edges AS e
     WHERE e.source_id = (filter->>'linked_to')::uuid OR e.target_id = (filter->>'linked_to')::uuid), '{}') END
$$;
COMMENT ON FUNCTION memoriesdb_internal.linked_ids(jsonb) IS 'Internal: for a filter with linked_to, the ids linked to it (edges read under RLS); NULL without.';

-- the rows a caller may see, by index: its own (owner_id) and its grants'
-- (grantee_id, then the primary key). Row-level security still applies on top.
CREATE OR REPLACE FUNCTION memoriesdb_internal.visible_memories(uid uuid) RETURNS SETOF memoriesdb.memories
LANGUAGE sql STABLE
AS $$
  SELECT m.* FROM memoriesdb.memories AS m WHERE m.owner_id = uid
  UNION ALL
  SELECT m.* FROM memoriesdb.memory_grants AS g JOIN memoriesdb.memories AS m ON m.id = g.memory_id
   WHERE g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at OPERATOR(pg_catalog.>) pg_catalog.statement_timestamp())
$$;
COMMENT ON FUNCTION memoriesdb_internal.visible_memories(uuid) IS 'Internal: the memories uid owns or holds an unexpired grant on, read by index; the exact plans of the search functions scan only these. Inlined (no SET clause), so RLS applies as in the caller.';

-- How much may uid see, up to cap? The search functions pick their plan by it.
-- Counting under the caller's RLS costs a policy check per row (25 ms for a
-- tenant of 30,000); here, as the owner, the planner statistics answer for the
-- tenants they list as most common, and an index-only count that stops at cap
-- answers for everyone else (cheap exactly when the tenant is small).
CREATE OR REPLACE FUNCTION memoriesdb_internal.visible_count(cap bigint) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();   -- never another user's: no counts leak
  freq real;
  owned bigint;
  granted bigint;
BEGIN
  SELECT st.most_common_freqs[array_position(st.most_common_vals::text::uuid[], uid)] INTO freq
    FROM pg_catalog.pg_stats AS st
   WHERE st.schemaname = 'memoriesdb' AND st.tablename = 'memories' AND st.attname = 'owner_id';
  IF freq IS NOT NULL THEN
    owned := (freq * (SELECT greatest(c.reltuples, 0) FROM pg_catalog.pg_class AS c WHERE c.oid = 'memoriesdb.memories'::regclass))::bigint;
  END IF;
  IF owned IS NULL OR owned <= cap THEN
    SELECT count(*) INTO owned FROM (SELECT 1 FROM memoriesdb.memories AS m WHERE m.owner_id = uid LIMIT cap + 1) AS x;
  END IF;
  SELECT count(*) INTO granted FROM (SELECT 1 FROM memoriesdb.memory_grants AS g WHERE g.grantee_id = uid LIMIT cap + 1) AS x;
  RETURN least(owned + granted, cap + 1);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.visible_count(bigint) IS 'Internal: how many memories the context user may see, exact up to cap, cap + 1 beyond (from planner statistics for the largest tenants). Only ever about the caller itself.';

-- What a search's query hash covers: the query and every argument that shapes the answer.
CREATE OR REPLACE FUNCTION memoriesdb_internal.query_fingerprint(query_text text, query_vector public.vector, k integer, filter jsonb, extra text DEFAULT NULL)
RETURNS bytea
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.convert_to(pg_catalog.concat_ws(E'\x1f', k, filter, extra, query_text), 'UTF8')
         OPERATOR(pg_catalog.||) coalesce(public.vector_send(query_vector), ''::bytea)
$$;
COMMENT ON FUNCTION memoriesdb_internal.query_fingerprint(text, public.vector, integer, jsonb, text) IS
  'Internal: the bytes record_read() hashes (with a key) into a search''s query_hash: text, vector, k, filter and the other arguments.';

RESET ROLE;   -- replaced as the deploying superuser; ownership set below, in this transaction

CREATE OR REPLACE FUNCTION memoriesdb_internal.vector_ranking(query public.vector, k integer DEFAULT 10, filter jsonb DEFAULT '{}',
                                  min_similarity real DEFAULT NULL)
RETURNS TABLE (id uuid, similarity real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
  q public.vector;
  f jsonb := memoriesdb_internal.check_search_filter(filter);
  linked uuid[] := CASE WHEN f ? 'linked_to' THEN memoriesdb_internal.linked_ids(f) END;
  exact_max bigint := memoriesdb.setting('search_exact_max')::bigint;
  visible bigint;
  ids uuid[];
  saved_iter text := current_setting('hnsw.iterative_scan', true);
  saved_ef text := current_setting('hnsw.ef_search', true);
  saved_max text := current_setting('hnsw.max_scan_tuples', true);
BEGIN
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  q := memoriesdb_internal.check_query_vector(query);
  IF uid IS NULL THEN RETURN; END IF;   -- no context: nothing is visible

  -- how much may the caller see? (up to exact_max; see visible_count())
  visible := memoriesdb_internal.visible_count(exact_max);

  IF visible > exact_max THEN
    -- approximate: the HNSW index, scanning on until k rows pass the policy and the filter
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true),
            set_config('hnsw.ef_search', greatest(memoriesdb.setting('search_ef_search')::int, 4 * k)::text, true),
            set_config('hnsw.max_scan_tuples', memoriesdb.setting('search_max_scan_tuples')::text, true);
    SELECT array_agg(r.id ORDER BY r.distance) INTO ids
      FROM (SELECT m.id, m.embedding OPERATOR(public.<#>) q AS distance
              FROM memoriesdb.memories AS m
             WHERE memoriesdb_internal.matches_filter(m, f, uid, linked)
             ORDER BY m.embedding OPERATOR(public.<#>) q
             LIMIT k) AS r;   -- relaxed_order: re-sorted by distance above
    PERFORM set_config('hnsw.iterative_scan', coalesce(saved_iter, 'off'), true),
            set_config('hnsw.ef_search', coalesce(saved_ef, '40'), true),
            set_config('hnsw.max_scan_tuples', coalesce(saved_max, '20000'), true);
    IF cardinality(ids) >= k THEN
      RETURN QUERY
        SELECT m.id, (-(m.embedding OPERATOR(public.<#>) q))::real, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
          FROM unnest(ids) WITH ORDINALITY AS u(id, ord) JOIN memoriesdb.memories AS m ON m.id = u.id
         WHERE min_similarity IS NULL OR -(m.embedding OPERATOR(public.<#>) q) >= min_similarity
         ORDER BY u.ord;
      RETURN;
    END IF;
    -- fewer than k: the scan hit max_scan_tuples or the statistics were stale;
    -- answer exactly rather than return a short list
  END IF;

  -- exact: only the caller's rows are read (by index); "+ 0" keeps the planner off the HNSW index
  RETURN QUERY
    SELECT m.id, (-(m.embedding OPERATOR(public.<#>) q))::real, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
      FROM memoriesdb_internal.visible_memories(uid) AS m
     WHERE m.embedding IS NOT NULL
       AND memoriesdb_internal.matches_filter(m, f, uid, linked)
       AND (min_similarity IS NULL OR -(m.embedding OPERATOR(public.<#>) q) >= min_similarity)
     ORDER BY (m.embedding OPERATOR(public.<#>) q) + 0
     LIMIT k;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real) IS
  'Internal: the vector ranking behind search(), without the access log entry; search() and search_hybrid() call it, nothing else may. Runs as memoriesdb_reader under row-level security.';
ALTER FUNCTION memoriesdb_internal.vector_ranking(vector, integer, jsonb, real) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.search(query public.vector, k integer DEFAULT 10, filter jsonb DEFAULT '{}',
                                  min_similarity real DEFAULT NULL)
RETURNS TABLE (id uuid, similarity real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea := memoriesdb_internal.query_fingerprint(NULL, query, k, filter, min_similarity::text);
  viewer uuid;   -- the caller, read only for a memory that changed hands
BEGIN
  FOR id, similarity, content, metadata, owner_id, created_by, created_at IN
      SELECT * FROM memoriesdb_internal.vector_ranking(query, k, filter, min_similarity) LOOP
    log_ids := log_ids || id;
    IF created_by <> owner_id THEN   -- a memory that changed hands: its creator only if the caller deals with them
      viewer := coalesce(viewer, memoriesdb.current_user_id());
      created_by := memoriesdb_internal.disclosed_user(created_by, viewer, owner_id);
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb_internal.record_read('search', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search(public.vector, integer, jsonb, real) IS
  'The k visible memories most similar to query (cosine similarity, 1 = same direction): the caller''s own and those shared with it by unexpired grants; forgotten ones never. Row-level security decides (it runs as memoriesdb_reader, which the same policies bind). filter: {"metadata": {...} (containment), "scope": "own"|"shared"|"all", "created_after": ts, "created_before": ts, "linked_to": memory id}; unknown keys are an error. MDB11 for a query vector of the wrong dimension, NaN or zero. Small callers get an exact scan, large ones the HNSW index with iterative scan (config search_exact_max). Each call is one access log entry with the ids returned and a hash of the query.';
ALTER FUNCTION memoriesdb.search(vector, integer, jsonb, real) OWNER TO memoriesdb_reader;

-- the plan choice of (v0.5), gone with it (the functions above no longer call them)
DROP FUNCTION IF EXISTS memoriesdb.calibrate_search(integer, real, boolean);
DROP FUNCTION IF EXISTS memoriesdb.calibrate_search_fraction(integer, real, boolean, integer);
DROP FUNCTION IF EXISTS memoriesdb_internal.calibration_sample(integer);
DROP FUNCTION IF EXISTS memoriesdb_internal.recall_misses(double precision, double precision, real);
DROP FUNCTION IF EXISTS memoriesdb_internal.exact_ranking(public.vector, integer, uuid, jsonb, text, timestamptz, timestamptz, uuid[], real);
DROP FUNCTION IF EXISTS memoriesdb_internal.filter_holds(memoriesdb.memories, jsonb, text, timestamptz, timestamptz, uuid, uuid[]);
DROP FUNCTION memoriesdb_internal.choose_search_plan(jsonb, uuid, uuid[], integer);
DROP FUNCTION memoriesdb_internal.search_plan(bigint, double precision, double precision, integer);
DROP FUNCTION memoriesdb_internal.search_count_cap(double precision, integer);
DROP FUNCTION memoriesdb_internal.filter_sample(jsonb, uuid, uuid[], integer);
DROP FUNCTION IF EXISTS memoriesdb_internal.filter_matching(integer, integer, double precision, uuid[]);
DROP FUNCTION memoriesdb_internal.visible_counts(bigint, boolean);

COMMIT;
