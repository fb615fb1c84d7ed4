-- Deploy memoriesdb:search_fn to pg
-- Reworked after @v0.4.0 (released version: search_fn@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: search_fn@v0.2.0
-- requires: internal_schema
-- requires: active_model_index
-- requires: search_plan_config
-- v0.5 (versioned embeddings): the large-caller plan reads the ACTIVE model's vectors in memoriesdb.embeddings
-- through that model's partial HNSW index (active_model_index.sql): memories.embedding, the mirror the exact plan
-- reads, has no HNSW index any more, so activate_model() rewrites it without an HNSW insert per memory.
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
-- filter_holds() takes the filter's parts, each NULL when absent: a plan made once
-- for every filter (a generic plan) tests "meta IS NULL" per row, where
-- matches_filter() looks each key up in the jsonb and casts it again per row
-- (0.37 µs a row: 11 of 40 ms over a 30,000-memory tenant's rows, bench/search.py).
CREATE OR REPLACE FUNCTION memoriesdb_internal.filter_holds(m memoriesdb.memories, meta jsonb, scope text, after timestamptz,
                                                           before timestamptz, uid uuid, linked uuid[]) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT (meta IS NULL OR m.metadata OPERATOR(pg_catalog.@>) meta)
     AND (scope IS NULL OR scope = 'all'
          OR (scope = 'own' AND m.owner_id = uid)
          OR (scope = 'shared' AND m.owner_id <> uid))
     AND (after IS NULL OR m.created_at > after)
     AND (before IS NULL OR m.created_at < before)
     AND (linked IS NULL OR m.id = ANY (linked))
$$;
COMMENT ON FUNCTION memoriesdb_internal.filter_holds(memoriesdb.memories, jsonb, text, timestamptz, timestamptz, uuid, uuid[]) IS
  'Internal: does a memory pass a (validated) search filter given by its parts (metadata containment, scope, created_after, created_before; NULL: not asked) and linked (the ids of linked_ids(filter), NULL for no linked_to)? Inlined; a caller that runs one plan for every filter splits the filter once (exact plan of vector_ranking()).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.matches_filter(m memoriesdb.memories, filter jsonb, uid uuid, linked uuid[]) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT memoriesdb_internal.filter_holds(m, filter->'metadata', filter->>'scope', (filter->>'created_after')::timestamptz,
                                          (filter->>'created_before')::timestamptz, uid, linked)
$$;
COMMENT ON FUNCTION memoriesdb_internal.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[]) IS 'Internal: does a memory pass a (validated) search filter? linked: the ids of linked_ids(filter), NULL for no linked_to. Inlined (filter_holds() with the filter''s parts).';

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
CREATE OR REPLACE FUNCTION memoriesdb_internal.visible_counts(cap bigint, use_stats boolean, OUT owned bigint, OUT granted bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();   -- never another user's: no counts leak
  freq real;
BEGIN
  IF use_stats THEN
    SELECT st.most_common_freqs[array_position(st.most_common_vals::text::uuid[], uid)] INTO freq
      FROM pg_catalog.pg_stats AS st
     WHERE st.schemaname = 'memoriesdb' AND st.tablename = 'memories' AND st.attname = 'owner_id';
    IF freq IS NOT NULL THEN
      owned := (freq * (SELECT greatest(c.reltuples, 0) FROM pg_catalog.pg_class AS c WHERE c.oid = 'memoriesdb.memories'::regclass))::bigint;
    END IF;
  END IF;
  IF owned IS NULL OR owned <= cap THEN
    SELECT count(*) INTO owned FROM (SELECT 1 FROM memoriesdb.memories AS m WHERE m.owner_id = uid LIMIT cap + 1) AS x;
  END IF;
  -- unexpired only, as visible_memories() reads them: an expired grant's memory is none of the caller's business
  -- any more (counted, its owner's forget or unshare would show in the caller's report; 37-redteam-search)
  SELECT count(*) INTO granted FROM (SELECT 1 FROM memoriesdb.memory_grants AS g
                                      WHERE g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())
                                      LIMIT cap + 1) AS x;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.visible_counts(bigint, boolean) IS 'Internal: how many memories the context user owns and holds unexpired grants on, each exact up to cap, cap + 1 beyond; with use_stats, owned from the planner statistics for the largest tenants (which may exceed cap; read first, so a large tenant is not counted row by row), else by the owner index only (cheapest for a small cap). Only ever about the caller itself.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.visible_count(cap bigint) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT least(c.owned + c.granted, cap + 1) FROM memoriesdb_internal.visible_counts(cap, true) AS c
$$;
COMMENT ON FUNCTION memoriesdb_internal.visible_count(bigint) IS 'Internal: how many memories the context user may see, exact up to cap, cap + 1 beyond (from planner statistics for the largest tenants). Only ever about the caller itself.';

-- The share of the caller's rows a filter keeps, from a sample: the first n rows
-- visible_memories() yields (owned first, in the owner index's order, then granted).
-- Read as the caller, under its row-level security: a filter's selectivity over
-- other tenants' rows never enters the plan choice. PL/pgSQL, the filter split once
-- (filter_holds()): as SQL it was planned again at every call and looked each key up
-- per row, 1.3 ms a sample of 500 against 0.6 (bench/search.py's 5% tenant). Read by a plain index scan, which
-- stops at n: the generic plan's bitmap scan first collected every row the caller owns (30,000 for the 30% tenant:
-- 2.7 ms a sample against 0.8, measured).
CREATE OR REPLACE FUNCTION memoriesdb_internal.filter_sample(f jsonb, uid uuid, linked uuid[], n integer,
                                                            OUT sampled integer, OUT matched integer)
LANGUAGE plpgsql STABLE
SET enable_bitmapscan = off
AS $$
DECLARE
  f_meta jsonb := f->'metadata';
  f_scope text := f->>'scope';
  f_after timestamptz := (f->>'created_after')::timestamptz;
  f_before timestamptz := (f->>'created_before')::timestamptz;
BEGIN
  SELECT count(*)::int, (count(*) FILTER (WHERE memoriesdb_internal.filter_holds(m, f_meta, f_scope, f_after, f_before, uid, linked)))::int
    INTO sampled, matched
    FROM (SELECT m.* FROM memoriesdb_internal.visible_memories(uid) AS m LIMIT n) AS m;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.filter_sample(jsonb, uuid, uuid[], integer) IS 'Internal: of the first n memories uid may see (its own first), how many were sampled and how many pass filter f; run under the caller''s row-level security.';

-- How many of visible rows pass a filter, from filter_sample()'s counts: all of them when the sample was the whole,
-- else the sampled share with +0.5 smoothing (a sample with none passing still leaves a few); at most the linked ids.
CREATE OR REPLACE FUNCTION memoriesdb_internal.filter_matching(sampled integer, matched integer, visible double precision,
                                                              linked uuid[]) RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$
  SELECT least(CASE WHEN sampled >= visible THEN matched::double precision
                    ELSE visible * (matched + 0.5::double precision) / (sampled + 1) END,
               coalesce(cardinality(linked)::double precision, 'Infinity'))
$$;
COMMENT ON FUNCTION memoriesdb_internal.filter_matching(integer, integer, double precision, uuid[]) IS
  'Internal: the estimated number of visible rows that pass a filter, from filter_sample()''s sampled and matched (smoothed; exact when the sample was all of them), at most the number of linked ids (NULL: no linked_to).';

-- The plan of one vector search (issue 16): the HNSW index with iterative scan returns the table's rows
-- nearest first, of which only the fraction p = matching / total is the caller's and passes its filter; to
-- find k it returns about max(ef_search, k / p) index tuples. The exact plan reads the caller's visible rows
-- by index, all of them, filter or not. HNSW wins when search_hnsw_tuple_cost (one index tuple's cost in
-- exact-plan rows, measured by bench/search.py) times its tuples is below the caller's visible rows; below
-- search_hnsw_min_fraction its recall falls short (measured) and the exact plan answers whatever it costs.
CREATE OR REPLACE FUNCTION memoriesdb_internal.search_plan(visible bigint, matching double precision, total double precision, k integer)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p double precision := least(1, matching / greatest(total, 1));
  tuples double precision;
BEGIN
  IF visible <= memoriesdb.setting('search_exact_max')::bigint OR matching < k THEN RETURN 'exact'; END IF;
  IF p < memoriesdb.setting('search_hnsw_min_fraction')::double precision THEN RETURN 'exact'; END IF;
  tuples := greatest(memoriesdb.setting('search_ef_search')::int, 4 * k, k / p);
  IF tuples > memoriesdb.setting('search_max_scan_tuples')::double precision THEN RETURN 'exact'; END IF;
  RETURN CASE WHEN memoriesdb.setting('search_hnsw_tuple_cost')::double precision * tuples < visible THEN 'hnsw' ELSE 'exact' END;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.search_plan(bigint, double precision, double precision, integer) IS
  'Internal: exact or hnsw, for a caller who sees visible memories of which about matching pass its filter, in a table of total, wanting k: exact up to search_exact_max visible, below search_hnsw_min_fraction = matching / total, or when search_hnsw_tuple_cost * max(ef_search, 4 k, k * total / matching) index tuples cost more than reading the visible rows.';

-- How far must choose_search_plan() count a caller's rows before the count can no longer change search_plan()'s
-- answer? search_plan() is monotone in the count (more rows: a larger share, fewer index tuples a row found, more
-- rows for the exact plan to read), so the count is needed exactly up to the smallest one it answers 'hnsw' for;
-- past it "more than cap" decides as the true count would. Each of search_plan()'s conditions gives a bound, taken
-- for a caller whose filter keeps at least half its rows (matching >= visible / 2; no filter keeps all): visible past
-- search_exact_max, matching >= k (2 k), matching / total >= search_hnsw_min_fraction (2 * fraction * total),
-- tuple cost * max(ef_search, 4 k) < visible, tuple cost * k * total / matching < visible (sqrt(2 * cost * k * total))
-- and k * total / matching within search_max_scan_tuples (2 * k * total / max). Counted only to the share floor, a
-- floor of 0 counted nothing and every search was exact; at 1,000,000 with the floor calibrated to 0.003 (6,000) a
-- 2% tenant counted "more than 6,000" was exact where its 20,000 rows take the index.
CREATE OR REPLACE FUNCTION memoriesdb_internal.search_count_cap(total double precision, k integer) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  tuple_cost double precision := greatest(memoriesdb.setting('search_hnsw_tuple_cost')::double precision, 0);
  rows double precision := greatest(total, 0);
  exact_max bigint := memoriesdb.setting('search_exact_max')::bigint;
  max_scan double precision := memoriesdb.setting('search_max_scan_tuples')::double precision;
BEGIN
  -- no count could take the index (not even the whole table's, all matching; e.g. a tuple cost set to disable it):
  -- counting past the floor would change nothing
  IF memoriesdb_internal.search_plan(greatest(ceil(rows), 1)::bigint, rows, rows, k) = 'exact' THEN
    RETURN exact_max;
  END IF;
  -- (a NULL setting drops out of greatest(), as it is no limit in search_plan(); at most 10^15, a bigint)
  RETURN ceil(least(greatest(exact_max::double precision, 2 * k,
                             2 * memoriesdb.setting('search_hnsw_min_fraction')::double precision * rows,
                             tuple_cost * greatest(memoriesdb.setting('search_ef_search')::int, 4 * k),
                             sqrt(2 * tuple_cost * k * rows),
                             2 * k * rows / CASE WHEN max_scan IS NULL THEN NULL WHEN max_scan > 1 THEN max_scan ELSE 1 END),
                    1e15))::bigint;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.search_count_cap(double precision, integer) IS
  'Internal: up to how many visible memories choose_search_plan() counts a caller in a table of total, wanting k: the smallest count past which search_plan() answers as it would for any larger one (for no filter, or one keeping at least half the rows), from the search settings (at most 10^15); search_exact_max when no count could take the index.';

-- The inputs of search_plan() for the context user and a validated filter, and the plan, also reported
-- (transaction-local) in the setting memoriesdb.search_plan: "hnsw" or "exact", then what it was chosen from.
-- Runs as the caller (the sample under its row-level security).
CREATE OR REPLACE FUNCTION memoriesdb_internal.choose_search_plan(f jsonb, uid uuid, linked uuid[], k integer,
                                                                 OUT plan text, OUT max_tuples integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  total double precision := (SELECT greatest(c.reltuples, 0)::double precision FROM pg_catalog.pg_class AS c
                              WHERE c.oid = 'memoriesdb.memories'::regclass);
  owned bigint;
  granted bigint;
  visible bigint;
  matching double precision;
  s record;
  tuple_cost double precision := memoriesdb.setting('search_hnsw_tuple_cost')::double precision;
  exact_max bigint := memoriesdb.setting('search_exact_max')::bigint;
  min_fraction double precision;   -- read past search_exact_max only (a small caller's plan needs none of these)
  sample_size integer;
  filtered boolean;
  sampled boolean := false;
  cap bigint;
BEGIN
  -- first by index up to search_exact_max, the floor of the exact plan (a small caller stops here, cheaply); past it,
  -- counted exactly up to where the count can no longer change the plan (search_count_cap()), the statistics
  -- answering for the largest tenants first, cap + 1 for others
  SELECT c.owned, c.granted INTO owned, granted FROM memoriesdb_internal.visible_counts(exact_max, false) AS c;
  visible := CASE coalesce(f->>'scope', 'all') WHEN 'own' THEN owned WHEN 'shared' THEN granted ELSE owned + granted END;
  IF visible > exact_max THEN
    min_fraction := memoriesdb.setting('search_hnsw_min_fraction')::double precision;
    sample_size := memoriesdb.setting('search_filter_sample')::int;
    filtered := f ?| ARRAY['metadata', 'created_after', 'created_before'] OR linked IS NOT NULL;
    cap := memoriesdb_internal.search_count_cap(total, k);
    -- With a filter, counted first only up to ten samples' worth: a caller past that is sampled, and a filter whose
    -- share of its rows is below search_hnsw_min_fraction makes the plan exact whatever the count (the matching rows'
    -- share of the table is at most the filter's share of the caller's): the count up to the cap is spared (up to 6%
    -- of the table: 60,000 index entries at 1,000,000; 30,000 took 1.6-2.7 ms). The statistics still answer for the
    -- largest tenants; another caller's visible is then reported as ten samples + 1 ("more than").
    SELECT c.owned, c.granted INTO owned, granted
      FROM memoriesdb_internal.visible_counts(CASE WHEN filtered THEN least(cap, 10 * sample_size) ELSE cap END, true) AS c;
    visible := CASE coalesce(f->>'scope', 'all') WHEN 'own' THEN owned WHEN 'shared' THEN granted ELSE owned + granted END;
    IF filtered AND cap > 10 * sample_size AND visible > 10 * sample_size THEN
      SELECT * INTO s FROM memoriesdb_internal.filter_sample(f, uid, linked, sample_size);
      sampled := true;
      -- the count may decide: the sample's estimate of the matching rows (filter_matching(), as the plan below takes it)
      -- is at least search_hnsw_min_fraction of the rows counted so far
      IF memoriesdb_internal.filter_matching(s.sampled, s.matched, visible, linked) >= min_fraction * visible THEN
        SELECT c.owned, c.granted INTO owned, granted FROM memoriesdb_internal.visible_counts(cap, true) AS c;
        visible := CASE coalesce(f->>'scope', 'all') WHEN 'own' THEN owned WHEN 'shared' THEN granted ELSE owned + granted END;
      END IF;
    END IF;
  END IF;
  total := greatest(total, owned + granted);   -- statistics older than the caller's rows
  matching := visible::double precision;
  plan := memoriesdb_internal.search_plan(visible, matching, total, k);
  -- a filter past scope narrows the rows an index scan must find k of: its share of the caller's rows, sampled
  -- (only when it could change the plan: without it the answer is exact already; or sampled above)
  IF (plan = 'hnsw' OR sampled) AND filtered THEN   -- (never 'hnsw' up to search_exact_max: filtered is set past it)
    IF NOT sampled THEN
      SELECT * INTO s FROM memoriesdb_internal.filter_sample(f, uid, linked, sample_size);
    END IF;
    matching := memoriesdb_internal.filter_matching(s.sampled, s.matched, visible, linked);
    plan := memoriesdb_internal.search_plan(visible, matching, total, k);
  END IF;
  -- the index scan's budget: never more tuples than the exact plan's cost, nor fewer than 4 times its estimate
  max_tuples := least(memoriesdb.setting('search_max_scan_tuples')::double precision,
                      greatest(4 * greatest(memoriesdb.setting('search_ef_search')::int, 4 * k, k * total / greatest(matching, 1)),
                               CASE WHEN tuple_cost > 0 THEN visible / tuple_cost ELSE 'Infinity' END))::integer;
  PERFORM set_config('memoriesdb.search_plan',
                     format('%s visible=%s matching=%s total=%s', plan, visible, round(matching::numeric), total::bigint), true);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.choose_search_plan(jsonb, uuid, uuid[], integer) IS
  'Internal: the plan of a vector search (search_plan()) for the context user uid and validated filter f: from the memories it may see (by scope), the table''s size and, for a filter beyond scope that could change the plan, the share of a sample of its rows that passes; max_tuples: the index scan''s budget (hnsw.max_scan_tuples), at most what the exact plan costs (or 4 times the scan''s estimate), at most search_max_scan_tuples. Reported in the transaction-local setting memoriesdb.search_plan ("hnsw ..." or "exact ..."; vector_ranking() appends "-> exact" when the index found fewer than k).';

-- What a search's query hash covers: the query and every argument that shapes the answer.
CREATE OR REPLACE FUNCTION memoriesdb_internal.query_fingerprint(query_text text, query_vector public.vector, k integer, filter jsonb, extra text DEFAULT NULL)
RETURNS bytea
LANGUAGE sql STABLE   -- as concat_ws(): declared IMMUTABLE it was never inlined, and each call parsed and planned it (0.1 ms)
AS $$
  SELECT pg_catalog.convert_to(pg_catalog.concat_ws(E'\x1f', k, filter, extra, query_text), 'UTF8')
         OPERATOR(pg_catalog.||) coalesce(public.vector_send(query_vector), ''::pg_catalog.bytea)
$$;
COMMENT ON FUNCTION memoriesdb_internal.query_fingerprint(text, public.vector, integer, jsonb, text) IS
  'Internal: the bytes record_read() hashes (with a key) into a search''s query_hash: text, vector, k, filter and the other arguments.';

-- The queries of a calibration: up to samples of the active model's stored vectors, at random, with their memories'
-- ids (each probe leaves its own row out). MDB16 when no model is active, MDB12 when it has no stored vector.
CREATE OR REPLACE FUNCTION memoriesdb_internal.calibration_sample(samples integer, OUT model_id uuid, OUT dimension integer,
                                                                 OUT ids uuid[], OUT vecs public.vector[])
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- VOLATILE: a random sample (random() in its dynamic SQL, which plpgsql_check cannot see)
-- @plpgsql_check_options: performance_warnings = false
DECLARE
  active memoriesdb.embedding_models;
BEGIN
  SELECT * INTO active FROM memoriesdb.embedding_models AS em WHERE em.state = 'active';
  IF active.id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB16', MESSAGE = 'no such embedding model', DETAIL = 'no model is active',
      HINT = 'activate one: memoriesdb models activate NAME';
  END IF;
  EXECUTE format('SELECT array_agg(s.memory_id), array_agg(s.embedding) FROM (
                    SELECT e.memory_id, e.embedding FROM memoriesdb.embeddings AS e
                     WHERE e.model_id = %L::uuid ORDER BY random() LIMIT %s) AS s', active.id, samples)
    INTO ids, vecs;
  IF coalesce(cardinality(ids), 0) = 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'nothing to calibrate on',
      DETAIL = format('model %s has no stored vectors', active.name),
      HINT = 'calibrate once the active model''s vectors are stored (memoriesdb status)';
  END IF;
  model_id := active.id;
  dimension := active.dimension;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.calibration_sample(integer) IS
  'Internal: the active model (id, dimension) and up to samples of its stored vectors at random with their memories'' ids, the queries of calibrate_search() and calibrate_search_fraction(); MDB16 when no model is active, MDB12 when it has no stored vector.';

-- How long a candidate list does the active model's HNSW index need to find a query's true nearest neighbours? It
-- depends on the data (how densely the vectors crowd), not on a count: bench/search.py measured hnsw.ef_search 100
-- enough at 100,000 synthetic memories (recall@10 0.97-0.98) and 800 needed at 1,000,000 of the same 200 clusters
-- (0.95). calibrate_search() measures it on this database's own vectors: samples of the active model's stored
-- vectors as queries (each one's own row left out), the exact nearest 10 by a scan against what the index returns at
-- each ef_search of a ladder, and sets search_ef_search to the smallest that reaches the target. Run by the runner
-- (`memoriesdb calibrate-search`) after a model is activated or the table has grown by a lot. It reads vectors, never
-- a memory's content, and returns only counts and times (no access log entry, as activate_model()).
CREATE OR REPLACE FUNCTION memoriesdb.calibrate_search(samples integer DEFAULT 50, target real DEFAULT 0.95,
                                                       apply boolean DEFAULT true)
RETURNS TABLE (ef_search integer, recall real, index_ms real, exact_ms real, chosen boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
SET jit = off
AS $$
DECLARE
  k constant integer := 10;
  ladder constant integer[] := ARRAY[40, 100, 200, 400, 800, 1000];   -- pgvector's ef_search is at most 1000
  active record;   -- calibration_sample(): model_id, dimension, ids, vecs
  probe text;
  ids uuid[];
  vecs public.vector[];
  truth jsonb := '[]'::jsonb;
  got uuid[];
  t0 timestamptz;
  exact_total float8 := 0::float8;
  index_total float8;
  found float8;
  wanted float8;
  saved_ef text := current_setting('hnsw.ef_search', true);
  saved_iter text := current_setting('hnsw.iterative_scan', true);
  saved_seqscan text := current_setting('enable_seqscan');
BEGIN
  IF samples IS NULL OR samples < 1 OR samples > 1000 OR target IS NULL OR NOT (target > 0 AND target <= 1) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid calibration',
      DETAIL = format('samples %s (1 to 1000), target %s (above 0, at most 1)', samples, target),
      HINT = 'memoriesdb.calibrate_search(samples => 50, target => 0.95)';
  END IF;
  SELECT * INTO active FROM memoriesdb_internal.calibration_sample(samples) AS c;   -- MDB16, MDB12
  ids := active.ids;
  vecs := active.vecs;
  -- the model's id and dimension are constants of the query, as in vector_ranking(): only then does it match the
  -- model's partial HNSW index; "+ 0" keeps the exact scan off the index
  probe := format($q$
    SELECT array_agg(r.memory_id ORDER BY r.distance) FROM (
      SELECT e.memory_id, (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1 AS distance
        FROM memoriesdb.embeddings AS e
       WHERE e.model_id = %2$L::uuid AND e.memory_id <> $2
       ORDER BY ((e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1) %%s
       LIMIT %3$s) AS r $q$, active.dimension, active.model_id, k);
  PERFORM set_config('enable_seqscan', 'on', true);
  FOR i IN 1 .. cardinality(ids) LOOP
    t0 := clock_timestamp();
    EXECUTE format(probe, '+ 0') INTO got USING vecs[i], ids[i];
    exact_total := exact_total + extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
    truth := truth || jsonb_build_array(to_jsonb(coalesce(got, '{}')));
  END LOOP;
  -- the index as search() uses it for a caller who sees every row (a smaller share scans on: iterative scan)
  PERFORM set_config('enable_seqscan', 'off', true), set_config('hnsw.iterative_scan', 'off', true);
  FOREACH ef_search IN ARRAY ladder LOOP
    PERFORM set_config('hnsw.ef_search', ef_search::text, true);
    found := 0::float8; wanted := 0::float8; index_total := 0::float8;
    FOR i IN 1 .. cardinality(ids) LOOP
      t0 := clock_timestamp();
      EXECUTE format(probe, '') INTO got USING vecs[i], ids[i];
      index_total := index_total + extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
      found := found + (SELECT count(*)::float8 FROM jsonb_array_elements_text(truth -> (i - 1)) AS t(v) WHERE t.v::uuid = ANY (got));
      wanted := wanted + jsonb_array_length(truth -> (i - 1))::float8;
    END LOOP;
    recall := (CASE WHEN wanted = 0 THEN 1 ELSE found / wanted END)::real;
    index_ms := (index_total / cardinality(ids))::real;
    exact_ms := (exact_total / cardinality(ids))::real;
    chosen := recall >= target OR ef_search = ladder[cardinality(ladder)];
    RETURN NEXT;
    EXIT WHEN chosen;
  END LOOP;
  PERFORM set_config('hnsw.ef_search', coalesce(saved_ef, '40'), true),
          set_config('hnsw.iterative_scan', coalesce(saved_iter, 'off'), true),
          set_config('enable_seqscan', saved_seqscan, true);
  IF recall < target THEN
    RAISE WARNING 'calibrate_search: recall@10 % at the largest ef_search (%), below the target %', round(recall::numeric, 3), ef_search, target
      USING HINT = 'this index cannot reach the target: raise the settings search_hnsw_m / search_hnsw_ef_construction and rebuild the index with them (memoriesdb models reindex <model>; README, 1,000,000 memories), or raise search_hnsw_min_fraction so that fewer callers take the index plan';
  END IF;
  IF apply THEN
    UPDATE memoriesdb.config AS c SET value = to_jsonb(ef_search) WHERE c.key = 'search_ef_search';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb.calibrate_search(integer, real, boolean) IS
  'Measures the active model''s HNSW index on this database''s own vectors: samples stored vectors as queries (each one''s own row left out), compares the index''s nearest 10 at hnsw.ef_search 40, 100, 200, 400, 800, 1000 with an exact scan''s, and returns a row per ef_search tried (recall@10, mean ms per query on the index and exact) up to the first that reaches target (chosen; or the largest, with a WARNING). With apply (the default) sets config search_ef_search to it: search() then uses max(search_ef_search, 4 k), and its plan choice counts it. MDB12 for samples outside 1-1000 or target outside (0, 1], or no stored vectors; MDB16 when no model is active. For the runner (`memoriesdb calibrate-search`) and administrators.';

-- Does a measured recall r (found of wanted true neighbours) miss target? When it is below target by more than its
-- sampling error (one-sided 95%: r + 1.645 * sqrt(r * (1 - r) / wanted) < target, the normal approximation; a
-- query's 10 neighbours are not independent, so the true error is wider and this errs towards a miss), or by more
-- than 0.02 whatever the error (a shortfall kept is at most that). None wanted: no.
CREATE OR REPLACE FUNCTION memoriesdb_internal.recall_misses(found double precision, wanted double precision, target real)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN wanted IS NULL OR wanted <= 0 THEN false
              ELSE x.r < target - 0.02 OR x.r + 1.645 * sqrt(x.r * (1 - x.r) / wanted) < target END
    FROM (SELECT least(greatest(found / nullif(wanted, 0), 0), 1) AS r) AS x
$$;
COMMENT ON FUNCTION memoriesdb_internal.recall_misses(double precision, double precision, real) IS
  'Internal: whether a recall of found out of wanted neighbours misses target: below it by more than its sampling error (one-sided 95%, normal approximation) or by more than 0.02; calibrate_search_fraction() gives up a share only then.';

-- Below which share of the table does the HNSW plan miss the caller's nearest rows? The index returns the table's
-- rows nearest first and the iterative scan skips those the caller may not see or its filter drops: the smaller the
-- share p that passes, the more tuples it reads for k (about k / p) and the more of the true top k lie past the
-- candidates it walks. Where that begins depends on the graph, not on a count: bench/search.py measured recall@10
-- 0.95 down to p = 0.02 at 100,000 memories (ef_search 100) and down to 0.01 at 1,000,000 (ef_search 200), where a
-- share of 0.003 still found 0.99 (its 30% tenant's 1% filter, 91 ms against 266 for the exact plan that
-- search_hnsw_min_fraction 0.03 chose). calibrate_search_fraction() measures it on this database's own vectors:
-- stored vectors as queries (each one's own row left out), a share of the table picked by the last bits of the
-- memory's id, the exact nearest 10 of that share against what the index returns with the iterative scan and the
-- budget search() would give a caller seeing that share, down a ladder of shares; the smallest share from the top
-- of the ladder down that is not shown to miss the target becomes search_hnsw_min_fraction. Shown to miss
-- (recall_misses()): the measured recall is below the target by more than its sampling error (one-sided 95%: recall
-- + 1.645 * sqrt(recall * (1 - recall) / n) < target, n the neighbours sought, 10 a sample), or by more than 0.02. The
-- two errors do not cost alike: a share given up makes every caller below it exact (at 1,000,000 memories a 30%
-- tenant's search went from 18 to 434 ms, 24x, when 20 samples measured 0.935 at share 0.3 where the benchmark's
-- superuser plan found 0.952 and an earlier calibration 0.975), while a share kept costs at most 0.02 of recall (a
-- NOTICE says so when the chosen share measured below the target). Reads vectors only, returns counts and times (no access log entry,
-- as calibrate_search()).
CREATE OR REPLACE FUNCTION memoriesdb.calibrate_search_fraction(samples integer DEFAULT 20, target real DEFAULT 0.95,
                                                                apply boolean DEFAULT true, ef_search integer DEFAULT NULL)
RETURNS TABLE (share real, rows_in_share bigint, recall real, index_ms real, chosen boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
SET jit = off
AS $$
DECLARE
  k constant integer := 10;
  ladder constant real[] := ARRAY[0.3, 0.1, 0.03, 0.01, 0.003, 0.001]::real[];
  -- a share: the memories whose id ends in bits below a cut of 1,024 (random in a version 4 uuid); the cuts of the ladder
  cuts integer[];
  bucket constant text := '((pg_catalog.get_byte(pg_catalog.uuid_send(e.memory_id), 14) * 256 '
                          '+ pg_catalog.get_byte(pg_catalog.uuid_send(e.memory_id), 15)) & 1023)';
  active record;   -- calibration_sample(): model_id, dimension, ids, vecs
  total double precision;
  ef integer;
  tuple_cost double precision := memoriesdb.setting('search_hnsw_tuple_cost')::double precision;
  max_scan double precision := memoriesdb.setting('search_max_scan_tuples')::double precision;
  probe text;
  ids uuid[];
  vecs public.vector[];
  truth jsonb[] := '{}'::jsonb[];   -- per sample: {cut: [ids of the exact nearest k in that share]}
  t jsonb;
  got uuid[];
  t0 timestamptz;
  index_total float8;
  found float8;
  wanted float8;
  budget double precision;
  share_rows bigint[];   -- per step of the ladder: how many vectors the share holds
  tried integer;         -- how many steps are tried (from the top: those holding 10 k)
  passing integer;   -- the last step of the ladder (from the top) whose recall reached the target
  tried_n bigint[] := '{}'::bigint[];
  tried_recall real[] := '{}'::real[];
  tried_ms real[] := '{}'::real[];
  saved_ef text := current_setting('hnsw.ef_search', true);
  saved_iter text := current_setting('hnsw.iterative_scan', true);
  saved_max text := current_setting('hnsw.max_scan_tuples', true);
  saved_seqscan text := current_setting('enable_seqscan');
  saved_sort text := current_setting('enable_sort');
BEGIN
  IF samples IS NULL OR samples < 1 OR samples > 1000 OR target IS NULL OR NOT (target > 0 AND target <= 1)
     OR ef_search < 1 OR ef_search > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid calibration',
      DETAIL = format('samples %s (1 to 1000), target %s (above 0, at most 1), ef_search %s (1 to 1000, or NULL)', samples, target, ef_search),
      HINT = 'memoriesdb.calibrate_search_fraction(samples => 20, target => 0.95)';
  END IF;
  SELECT * INTO active FROM memoriesdb_internal.calibration_sample(samples) AS c;   -- MDB16, MDB12
  ids := active.ids;
  vecs := active.vecs;
  cuts := ARRAY(SELECT greatest(1, round(l * 1024))::integer FROM unnest(ladder) AS l);
  -- how many of the model's vectors each share holds (one scan): the shares tried are those from the top that hold
  -- at least 10 k (fewer cannot tell the plans apart, and such callers are exact anyway)
  EXECUTE format($q$
    WITH g AS (SELECT %2$s AS b, count(*) AS n FROM memoriesdb.embeddings AS e WHERE e.model_id = %1$L::uuid GROUP BY 1)
    SELECT coalesce((SELECT sum(g.n) FROM g), 0)::float8,
           ARRAY(SELECT coalesce((SELECT sum(g.n) FROM g WHERE g.b < u.c), 0)::bigint FROM unnest($1::integer[]) WITH ORDINALITY AS u(c, o)
                  ORDER BY u.o) $q$, active.model_id, bucket)
    INTO total, share_rows USING cuts;
  tried := coalesce((SELECT (min(u.o) - 1)::integer FROM unnest(share_rows) WITH ORDINALITY AS u(n, o) WHERE u.n < 10 * k),
                    cardinality(ladder));
  IF tried = 0 THEN   -- nothing to measure, nothing to decide: the setting is kept
    RAISE NOTICE 'calibrate_search_fraction: % stored vectors, too few to measure (the largest share, %, holds % of them, fewer than %); search_hnsw_min_fraction kept',
      total, ladder[1], share_rows[1], 10 * k;
    RETURN;
  END IF;
  cuts := cuts[1:tried];
  ef := greatest(coalesce(ef_search, memoriesdb.setting('search_ef_search')::int), 4 * k);
  -- the truth: per sample one scan of the model's vectors, the nearest k of each share (the shares are nested); each
  -- distance computed once, for the rows of the largest share only, then joined to the shares it falls in (joined
  -- first, a row's distance was computed once per share: ~0.44 N distances a sample instead of 0.3 N)
  PERFORM set_config('enable_seqscan', 'on', true);
  FOR i IN 1 .. cardinality(ids) LOOP
    EXECUTE format($q$
      WITH d AS MATERIALIZED (
        SELECT e.memory_id, %4$s AS b, (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1 AS distance
          FROM memoriesdb.embeddings AS e
         WHERE e.model_id = %2$L::uuid AND e.memory_id <> $2 AND %4$s < $3[1])
      SELECT jsonb_object_agg(r.cut, r.ids) FROM (
        SELECT x.cut, array_agg(x.memory_id ORDER BY x.distance) AS ids FROM (
          SELECT d.memory_id, c.cut, d.distance, row_number() OVER (PARTITION BY c.cut ORDER BY d.distance) AS rn
            FROM d JOIN unnest($3::integer[]) AS c(cut) ON d.b < c.cut) AS x
         WHERE x.rn <= %3$s GROUP BY x.cut) AS r $q$, active.dimension, active.model_id, k, bucket)
      INTO t USING vecs[i], ids[i], cuts;
    truth := truth || coalesce(t, '{}'::jsonb);
  END LOOP;
  -- the index as search() uses it for a caller who sees that share of the table: iterative scan, max(ef_search, 4 k),
  -- and choose_search_plan()'s budget for it; the share's condition is tested per tuple, as a caller's filter is
  probe := format($q$
    SELECT array_agg(r.memory_id ORDER BY r.distance) FROM (
      SELECT e.memory_id, (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1 AS distance
        FROM memoriesdb.embeddings AS e
       WHERE e.model_id = %2$L::uuid AND e.memory_id <> $2 AND %4$s < $3
       ORDER BY (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1
       LIMIT %3$s) AS r $q$, active.dimension, active.model_id, k, bucket);
  PERFORM set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true),
          set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', ef::text, true);
  FOR j IN 1 .. tried LOOP
    rows_in_share := share_rows[j];
    budget := least(max_scan, greatest(4 * greatest(ef, 4 * k, k * total / rows_in_share),
                                       CASE WHEN tuple_cost > 0 THEN rows_in_share / tuple_cost ELSE 'Infinity' END));
    PERFORM set_config('hnsw.max_scan_tuples', greatest(budget, 1)::bigint::text, true);
    found := 0::float8; wanted := 0::float8; index_total := 0::float8;
    FOR i IN 1 .. cardinality(ids) LOOP
      t0 := clock_timestamp();
      EXECUTE probe INTO got USING vecs[i], ids[i], cuts[j];
      index_total := index_total + extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
      found := found + (SELECT count(*)::float8 FROM jsonb_array_elements_text(truth[i] -> cuts[j]::text) AS v(id)
                         WHERE v.id::uuid = ANY (got));
      wanted := wanted + coalesce(jsonb_array_length(truth[i] -> cuts[j]::text), 0)::float8;
    END LOOP;
    tried_n := tried_n || rows_in_share;
    tried_recall := tried_recall || (CASE WHEN wanted = 0 THEN 1 ELSE found / wanted END)::real;
    tried_ms := tried_ms || (index_total / cardinality(ids))::real;
    -- the index misses here beyond the sampling error: the share above it is the smallest to keep. (A probe that found
    -- fewer than k counts its misses: search() then answers exactly, having spent the index scan's budget first,
    -- worse than exact alone)
    EXIT WHEN memoriesdb_internal.recall_misses(found, wanted, target);
    passing := j;
  END LOOP;
  PERFORM set_config('hnsw.ef_search', coalesce(saved_ef, '40'), true),
          set_config('hnsw.iterative_scan', coalesce(saved_iter, 'off'), true),
          set_config('hnsw.max_scan_tuples', coalesce(saved_max, '20000'), true),
          set_config('enable_seqscan', saved_seqscan, true), set_config('enable_sort', saved_sort, true);
  FOR j IN 1 .. cardinality(tried_n) LOOP
    share := ladder[j]; rows_in_share := tried_n[j]; recall := tried_recall[j]; index_ms := tried_ms[j];
    chosen := coalesce(j = passing, false);
    RETURN NEXT;
  END LOOP;
  IF passing IS NULL THEN   -- not even the largest share: the index plan only for a caller who sees the whole table
    share := 1; rows_in_share := total::bigint; recall := NULL; index_ms := NULL; chosen := true;
    RETURN NEXT;
    RAISE WARNING 'calibrate_search_fraction: recall@10 % at a share of % of the table, below the target %',
      round(tried_recall[1]::numeric, 3), ladder[1], target
      USING HINT = 'search_hnsw_min_fraction becomes 1: only a caller who sees the whole table takes the HNSW plan. Run calibrate_search() (search_ef_search) first, or rebuild the index with larger search_hnsw_m / search_hnsw_ef_construction';
  END IF;
  IF passing IS NOT NULL AND tried_recall[passing] < target THEN
    RAISE NOTICE 'calibrate_search_fraction: share % measured recall@10 % (% samples), below the target % but within its sampling error; kept',
      ladder[passing], round(tried_recall[passing]::numeric, 3), cardinality(ids), target
      USING HINT = 'more samples narrow the error: memoriesdb calibrate-search --samples 200';
  END IF;
  IF apply THEN
    UPDATE memoriesdb.config AS c SET value = to_jsonb(coalesce(ladder[passing], 1::real)) WHERE c.key = 'search_hnsw_min_fraction';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb.calibrate_search_fraction(integer, real, boolean, integer) IS
  'Measures below which share of the table the active model''s HNSW plan misses the nearest rows: samples stored vectors as queries (each one''s own row left out), and for shares 0.3, 0.1, 0.03, 0.01, 0.003, 0.001 of the table (picked by the last bits of the memory id) compares the nearest 10 that the index returns, with the iterative scan, max(ef_search, 40) (ef_search NULL: config search_ef_search) and the budget search() gives a caller seeing that share, with an exact scan''s. Returns a row per share tried, from the largest down to the first that misses target (recall_misses(): below it beyond its sampling error, recall + 1.645 * sqrt(recall * (1 - recall) / n) < target with n = 10 * samples, or by more than 0.02) or holds fewer than 100 memories; chosen: the smallest from the top not shown to miss, or an extra row of share 1 when the largest already did (with a WARNING); with apply (the default) sets config search_hnsw_min_fraction to the chosen share. No rows (a NOTICE, the setting kept) when even the largest share holds fewer than 100 of the model''s vectors (below about 330). MDB12 for samples outside 1-1000, target outside (0, 1], ef_search outside 1-1000, or no stored vectors; MDB16 when no model is active. Run after calibrate_search() (it reads search_ef_search); for the runner (`memoriesdb calibrate-search`) and administrators.';

-- The exact plan's ranking: the caller's rows nearest q that pass the filter given by its parts, k of them, under its
-- row-level security: its own (owner_id index) and its grants' (grantee index) each ranked apart, k of each, then
-- merged; "+ 0" keeps the planner off the HNSW index. (Over visible_memories()' UNION ALL, one sort above it: the
-- UNION ALL's branches have WHERE clauses, so PostgreSQL cannot flatten them into the query, and each carried the
-- whole row, ~1.7 KB, up through a Subquery Scan, an Append and a Result before the sort. Ranked in each branch,
-- the scan computes only the columns the sort keeps, as the superuser's query does: the 1% tenant's search() at
-- 1,000,000 0.1-1.6 ms faster of 14-18, pgbench, bench/results/search_1m.md; EXPLAIN ANALYZE had put the old
-- shape at ~0.45 us a row, its instrumentation weighing on the extra nodes.) A memory is in one branch only
-- (a grant's grantee never owns its memory: memory_grants' CHECK, and a transfer to the grantee deletes the grant;
-- the owner test keeps it so whatever the grants say); a scope filter gates a branch for the whole query (scope
-- 'shared' never scans the caller's own rows, 'own' never its grants). (Citus: vector_ranking()'s calls are replaced
-- by db/citus/distribute.sql's own query, which joins the grants on the owner too; this body's grants join, on the id
-- alone, would need a repartition there.) Inlined (LANGUAGE sql, no SET clause), so that a caller
-- passing the dates as NULL constants gets a plan that never reads created_at: a plan made for every filter tests
-- what it names on every row the scan passes, and a row's columns past its vector lie deep in its ~2 KB (a metadata
-- filter over a 30,000-memory tenant's rows: 25.0 -> 19.2 ms, bench/ranking_ab.py). Each row's distance is computed
-- once: the sort key is the branch's output column. Written as ORDER BY the distance and a select list of -distance
-- (and the min_similarity test in the WHERE clause), the distance was computed twice per row (PostgreSQL shares no
-- subexpressions; 426 distance calls for a 213-memory tenant's search, pg_stat_user_functions); the min_similarity
-- test moves past the LIMIT, as the rows that pass it are the nearest (a prefix of the order).
CREATE OR REPLACE FUNCTION memoriesdb_internal.exact_ranking(q public.vector, k integer, uid uuid, meta jsonb, scope text,
                                                            after timestamptz, before timestamptz, linked uuid[],
                                                            min_similarity real)
RETURNS TABLE (id uuid, similarity real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE sql STABLE
AS $$
  SELECT x.id, (-x.distance)::real, x.content, x.metadata, x.owner_id, x.created_by, x.created_at
    FROM ((SELECT m.id, m.content, m.metadata, m.owner_id, m.created_by, m.created_at,
                  (m.embedding OPERATOR(public.<#>) q) + 0 AS distance
             FROM memoriesdb.memories AS m
            WHERE m.owner_id = uid AND m.embedding IS NOT NULL
              AND (scope IS NULL OR scope <> 'shared')
              AND memoriesdb_internal.filter_holds(m, meta, scope, after, before, uid, linked)
            ORDER BY 7
            LIMIT k)
          UNION ALL
          (SELECT m.id, m.content, m.metadata, m.owner_id, m.created_by, m.created_at,
                  (m.embedding OPERATOR(public.<#>) q) + 0 AS distance
             FROM memoriesdb.memory_grants AS g JOIN memoriesdb.memories AS m ON m.id = g.memory_id
            WHERE g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at OPERATOR(pg_catalog.>) pg_catalog.statement_timestamp())
              AND m.owner_id <> uid AND m.embedding IS NOT NULL
              AND (scope IS NULL OR scope <> 'own')
              AND memoriesdb_internal.filter_holds(m, meta, scope, after, before, uid, linked)
            ORDER BY 7
            LIMIT k)) AS x
   WHERE min_similarity IS NULL OR -x.distance >= min_similarity   -- the rows that pass are a prefix of the k nearest
   ORDER BY x.distance
   LIMIT k
$$;
COMMENT ON FUNCTION memoriesdb_internal.exact_ranking(public.vector, integer, uuid, jsonb, text, timestamptz, timestamptz, uuid[], real) IS
  'Internal: the exact plan of vector_ranking(): the k memories uid may see nearest q (cosine similarity) that pass the filter given by its parts (filter_holds(); NULL: not asked): its own and its unexpired grants'' (another owner''s memories) each ranked by index apart, k of each, merged. Inlined; runs as its caller, under row-level security.';

RESET ROLE;   -- replaced as the deploying superuser; ownership set below, in this transaction

CREATE OR REPLACE FUNCTION memoriesdb_internal.vector_ranking(query public.vector, k integer DEFAULT 10, filter jsonb DEFAULT '{}',
                                  min_similarity real DEFAULT NULL)
RETURNS TABLE (id uuid, similarity real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
-- its statements are planned once per session: re-planning the policy-expanded queries at every call cost about
-- 1 ms each (bench/search.py), and their plans do not depend on the values (the plan choice is made above them)
SET plan_cache_mode = force_generic_plan
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
  sims real[];
  active record;
  chosen text;
  budget integer;
  saved_iter text := current_setting('hnsw.iterative_scan', true);
  saved_ef text := current_setting('hnsw.ef_search', true);
  saved_max text := current_setting('hnsw.max_scan_tuples', true);
BEGIN
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  -- the table first, then the query's dimension: an activation of a model of another dimension (activate_model()
  -- retypes memories.embedding) committed while this search waited is checked against (MDB11), never met by the
  -- distance operator halfway through (22000 different vector dimensions)
  LOCK TABLE memoriesdb.memories IN ACCESS SHARE MODE;
  q := memoriesdb_internal.check_query_vector(query);
  IF uid IS NULL THEN RETURN; END IF;   -- no context: nothing is visible

  -- the plan from what the caller can see and the filter's selectivity (choose_search_plan())
  SELECT c.plan, c.max_tuples INTO chosen, budget FROM memoriesdb_internal.choose_search_plan(f, uid, linked, k) AS c;
  IF chosen = 'hnsw' THEN
    -- approximate: the active model's HNSW index on memoriesdb.embeddings, scanning on until k rows pass the
    -- policy and the filter; it matches only a query with the model's id and dimension as constants: EXECUTE.
    -- Ids and similarities in one statement, one snapshot: a switch of the active model committed meanwhile
    -- (activate_model()) never mixes two models' vectors in one answer
    SELECT em.id, em.dimension INTO active FROM memoriesdb.embedding_models AS em WHERE em.state = 'active';
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true),
            set_config('hnsw.ef_search', greatest(memoriesdb.setting('search_ef_search')::int, 4 * k)::text, true),
            set_config('hnsw.max_scan_tuples', budget::text, true);
    -- With no filter the embeddings' own policy (the memory is visible) is the only condition: no join with
    -- memories, and EXECUTE, which plans at every call, plans it in half the time (0.5 vs 1.0 ms, 100,000 rows).
    EXECUTE format($q$
      SELECT array_agg(r.memory_id ORDER BY r.distance), array_agg((1 - r.distance)::real ORDER BY r.distance) FROM (
        SELECT e.memory_id, (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1 AS distance
          FROM memoriesdb.embeddings AS e %3$s
         WHERE e.model_id = %2$L::uuid %4$s
         ORDER BY (e.embedding::public.vector(%1$s)) OPERATOR(public.<=>) $1
         LIMIT $5) AS r $q$, active.dimension, active.id,   -- relaxed_order: re-sorted by distance here
      CASE WHEN f <> '{}' OR linked IS NOT NULL THEN 'JOIN memoriesdb.memories AS m ON m.id = e.memory_id' END,
      CASE WHEN f <> '{}' OR linked IS NOT NULL THEN 'AND memoriesdb_internal.matches_filter(m, $2, $3, $4)' END)
      INTO ids, sims USING q, f, uid, linked, k;
    PERFORM set_config('hnsw.iterative_scan', coalesce(saved_iter, 'off'), true),
            set_config('hnsw.ef_search', coalesce(saved_ef, '40'), true),
            set_config('hnsw.max_scan_tuples', coalesce(saved_max, '20000'), true);
    IF cardinality(ids) >= k THEN
      RETURN QUERY
        SELECT m.id, u.sim, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
          FROM unnest(ids, sims) WITH ORDINALITY AS u(id, sim, ord) JOIN memoriesdb.memories AS m ON m.id = u.id
         WHERE min_similarity IS NULL OR u.sim >= min_similarity
         ORDER BY u.ord;
      RETURN;
    END IF;
    -- fewer than k: the scan spent its budget (the sample misjudged the filter) or the statistics were stale;
    -- answer exactly rather than return a short list
    PERFORM set_config('memoriesdb.search_plan', current_setting('memoriesdb.search_plan') || ' -> exact', true);
  END IF;

  -- exact: only the caller's rows are read (by index; exact_ranking()). Without dates in the filter, its plan is
  -- made with them as NULL constants: it never reads created_at (a plan for every filter tests what it names on
  -- every row the scan passes)
  IF f_after IS NULL AND f_before IS NULL THEN
    RETURN QUERY SELECT * FROM memoriesdb_internal.exact_ranking(q, k, uid, f_meta, f_scope, NULL, NULL, linked, min_similarity);
  ELSE
    RETURN QUERY SELECT * FROM memoriesdb_internal.exact_ranking(q, k, uid, f_meta, f_scope, f_after, f_before, linked, min_similarity);
  END IF;
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
SET memoriesdb.context_checked = ''
SET jit = off
AS $$
DECLARE
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea := memoriesdb_internal.query_fingerprint(NULL, query, k, filter, min_similarity::text);
  viewer uuid;   -- the caller, read only for a memory that changed hands
BEGIN
  PERFORM memoriesdb_internal.context_user();   -- the proof verified once, before the policies below ask
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
  'The k visible memories most similar to query (cosine similarity, 1 = same direction): the caller''s own and those shared with it by unexpired grants; forgotten ones never. Row-level security decides (it runs as memoriesdb_reader, which the same policies bind). filter: {"metadata": {...} (containment), "scope": "own"|"shared"|"all", "created_after": ts, "created_before": ts, "linked_to": memory id}; unknown keys are an error. MDB11 for a query vector of the wrong dimension, NaN or zero. The plan (an exact scan of the caller''s rows, or the HNSW index with iterative scan) is chosen from how many memories the caller can see, their share of the table and the filter''s selectivity (settings search_exact_max, search_hnsw_tuple_cost, search_hnsw_min_fraction, search_filter_sample) and reported in the transaction-local setting memoriesdb.search_plan; either returns the exact scan''s rows but for HNSW''s approximation. Each call is one access log entry with the ids returned and a hash of the query.';
ALTER FUNCTION memoriesdb.search(vector, integer, jsonb, real) OWNER TO memoriesdb_reader;

COMMIT;
