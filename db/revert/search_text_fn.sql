-- Revert memoriesdb:search_text_fn from pg: restores the bodies of search_text_fn@v0.4.0
-- Reworked after @v0.3.0 (released version: search_text_fn@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: search_text_fn@v0.2.0
-- requires: internal_schema
-- requires: text_index_columns
-- Live functions of text and hybrid search: search_text() over text_ranking(), search_hybrid() fusing both rankings;
-- what the text indexes hold of a memory: trgm_prefix() (memories.content_trgm) and content_tsvector() (memories.content_tsv).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework search_text_fn`.
-- Run once, by search_text_fn@v0.1.0.sql: column content_tsv, the trigram and full-text indexes, settings; by
-- text_index_columns.sql and text_index_bounds.sql: column content_trgm, the trigram index on coalesce(content_trgm,
-- content), content_tsv kept by a trigger; by search_bounds.sql: the bounds' settings. (The function
-- bodies in search_text_fn@v0.1.0.sql and search_text_fn@v0.2.0.sql are released versions, superseded by this file.)
-- Who may execute what: privileges.sql.
--
-- What one search may cost. pg_trgm's word_similarity() is quadratic in the length of
-- the text it reads (1 MB of "ab ab ..." and the query "ab": 9.5 minutes) and
-- ts_rank_cd() grows with the words of the query and the square of a phrase, and neither
-- checks for interrupts: while one call ran, its backend answered no cancel and no
-- statement_timeout, and the KNN scan of every large caller re-checked its distance to
-- such a memory (other tenants' rows too: the policy filters after the index scan). So the
-- ranking reads a window of each memory, coalesce(content_trgm, content): the content when
-- it has at most search_text_window_chars characters, else its first that many (the same
-- text the trigram index holds, so the KNN's re-check reads no more), and a query is
-- refused (MDB12) past search_text_max_query_chars characters, search_text_max_query_words
-- words or search_text_max_phrase_ops phrase operators. One candidate then costs a few
-- milliseconds at most, and the executor's own checks between rows answer interrupts.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- (v0.5) fulltext_ranking() replaced fulltext_candidates(), re-created below
DROP FUNCTION IF EXISTS memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean);

-- The window of a memory: what the text ranking reads of it and the trigram index holds,
-- coalesce(content_trgm, content), with content_trgm = trgm_prefix(content): NULL (the
-- content itself) when it has at most search_text_window_chars characters, else its first
-- that many. Written when content is (trigger text_index): a new window applies to the
-- memories written after it (search_bounds.sql re-windows the stored ones). At most 1732:
-- n characters have at most 1.5 n + 1 trigrams of 3 bytes, and an index row holds 8191.
CREATE OR REPLACE FUNCTION memoriesdb_internal.trgm_prefix(content text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- 1000 until search_bounds, later in the plan than this change, adds the setting
  w integer := least(greatest(coalesce(memoriesdb.setting('search_text_window_chars')::integer, 1000), 1), 1732);
BEGIN
  IF octet_length(content) <= w OR char_length(content) <= w THEN RETURN NULL; END IF;
  RETURN left(content, w);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.trgm_prefix(text) IS
  'Internal: memories.content_trgm: NULL when content has at most search_text_window_chars characters (at most 1732), else its first that many; coalesce(content_trgm, content) is the window the text ranking reads and the trigram index holds, and no content under max_content_bytes overflows an index row.';

-- PostgreSQL refuses a tsvector over 1 MB (of lexemes), which about 500 kB of distinct
-- words reach. memories.content_tsv is content_tsvector(content), kept by the trigger
-- text_index (triggers.sql): the whole full-text vector when it fits, as before.
CREATE OR REPLACE FUNCTION memoriesdb_internal.content_tsvector(content text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v tsvector := ''::tsvector;
  part tsvector;
  chunk text;
  pos integer := 1;
  len integer;
  cut integer;
BEGIN
  -- a token costs its tsvector at most a few times its own bytes: 64 kB of text cannot come
  -- near 1 MB, so ordinary memories need no subtransaction
  IF octet_length(content) <= 65536 THEN
    RETURN to_tsvector('english'::regconfig, content);
  END IF;
  BEGIN
    RETURN to_tsvector('english'::regconfig, content);
  EXCEPTION WHEN program_limit_exceeded THEN
    NULL;   -- too many distinct words for one tsvector: fall through
  END;
  -- the full-text vectors of successive chunks (of at most 16384 characters, cut after
  -- white space so no word is split) from the start, while their sum fits
  len := char_length(content);
  WHILE pos <= len LOOP
    chunk := substr(content, pos, 16384);
    IF pos + 16384 <= len THEN
      cut := char_length(substring(chunk FROM '^.*[[:space:]]'));
      IF cut > 0 THEN chunk := left(chunk, cut); END IF;
    END IF;
    part := to_tsvector('english'::regconfig, chunk);
    EXIT WHEN pg_column_size(v) + pg_column_size(part) > 1048575;   -- MAXSTRPOS, bounds the lexemes of a tsvector
    v := v || part;
    pos := pos + char_length(chunk);
  END LOOP;
  RETURN v;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.content_tsvector(text) IS
  'Internal: the full-text vector of a memory (memories.content_tsv): to_tsvector(''english'', content) when it fits PostgreSQL''s 1 MB tsvector limit (every memory of ordinary size), otherwise the vectors of the chunks of its content (16384 characters, cut at white space) from the start, as many as fit.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.set_text_index_columns() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.content IS DISTINCT FROM OLD.content THEN
    NEW.content_tsv := memoriesdb_internal.content_tsvector(NEW.content);
    NEW.content_trgm := memoriesdb_internal.trgm_prefix(NEW.content);
  ELSE   -- they follow content only, like the generated column content_tsv was
    NEW.content_tsv := OLD.content_tsv;
    NEW.content_trgm := OLD.content_trgm;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.set_text_index_columns() IS
  'Internal: trigger text_index on memories (INSERT, UPDATE OF content): content_tsv := content_tsvector(content) and content_trgm := trgm_prefix(content) when content is new or changed, else both stay as they were.';

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
       AND (m.owner_id = (SELECT memoriesdb.current_user_id())   -- once per query: it verifies a proof
            OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                        WHERE g.memory_id = m.id AND g.grantee_id = (SELECT memoriesdb.current_user_id())
                          AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())))
       AND memoriesdb_internal.matches_filter(m, f, (SELECT memoriesdb.current_user_id()), linked)
     ORDER BY ts_rank_cd(CASE WHEN m.content_trgm IS NULL THEN m.content_tsv   -- the window is all of it
                              ELSE to_tsvector('english'::regconfig, m.content_trgm) END, tsq, 32) DESC
     LIMIT n) AS c
$$;
COMMENT ON FUNCTION memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[]) IS
  'Internal: ids of the n best full-text matches the context user may see (by the GIN index, which RLS would rule out), ranked by the full-text rank of their window (coalesce(content_trgm, content)), as text_ranking() ranks them. search_text() re-reads them under RLS.';
-- its grant as privileges@v0.4.0 gave it (the revert of privileges ran before this one, when it did not exist)
GRANT EXECUTE ON FUNCTION memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[]) TO memoriesdb_reader;

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
  max_chars integer := memoriesdb.setting('search_text_max_query_chars')::integer;
  max_words integer := memoriesdb.setting('search_text_max_query_words')::integer;
  max_phrase_ops integer := memoriesdb.setting('search_text_max_phrase_ops')::integer;
  words integer;
  phrase_ops integer;
  visible bigint;
  matching uuid[];
BEGIN
  IF query IS NULL OR btrim(query) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'query is empty';
  END IF;
  IF char_length(query) > max_chars THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'query is too long',
      DETAIL = format('%s characters; at most %s', char_length(query), max_chars),
      HINT = 'search with the words that matter (config search_text_max_query_chars)';
  END IF;
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  tsq := websearch_to_tsquery('english'::regconfig, query);
  -- the full-text rank's work grows with the words of the query times their places in
  -- the window, and with the square of a phrase: both are counted in the query's text
  -- form, where each word (lexeme; stop words are gone) is quoted, 'it''s' style, and
  -- each phrase operator reads <-> or <N> (no lexeme holds a '<')
  words := regexp_count(tsq::text, '''(?:[^'']|'''')*''');
  IF words > max_words THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'query has too many words',
      DETAIL = format('%s words; at most %s', words, max_words),
      HINT = 'search with the words that matter; stop words such as "the" do not count (config search_text_max_query_words)';
  END IF;
  phrase_ops := regexp_count(tsq::text, '<[0-9-]+>');
  IF phrase_ops > max_phrase_ops THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'query joins too many words into phrases',
      DETAIL = format('%s phrase operators; at most %s', phrase_ops, max_phrase_ops),
      HINT = 'quote shorter phrases: each word after the first of a quoted phrase or a hyphenated word counts (config search_text_max_phrase_ops)';
  END IF;
  IF uid IS NULL THEN RETURN; END IF;
  visible := memoriesdb_internal.visible_count(memoriesdb.setting('search_text_exact_max')::bigint);
  -- score: trigram word similarity (typo-tolerant), plus the full-text rank mapped into
  -- [0, 1) (normalisation 32), so an exact phrase outranks a near miss; both read the
  -- window coalesce(content_trgm, content) (within it, a memory is read whole, its rank
  -- from the stored content_tsv), while a full-text match anywhere still qualifies it
  IF visible <= memoriesdb.setting('search_text_exact_max')::bigint THEN
    RETURN QUERY
      SELECT s.id, s.score, s.content, s.metadata, s.owner_id, s.created_by, s.created_at
        FROM (SELECT m.*, (public.word_similarity(query, coalesce(m.content_trgm, m.content))
                           + CASE WHEN m.content_tsv @@ tsq
                                  THEN ts_rank_cd(CASE WHEN m.content_trgm IS NULL THEN m.content_tsv
                                                       ELSE to_tsvector('english'::regconfig, m.content_trgm) END, tsq, 32)
                                  ELSE 0 END)::real AS score
                FROM memoriesdb_internal.visible_memories(uid) AS m
               WHERE memoriesdb_internal.matches_filter(m, f, uid, linked)
              OFFSET 0) AS s   -- not flattened: the score is computed once a row, not again for the sort
       WHERE s.score >= threshold OR s.content_tsv @@ tsq
       ORDER BY s.score DESC, s.id
       LIMIT k;
  ELSE
    -- large callers: candidates from the indexes only: the nearest by word similarity
    -- (GiST KNN, which walks on past rows the policy hides, its distance re-checked on the
    -- window only) and the full-text matches (GIN), then scored and ranked as above. The
    -- full-text ones into a variable first: inside the query, unnest(fulltext_candidates())
    -- ran twice, once more when the planner estimated how many rows unnest() returns.
    matching := memoriesdb_internal.fulltext_candidates(tsq, 4 * k, f, linked);
    RETURN QUERY
      WITH candidates AS (
        (SELECT m.id FROM memoriesdb.memories AS m
          WHERE memoriesdb_internal.matches_filter(m, f, uid, linked)
          ORDER BY query OPERATOR(public.<<->) coalesce(m.content_trgm, m.content)   -- the index's expression
          LIMIT 4 * k)
        UNION
        SELECT unnest(matching))
      SELECT s.id, s.score, s.content, s.metadata, s.owner_id, s.created_by, s.created_at
        FROM (SELECT m.*, (public.word_similarity(query, coalesce(m.content_trgm, m.content))
                           + CASE WHEN m.content_tsv @@ tsq
                                  THEN ts_rank_cd(CASE WHEN m.content_trgm IS NULL THEN m.content_tsv
                                                       ELSE to_tsvector('english'::regconfig, m.content_trgm) END, tsq, 32)
                                  ELSE 0 END)::real AS score
                FROM candidates AS c JOIN memoriesdb.memories AS m ON m.id = c.id
              OFFSET 0) AS s   -- not flattened: the score is computed once a row, not again for the sort
       WHERE s.score >= threshold OR s.content_tsv @@ tsq
       ORDER BY s.score DESC, s.id
       LIMIT k;
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.text_ranking(text, integer, jsonb) IS
  'Internal: the text ranking behind search_text(), without the access log entry; search_text() and search_hybrid() call it, nothing else may. Reads the window of each memory (coalesce(content_trgm, content): its first search_text_window_chars characters); refuses (MDB12) a query longer than search_text_max_query_chars, of more than search_text_max_query_words words or with more than search_text_max_phrase_ops phrase operators. Runs as memoriesdb_reader under row-level security.';
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
  viewer uuid;   -- the caller, read only for a memory that changed hands
BEGIN
  FOR id, score, content, metadata, owner_id, created_by, created_at IN
      SELECT * FROM memoriesdb_internal.text_ranking(query, k, filter) LOOP
    log_ids := log_ids || id;
    IF created_by <> owner_id THEN   -- a memory that changed hands: its creator only if the caller deals with them
      viewer := coalesce(viewer, memoriesdb.current_user_id());
      created_by := memoriesdb_internal.disclosed_user(created_by, viewer, owner_id);
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb_internal.record_read('search_text', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search_text(text, integer, jsonb) IS
  'The k visible memories that best match query as text: pg_trgm word similarity (typos still match) plus the full-text rank (english stemming) when the words match, both over the first search_text_window_chars characters of a memory (a full-text match anywhere still finds it). score is in [0, 2). A query longer than search_text_max_query_chars, of more than search_text_max_query_words words (stop words aside) or with more than search_text_max_phrase_ops phrase operators is refused (MDB12). Same visibility and filter as search(). Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';
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
  viewer uuid;   -- the caller, read only for a memory that changed hands
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea := memoriesdb_internal.query_fingerprint(query, query_vector, k, filter, concat_ws(',', vector_weight, text_weight, rrf_k));
BEGIN
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  -- PostgreSQL orders NaN above every number, Infinity included, so "< 'Infinity'" rules
  -- out both (a NaN weight made every score NaN); rrf_k + rank must not overflow an integer
  IF vector_weight IS NULL OR text_weight IS NULL OR rrf_k IS NULL
     OR NOT (vector_weight >= 0 AND vector_weight < 'Infinity'::real AND text_weight >= 0 AND text_weight < 'Infinity'::real)
     OR (vector_weight = 0 AND text_weight = 0) OR rrf_k < 1 OR rrf_k > 1000000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid fusion parameters',
      DETAIL = format('vector_weight %s, text_weight %s, rrf_k %s', vector_weight, text_weight, rrf_k),
      HINT = 'weights are finite, >= 0 and not both 0; rrf_k is between 1 and 1000000 (60 is the usual choice)';
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
    IF created_by <> owner_id THEN   -- a memory that changed hands: its creator only if the caller deals with them
      viewer := coalesce(viewer, memoriesdb.current_user_id());
      created_by := memoriesdb_internal.disclosed_user(created_by, viewer, owner_id);
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb_internal.record_read('search_hybrid', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer) IS
  'Fuses search() and search_text() by reciprocal rank fusion: score = vector_weight / (rrf_k + vector rank) + text_weight / (rrf_k + text rank), so an exact phrase and a paraphrase both surface. Weights finite and >= 0 (not both 0), rrf_k between 1 and 1000000, else MDB12; the text query is bounded as in search_text(). Same visibility and filter. Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';
ALTER FUNCTION memoriesdb.search_hybrid(text, vector, integer, jsonb, real, real, integer) OWNER TO memoriesdb_reader;

COMMIT;
