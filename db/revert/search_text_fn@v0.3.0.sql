-- Revert memoriesdb:search_text_fn from pg
-- Back to the functions of search_text_fn as released in v0.2.0 (search_text_fn@v0.2.0.sql):
-- text_ranking() orders by content again; set_text_index_columns(), trgm_prefix() and
-- content_tsvector(), new in this version, are dropped first (triggers, reverted before
-- this, no longer uses them).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP FUNCTION memoriesdb_internal.set_text_index_columns();
DROP FUNCTION memoriesdb_internal.trgm_prefix(text);
DROP FUNCTION memoriesdb_internal.content_tsvector(text);

-- Full-text candidates for a large caller. @@ is not LEAKPROOF, so under RLS
-- PostgreSQL must apply the policy before it and cannot use the GIN index; this
-- SECURITY DEFINER helper applies the same visibility rule itself (the caller's
-- own memories and unexpired grants, for the context user only) and so can.
CREATE OR REPLACE FUNCTION memoriesdb_internal.fulltext_candidates(tsq tsquery, n integer, f jsonb, linked uuid[]) RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
  SELECT array_agg(c.id) FROM (
    SELECT m.id FROM memoriesdb.memories AS m
     WHERE m.content_tsv @@ tsq
       AND (m.owner_id = memoriesdb.current_user_id()
            OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                        WHERE g.memory_id = m.id AND g.grantee_id = memoriesdb.current_user_id()
                          AND (g.expires_at IS NULL OR g.expires_at > now())))
       AND memoriesdb_internal.matches_filter(m, f, memoriesdb.current_user_id(), linked)
     ORDER BY ts_rank_cd(m.content_tsv, tsq, 32) DESC
     LIMIT n) AS c
$$;
COMMENT ON FUNCTION memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[]) IS
  'Internal: ids of the n best full-text matches the context user may see (by the GIN index, which RLS would rule out). search_text() re-reads them under RLS.';

RESET ROLE;   -- replaced as the deploying superuser; ownership set below, in this transaction

CREATE OR REPLACE FUNCTION memoriesdb_internal.text_ranking(query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}')
RETURNS TABLE (id uuid, score real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
  f jsonb := memoriesdb_internal.check_search_filter(filter);
  linked uuid[] := CASE WHEN f ? 'linked_to' THEN memoriesdb_internal.linked_ids(f) END;
  tsq tsquery;
  threshold real := memoriesdb.setting('search_text_threshold')::real;
  visible bigint;
BEGIN
  IF query IS NULL OR btrim(query) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'query is empty';
  END IF;
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  IF uid IS NULL THEN RETURN; END IF;
  tsq := websearch_to_tsquery('english'::regconfig, query);
  visible := memoriesdb_internal.visible_count(memoriesdb.setting('search_text_exact_max')::bigint);
  -- score: trigram word similarity (typo-tolerant), plus the full-text rank
  -- mapped into [0, 1) (normalisation 32), so an exact phrase outranks a near miss
  IF visible <= memoriesdb.setting('search_text_exact_max')::bigint THEN
    RETURN QUERY
      SELECT s.id, s.score, s.content, s.metadata, s.owner_id, s.created_by, s.created_at
        FROM (SELECT m.*, (public.word_similarity(query, m.content)
                           + CASE WHEN m.content_tsv @@ tsq THEN ts_rank_cd(m.content_tsv, tsq, 32) ELSE 0 END)::real AS score
                FROM memoriesdb_internal.visible_memories(uid) AS m
               WHERE memoriesdb_internal.matches_filter(m, f, uid, linked)) AS s
       WHERE s.score >= threshold OR s.content_tsv @@ tsq
       ORDER BY s.score DESC, s.id
       LIMIT k;
  ELSE
    -- large callers: candidates from the indexes only: the nearest by word similarity
    -- (GiST KNN, which walks on past rows the policy hides) and the full-text matches
    -- (GIN), then scored and ranked as above
    RETURN QUERY
      WITH candidates AS (
        (SELECT m.id FROM memoriesdb.memories AS m
          WHERE memoriesdb_internal.matches_filter(m, f, uid, linked)
          ORDER BY query OPERATOR(public.<<->) m.content
          LIMIT 4 * k)
        UNION
        SELECT unnest(memoriesdb_internal.fulltext_candidates(tsq, 4 * k, f, linked)))
      SELECT s.id, s.score, s.content, s.metadata, s.owner_id, s.created_by, s.created_at
        FROM (SELECT m.*, (public.word_similarity(query, m.content)
                           + CASE WHEN m.content_tsv @@ tsq THEN ts_rank_cd(m.content_tsv, tsq, 32) ELSE 0 END)::real AS score
                FROM candidates AS c JOIN memoriesdb.memories AS m ON m.id = c.id) AS s
       WHERE s.score >= threshold OR s.content_tsv @@ tsq
       ORDER BY s.score DESC, s.id
       LIMIT k;
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.text_ranking(text, integer, jsonb) IS
  'Internal: the text ranking behind search_text(), without the access log entry; search_text() and search_hybrid() call it, nothing else may. Runs as memoriesdb_reader under row-level security.';
ALTER FUNCTION memoriesdb_internal.text_ranking(text, integer, jsonb) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.search_text(query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}')
RETURNS TABLE (id uuid, score real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea := memoriesdb_internal.query_fingerprint(query, NULL, k, filter);
BEGIN
  FOR id, score, content, metadata, owner_id, created_by, created_at IN
      SELECT * FROM memoriesdb_internal.text_ranking(query, k, filter) LOOP
    log_ids := log_ids || id;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb_internal.record_read('search_text', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search_text(text, integer, jsonb) IS
  'The k visible memories that best match query as text: pg_trgm word similarity (typos still match) plus the full-text rank (english stemming) when the words match. score is in [0, 2). Same visibility and filter as search(). Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';
ALTER FUNCTION memoriesdb.search_text(text, integer, jsonb) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.search_hybrid(query text, query_vector public.vector, k integer DEFAULT 10,
                                                    filter jsonb DEFAULT '{}', vector_weight real DEFAULT 1,
                                                    text_weight real DEFAULT 1, rrf_k integer DEFAULT 60)
RETURNS TABLE (id uuid, score real, vector_rank integer, text_rank integer, similarity real,
               content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
DECLARE
  depth integer;
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea := memoriesdb_internal.query_fingerprint(query, query_vector, k, filter, concat_ws(',', vector_weight, text_weight, rrf_k));
BEGIN
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  IF vector_weight IS NULL OR text_weight IS NULL OR vector_weight < 0 OR text_weight < 0
     OR vector_weight + text_weight = 0 OR rrf_k IS NULL OR rrf_k < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid fusion parameters',
      HINT = 'weights are >= 0 and not both 0; rrf_k >= 1 (60 is the usual choice)';
  END IF;
  depth := least(1000, greatest(4 * k, 40));   -- how deep each ranking is read before fusing
  -- each ranking carries its rows, so nothing is read twice
  FOR id, score, vector_rank, text_rank, similarity, content, metadata, owner_id, created_by, created_at IN
    WITH v AS (SELECT s.*, row_number() OVER (ORDER BY s.similarity DESC)::int AS r
                 FROM memoriesdb_internal.vector_ranking(query_vector, depth, filter) AS s),
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
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb_internal.record_read('search_hybrid', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer) IS
  'Fuses search() and search_text() by reciprocal rank fusion: score = vector_weight / (rrf_k + vector rank) + text_weight / (rrf_k + text rank), so an exact phrase and a paraphrase both surface. Same visibility and filter. Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';
ALTER FUNCTION memoriesdb.search_hybrid(text, vector, integer, jsonb, real, real, integer) OWNER TO memoriesdb_reader;

COMMIT;
