-- Deploy memoriesdb:search_text_fn to pg
-- Reworked after @v0.4.0 (released version: search_text_fn@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: search_text_fn@v0.4.0
-- requires: text_owner_index
-- requires: memory_words
-- Live functions of text and hybrid search: search_text() over text_ranking(), search_hybrid() fusing both rankings;
-- what the text indexes hold of a memory: trgm_prefix() (memories.content_trgm) and content_tsvector() (memories.content_tsv).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework search_text_fn`.
-- Run once, by search_text_fn@v0.1.0.sql: column content_tsv, the trigram and full-text indexes, settings; by
-- text_index_columns.sql and text_index_bounds.sql: column content_trgm, the trigram index on coalesce(content_trgm,
-- content), content_tsv kept by a trigger; by search_bounds.sql: the bounds' settings. (The function
-- bodies in search_text_fn@v0.*.sql are released versions, superseded by this file.)
-- Who may execute what: privileges.sql.
--
-- (v0.5) Ranking on conversations (issue 16; measured by bench/search_quality.py). A question
-- rarely holds every word of the turn that answers it, and websearch_to_tsquery() ANDs them
-- all: a memory is now a full-text candidate when it holds ANY word (or quoted phrase) of the
-- query, a negated word still excluding it, and candidates are ranked by BM25 (k1 = 1.2,
-- b = 0.5) computed over the caller's own visible rows: a word's rarity (idf) is counted
-- among the memories the caller may see, never over other tenants' rows (which would leak
-- their statistics and mis-rank). A question (more than 3 words) then re-ranks its best
-- greatest(4 k, 100) by BM25 with half their trigram word similarity; a keyword query (at
-- most 3 words) that finds fewer than k memories by full text adds those of word similarity
-- >= search_text_threshold (typos). The large-caller plan no longer walks the trigram index
-- by nearest neighbour for every query (its cost grew with the whole table: a question's
-- KNN visited most of the index): its full-text matches come from the GIN index within the
-- caller's own rows and grants, and only a keyword query that found fewer than k adds the
-- KNN's candidates. Without a filter both plans give the same rows, to the same scores (a
-- filter: the exact scan counts a word's rarity among the rows that pass it).
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
-- BM25 reads the full-text vector of the same window (a memory's term counts past it add
-- nothing), at most search_text_max_query_words lexemes of it.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

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

-- The full-text side of search_text(), scored where the rows are found. @@ is not LEAKPROOF,
-- so under RLS PostgreSQL must apply the policy before it and cannot use the GIN index; this
-- SECURITY DEFINER helper applies the same visibility rule itself (the caller's own memories
-- and unexpired grants, for the context user only) and so can: for a large caller the GIN
-- index keyed by owner and word (text_owner_index.sql), so only its matching rows are read
-- and no other tenant's posting lists; a small
-- caller's rows (small: search_text_exact_max) and every caller's grants are read by their
-- own index and tested one by one: the work grows with the caller's rows or matches. (v0.5) It scores them in the same pass: BM25
-- (k1 = 1.2, b = 0.5) of each match's window (only the query's words of its full-text
-- vector: setweight marks them, ts_filter keeps them), a word's rarity counted among n rows
-- (the caller's visible rows; at least the matches), and returns the best depth of them.
-- Matches were returned as ids before and read again under RLS to be scored: for 8,700
-- matches of a 30,000-memory tenant that second read and the plan of an 8,700-element
-- array cost 20 ms of 59. text_ranking() reads the depth it keeps under RLS. Every match up
-- to 50,000 (past that, which ones is unspecified). With no filter, the filter's test is
-- skipped (f = '{}').
-- PL/pgSQL: the caller and the filter's parts are variables, so filter_holds() is inlined (as
-- SQL, given the caller as a subquery, it was called per match: 100 -> 30 ms for a 30,000-memory
-- tenant's search with a filter, bench/ranking_ab.py), and parsed once a session. Planned at every
-- call with the values (force_custom_plan): the session's generic plan, once the first callers
-- chose it, cost a 30,000-memory tenant 6-13% (measured; a small caller's gained 3-7%).
CREATE OR REPLACE FUNCTION memoriesdb_internal.fulltext_ranking(tsq tsquery, lexemes text[], n bigint, depth integer,
                                                              f jsonb, linked uuid[], small boolean)
RETURNS TABLE (id uuid, bm25 double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
  uid uuid := memoriesdb.current_user_id();   -- once (it may verify a proof), and a parameter of the plan
  keys bigint[] := memoriesdb_internal.owner_word_keys(uid, array_to_tsvector(lexemes));
  -- the filter's parts, split once: filter_holds() of plain parameters is inlined. (matches_filter()
  -- given the caller as a subquery was not: a SQL function call for every match, 30 of 105 ms for a
  -- 30,000-memory tenant's 8,700 matches, bench/ranking_ab.py)
  f_meta jsonb := f->'metadata';
  f_scope text := f->>'scope';
  f_after timestamptz := (f->>'created_after')::timestamptz;
  f_before timestamptz := (f->>'created_before')::timestamptz;
  -- (v0.5) a large caller's own short memories, for a query of words only (no phrase, no negated word: any of
  -- its words makes a match) and no filter: their postings in memory_words, by an index-only scan
  by_words boolean := NOT small AND f = '{}'::jsonb AND tsq::text !~ '[!<]' AND cardinality(lexemes) > 0;
  max_postings integer := memoriesdb.setting('search_text_max_postings')::integer;
  ids uuid[];
  scores double precision[];
  postings bigint;   -- how many rows of memory_words the search read
BEGIN
  -- more postings than search_text_max_postings (a common word of a very large tenant): the matches are read from the
  -- memories instead. Counted first, up to the bound, unless the caller's n rows cannot hold that many (each word is
  -- at most once a memory): scoring 200,000 postings only to find them past the bound cost a 300,000-memory tenant's
  -- question 300 ms before its fallback (measured at 1,000,000)
  IF by_words AND (n >= 50000 OR cardinality(lexemes) * n > max_postings) THEN
    by_words := (SELECT count(*) FROM (SELECT FROM memoriesdb_internal.memory_words AS w
                                        WHERE w.owner_id = uid AND w.word = ANY (lexemes) LIMIT max_postings + 1) AS x)
                <= max_postings;
  END IF;
  LOOP   -- (once, unless postings were written past the bound since the count)
    WITH c AS MATERIALIZED (   -- the matches found in memories, each with its window's full-text vector
      SELECT x.id, CASE WHEN x.content_trgm IS NULL THEN x.content_tsv   -- the window is all of it
                        ELSE to_tsvector('english'::regconfig, x.content_trgm) END AS win
        -- uid and keys: parameters of the plan, so that the indexes take them (joined to the
        -- caller's row, the grants were probed for every match of the table). A large caller: the
        -- index memories_owner_words, the posting lists of its own words (any of them: tsq
        -- then decides), or with by_words its long memories' (memories_long_owner_words); a small
        -- one, and every caller's grants: their own index, each row tested (coalesce(content_tsv @@ tsq,
        -- false) is no index condition)
        FROM (SELECT m.id, m.content_tsv, m.content_trgm FROM memoriesdb.memories AS m
               WHERE NOT small AND NOT by_words AND memoriesdb_internal.owner_word_keys(m.owner_id, m.content_tsv) && keys
                 AND (m.owner_id = uid) IS TRUE   -- (a colliding hash's other owner) no index condition:
                 AND m.content_tsv @@ tsq         -- the plan reads no owner_id index
                 AND (f = '{}'::jsonb OR memoriesdb_internal.filter_holds(m, f_meta, f_scope, f_after, f_before, uid, linked))
              UNION ALL
              SELECT m.id, m.content_tsv, m.content_trgm FROM memoriesdb.memories AS m
               WHERE by_words AND m.content_trgm IS NOT NULL   -- (the partial index's predicate)
                 AND memoriesdb_internal.owner_word_keys(m.owner_id, m.content_tsv) && keys
                 AND (m.owner_id = uid) IS TRUE AND m.content_tsv @@ tsq
              UNION ALL
              SELECT m.id, m.content_tsv, m.content_trgm FROM memoriesdb.memories AS m
               WHERE small AND m.owner_id = uid AND coalesce(m.content_tsv @@ tsq, false)
                 AND (f = '{}'::jsonb OR memoriesdb_internal.filter_holds(m, f_meta, f_scope, f_after, f_before, uid, linked))
              UNION ALL   -- a grant on one's own memory (a transfer back) is already counted above
              SELECT m.id, m.content_tsv, m.content_trgm
                FROM memoriesdb.memory_grants AS g JOIN memoriesdb.memories AS m ON m.id = g.memory_id
               WHERE g.grantee_id = uid AND m.owner_id <> uid
                 AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())
                 AND coalesce(m.content_tsv @@ tsq, false)
                 AND (f = '{}'::jsonb OR memoriesdb_internal.filter_holds(m, f_meta, f_scope, f_after, f_before, uid, linked))
              LIMIT 50000) AS x),
    -- each match's query words with their frequency in its window: taken out of its full-text vector (unnest in the
    -- select list, not in FROM, which fills a tuplestore per match: ~10% of the scoring of 8,700 matches), or with
    -- by_words the caller's postings of its short memories in memory_words (index-only; at most
    -- search_text_max_postings rows)
    t AS MATERIALIZED (
      SELECT s.id, (s.w).lexeme AS lexeme, greatest(cardinality((s.w).positions), 1)::float8 AS tf, s.dl, false AS p
        FROM (SELECT c.id, length(c.win)::float8 AS dl, unnest(ts_filter(setweight(c.win, 'A', lexemes), '{a}')) AS w
                FROM c) AS s
      UNION ALL
      (SELECT w.memory_id, w.word, w.tf::float8, w.dl::float8, true
         FROM memoriesdb_internal.memory_words AS w
        WHERE by_words AND w.owner_id = uid AND w.word = ANY (lexemes)
        LIMIT max_postings + 1)),   -- one past the bound: then the loop below reads the matches instead
    -- each word: in how many matches (df), their lengths summed, and how many postings were read
    d AS MATERIALIZED (SELECT t.lexeme, count(*)::float8 AS df, sum(t.dl) AS dls, count(*) FILTER (WHERE t.p) AS np
                         FROM t GROUP BY t.lexeme),
    -- avgdl: the matches' mean length, a match counted once for each query word it holds (one pass over t, where
    -- a mean over distinct matches took a second grouping by match: 5 ms of 9,400 postings); idf: a word's rarity
    -- among n rows (at least its matches)
    i AS MATERIALIZED (SELECT d.lexeme, ln(1 + (greatest(n, d.df) - d.df + 0.5) / (d.df + 0.5)) AS idf,
                              1.2 * 0.5 / (sum(d.dls) OVER () / sum(d.df) OVER ()) AS kd
                         FROM d)
    SELECT coalesce(array_agg(r.id ORDER BY r.bm25 DESC NULLS LAST, r.id), '{}'),
           coalesce(array_agg(r.bm25 ORDER BY r.bm25 DESC NULLS LAST, r.id), '{}'),
           (SELECT coalesce(sum(d.np), 0)::bigint FROM d)
      INTO ids, scores, postings
      FROM (SELECT b.id, b.bm25
              FROM (SELECT t.id, sum(i.idf * t.tf * 2.2 / (t.tf + 0.6 + i.kd * t.dl)) AS bm25   -- k1 1.2, b 0.5
                      FROM t JOIN i ON i.lexeme = t.lexeme GROUP BY t.id) AS b
            UNION ALL
            -- a match none of whose query words are in its window (they are past it, or it has none: a query
            -- of negated words only) scores NULL, last
            SELECT c.id, NULL FROM c WHERE NOT EXISTS (SELECT FROM t WHERE t.id = c.id)
             ORDER BY 2 DESC NULLS LAST, 1
             LIMIT depth) AS r;
    -- past search_text_max_postings (a common word of a very large tenant) the postings would be cut at some word:
    -- the matches are read from the memories instead (memories_owner_words), at most 50,000 as in every other plan
    EXIT WHEN NOT by_words OR postings <= max_postings;
    by_words := false;
  END LOOP;
  RETURN QUERY SELECT * FROM unnest(ids, scores);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean) IS
  'Internal: the best depth of the full-text matches the context user may see (a large caller''s own short memories from memoriesdb_internal.memory_words by an index-only scan when the query is of words only and has no filter, at most search_text_max_postings postings, its long ones by memories_long_owner_words; otherwise its own memories by the index keyed by owner and word, memories_owner_words, with lexemes its words; or for a small caller by the owner_id index alone; then its unexpired grants by the grantee index; at most 50,000 matches read), with their BM25 (k1 1.2, b 0.5) over the query''s lexemes in their window, a word''s rarity counted among n rows (at least its matches), avgdl the matches'' mean length counted once per query word held; NULL (last) for a match with none of them in its window. text_ranking() reads what it keeps again under RLS.';
-- (v0.5) replaced by fulltext_ranking(); revert (search_text_fn.sql) re-creates it for @v0.4.0's text_ranking()
DROP FUNCTION IF EXISTS memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[]);

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
  -- the filter's parts, split once: filter_holds() of plain parameters is inlined, where
  -- matches_filter() was called per row in these plans (6,400 calls in 43 searches of a
  -- 1,000-memory tenant with a filter)
  f_meta jsonb := f->'metadata';
  f_scope text := f->>'scope';
  f_after timestamptz := (f->>'created_after')::timestamptz;
  f_before timestamptz := (f->>'created_before')::timestamptz;
  tsq tsquery;
  threshold real := memoriesdb.setting('search_text_threshold')::real;
  max_chars integer := memoriesdb.setting('search_text_max_query_chars')::integer;
  max_words integer := memoriesdb.setting('search_text_max_query_words')::integer;
  max_phrase_ops integer := memoriesdb.setting('search_text_max_phrase_ops')::integer;
  exact_max bigint := memoriesdb.setting('search_text_exact_max')::bigint;
  words integer;
  phrase_ops integer;
  visible bigint;
  owned bigint;
  granted bigint;
  -- the query's words, any of which makes a candidate
  tok text;
  unit text := '';
  depth integer := 0;
  pos_units text[] := '{}'::text[];
  neg_units text[] := '{}'::text[];
  anyq tsquery;
  excl tsquery;       -- the negated words: a memory holding one is no candidate, by trigrams either
  lexemes text[];
  trigrams boolean;   -- a keyword query matching fewer than k memories: trigram candidates (typos)
  question boolean;   -- more than 3 words: the best by BM25 re-ranked with word similarity
  hits uuid[];        -- the best full-text matches, by BM25
  hit_scores float8[];
  cand uuid[] := '{}'::uuid[];   -- a keyword query's trigram candidates (typos)
  n bigint;           -- the rows a word's rarity is counted among
  sample record;      -- a large caller's filter, sampled (keyword queries that fall back to trigrams)
  matching double precision;
  total double precision;
  trigram_exact boolean := false;
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

  -- Any word: the operands of the query's top level (a word, a quoted or hyphenated phrase,
  -- a negated one), read from its text form at most max_words + max_phrase_ops tokens long,
  -- are ORed, and the negated ones still ANDed: 'carolin' & 'support' & 'group' & !'bar'
  -- becomes ( 'carolin' ) | ( 'support' ) | ( 'group' ) & !'bar'. A phrase stays a phrase.
  FOR tok IN SELECT t[1] FROM regexp_matches(tsq::text, '(''(?:[^'']|'''')*''(?::[*A-D]+)?|<[0-9-]+>|[&|!()])', 'g') AS t LOOP
    IF depth = 0 AND tok IN ('&', '|') THEN
      IF unit LIKE ' !%' THEN neg_units := neg_units || unit; ELSIF unit <> '' THEN pos_units := pos_units || unit; END IF;
      unit := '';
    ELSE
      depth := depth + CASE tok WHEN '(' THEN 1 WHEN ')' THEN -1 ELSE 0 END;
      unit := unit || ' ' || tok;
    END IF;
  END LOOP;
  IF unit LIKE ' !%' THEN neg_units := neg_units || unit; ELSIF unit <> '' THEN pos_units := pos_units || unit; END IF;
  IF cardinality(pos_units) = 0 THEN
    anyq := tsq;   -- no word to look for (only stop words, or only negated ones): as before
  ELSE
    anyq := (SELECT string_agg(x, ' & ')
               FROM unnest(ARRAY['(' || array_to_string(pos_units, ') | (') || ')'] || neg_units) AS x)::tsquery;
  END IF;
  IF cardinality(neg_units) > 0 THEN
    excl := (SELECT string_agg('(' || substr(x, 3) || ')', ' | ') FROM unnest(neg_units) AS x)::tsquery;   -- ' !X' -> (X)
  END IF;
  -- the words BM25 counts: those of the ORed operands, unquoted ('it''s' -> it's)
  lexemes := ARRAY(SELECT DISTINCT replace(replace(l[1], '''''', ''''), '\\', '\')
                     FROM unnest(pos_units) AS u, regexp_matches(u, '''((?:[^'']|'''')*)''', 'g') AS l);
  trigrams := cardinality(lexemes) <= 3;
  question := NOT trigrams;

  SELECT c.owned, c.granted INTO owned, granted FROM memoriesdb_internal.visible_counts(exact_max, true) AS c;
  visible := least(owned + granted, exact_max + 1);
  -- n: the caller's rows, the filter aside, as the large callers' plan always counted them (counting the rows
  -- that pass a small caller's filter read them all once more: 2.5 of 11.4 ms for a grantee of 1,000; and the two
  -- plans scored a filtered search differently). How many hold a word is counted among the matches that pass.
  IF visible > exact_max THEN
    -- a large caller. Only a word's rarity depends on n: the planner statistics' estimate for the
    -- largest tenants (owned past the cap: not counted), else counted up to 50,000 (an exact count
    -- of a 30,000-memory tenant's rows was 5 of 60 ms)
    n := CASE WHEN owned > exact_max + 1 AND granted <= exact_max THEN owned + granted
              ELSE memoriesdb_internal.visible_count(50000) END;
  ELSE
    n := visible;
  END IF;
  -- the full-text matches, scored by BM25 where they are found (fulltext_ranking: the
  -- policy's rule, applied by the helper, so that the GIN index serves): for a question the
  -- best greatest(4 k, 100), which it re-ranks, else the k it keeps
  SELECT coalesce(array_agg(r.id ORDER BY r.bm25 DESC NULLS LAST, r.id), '{}'),
         coalesce(array_agg(r.bm25 ORDER BY r.bm25 DESC NULLS LAST, r.id), '{}')
    INTO hits, hit_scores
    FROM memoriesdb_internal.fulltext_ranking(anyq, lexemes, n, CASE WHEN question THEN greatest(4 * k, 100) ELSE k END, f, linked,
                                               visible <= exact_max OR cardinality(lexemes) = 0) AS r;   -- no word: no key to look up
  -- a keyword query that found fewer than k: those near it by word similarity too (typos)
  trigrams := trigrams AND cardinality(hits) < k;
  IF trigrams AND visible > exact_max AND (f ?| ARRAY['metadata', 'created_after', 'created_before'] OR linked IS NOT NULL) THEN
    -- a large caller with a filter: the KNN below walks about 4 k * total / matching rows of the
    -- table to find 4 k that pass (a 5,000-memory tenant's 1% filter: 84,000 rows, 1.6 s); the
    -- exact scan reads the caller's n rows and computes the similarity of the matching ones.
    -- Measured (bench DB, 100,000 memories; bench/results/ranking_ab.md): a row the KNN walks 19.5 us,
    -- a row the exact scan reads 1.9 us, a similarity 12.7 us: the exact scan when
    -- n + 6.7 matching <= 10 * 4 k * total / matching (without a filter, matching = n, this puts
    -- the break-even near 2,200 visible rows at 100,000: search_text_exact_max is 2,000). The
    -- filter's share from a sample of the caller's rows, as choose_search_plan() takes it.
    SELECT * INTO sample FROM memoriesdb_internal.filter_sample(f, uid, linked, memoriesdb.setting('search_filter_sample')::int);
    matching := memoriesdb_internal.filter_matching(sample.sampled, sample.matched, n, linked);
    total := (SELECT greatest(c.reltuples, n)::double precision FROM pg_catalog.pg_class AS c
               WHERE c.oid = 'memoriesdb.memories'::regclass);
    trigram_exact := n + 6.7 * matching <= 10 * 4 * k * total / greatest(matching, 1);
  END IF;
  IF trigrams AND (visible <= exact_max OR trigram_exact) THEN
    -- a small caller (or a filter that keeps few of a large one's rows): every row it may see
    -- (under RLS) that passes the filter
    cand := ARRAY(SELECT m.id FROM memoriesdb_internal.visible_memories(uid) AS m
                   WHERE memoriesdb_internal.filter_holds(m, f_meta, f_scope, f_after, f_before, uid, linked)
                     AND public.word_similarity(query, coalesce(m.content_trgm, m.content)) >= threshold
                     AND m.id <> ALL (hits));
  ELSIF trigrams THEN
    -- a large caller: the nearest by word similarity (GiST KNN, which walks on past rows the
    -- policy hides, its distance re-checked on the window only), which typos need. A question
    -- never comes here: the KNN of a question-length query visits most of the index (its cost
    -- grew with the table), and one misspelt word of several costs a question little once any
    -- word counts.
    cand := ARRAY(SELECT m.id FROM memoriesdb.memories AS m
                   WHERE memoriesdb_internal.filter_holds(m, f_meta, f_scope, f_after, f_before, uid, linked) AND m.id <> ALL (hits)
                   ORDER BY query OPERATOR(public.<<->) coalesce(m.content_trgm, m.content)   -- the index's expression
                   LIMIT 4 * k);
  END IF;
  -- reported (transaction-local) as search() reports its plan: which rows were read for the full text, and for
  -- a keyword query that fell back to word similarity, how
  PERFORM set_config('memoriesdb.search_text_plan',
                     format('%s visible=%s', CASE WHEN visible <= exact_max THEN 'exact' ELSE 'index' END,
                            CASE WHEN visible <= exact_max THEN visible ELSE n END)   -- (visible stops at exact_max + 1)
                     || CASE WHEN NOT trigrams THEN ''
                             ELSE format(' trigrams=%s', CASE WHEN visible <= exact_max OR trigram_exact THEN 'exact' ELSE 'knn' END)
                                  || CASE WHEN matching IS NOT NULL THEN format(' matching=%s', round(matching::numeric)) ELSE '' END END,
                     true);

  -- score: BM25 (k1 = 1.2, b = 0.5: short turns, whose length says little; fulltext_ranking)
  -- mapped into [0, 1) as bm25 / (bm25 + 1); for a question, the best greatest(4 k, 100) by
  -- BM25 also get half their trigram word similarity (shared phrases and word forms the
  -- stemmer misses: recall@5 0.69 -> 0.87 on bench/search_quality.py's questions), so score is
  -- in [0, 1.5); a trigram candidate (a keyword query's typos) scores its word similarity
  -- alone. Not the sum for a keyword query: a longer word's similarity outranked a rarer
  -- word, and every memory holding a one-word query had the same similarity. What is kept is
  -- read again here under RLS, so a row the caller may not see is never returned.
  RETURN QUERY
    WITH top AS (
      -- a match with none of the query's words in its window (NULL BM25) ranks by its similarity
      SELECT h.id, h.bm25, CASE WHEN h.bm25 IS NULL AND trigrams
                                THEN (SELECT public.word_similarity(query, coalesce(m.content_trgm, m.content))
                                        FROM memoriesdb.memories AS m WHERE m.id = h.id)
                                ELSE 0 END AS sim
        FROM unnest(hits, hit_scores) AS h(id, bm25)
      UNION ALL
      SELECT x.id, x.bm25, x.sim
        FROM (SELECT m.id, NULL::float8 AS bm25, public.word_similarity(query, coalesce(m.content_trgm, m.content)) AS sim
                FROM memoriesdb.memories AS m
               WHERE m.id = ANY (cand) AND NOT coalesce(m.content_tsv @@ excl, false)) AS x
       WHERE x.sim >= threshold
       ORDER BY 2 DESC NULLS LAST, 3 DESC, 1
       LIMIT CASE WHEN question THEN greatest(4 * k, 100) ELSE k END)
    SELECT m.id, (CASE WHEN x.bm25 IS NULL THEN coalesce(x.sim, 0)
                       ELSE x.bm25 / (x.bm25 + 1)
                            + CASE WHEN question THEN 0.5 * public.word_similarity(query, coalesce(m.content_trgm, m.content)) ELSE 0 END
                  END)::real AS score,
           m.content, m.metadata, m.owner_id, m.created_by, m.created_at
      FROM top AS x JOIN memoriesdb.memories AS m ON m.id = x.id
     ORDER BY 2 DESC, 1
     LIMIT k;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.text_ranking(text, integer, jsonb) IS
  'Internal: the text ranking behind search_text(), without the access log entry; search_text() and search_hybrid() call it, nothing else may. Candidates: the visible memories holding any word or quoted phrase of the query (a negated one excludes), and for a keyword query of at most 3 words that finds fewer than k those of trigram word similarity >= search_text_threshold; ranked by BM25 (k1 1.2, b 0.5) over the caller''s visible rows, mapped into [0, 1), a question''s best greatest(4 k, 100) plus half their word similarity, a trigram-only candidate by its similarity. Small callers (search_text_exact_max) are scanned whole, large ones read by the GIN index within their own rows and grants; both score alike. Reads the window of each memory (coalesce(content_trgm, content): its first search_text_window_chars characters); refuses (MDB12) a query longer than search_text_max_query_chars, of more than search_text_max_query_words words or with more than search_text_max_phrase_ops phrase operators. Runs as memoriesdb_reader under row-level security.';
ALTER FUNCTION memoriesdb_internal.text_ranking(text, integer, jsonb) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.search_text(query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}')
RETURNS TABLE (id uuid, score real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
SET jit = off
AS $$
DECLARE
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea := memoriesdb_internal.query_fingerprint(query, NULL, k, filter);
  viewer uuid;   -- the caller, read only for a memory that changed hands
BEGIN
  PERFORM memoriesdb_internal.context_user();   -- the proof verified once, before the policies below ask
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
  'The k visible memories that best match query as text: those holding any of its words (english stemming; a quoted phrase as a phrase, a -word excludes), ranked by BM25 over the memories the caller may see (no other tenant''s statistics), mapped into [0, 1); a question (more than 3 words) adds half the pg_trgm word similarity of its best candidates; a keyword query (at most 3 words) that finds fewer than k adds memories by word similarity (typos still match), scored by it. Both read the first search_text_window_chars characters of a memory (a full-text match anywhere still finds it). score is in [0, 2). A query longer than search_text_max_query_chars, of more than search_text_max_query_words words (stop words aside) or with more than search_text_max_phrase_ops phrase operators is refused (MDB12). Same visibility and filter as search(). Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';
ALTER FUNCTION memoriesdb.search_text(text, integer, jsonb) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.search_hybrid(query text, query_vector public.vector, k integer DEFAULT 10,
                                                    filter jsonb DEFAULT '{}', vector_weight real DEFAULT 1,
                                                    text_weight real DEFAULT 1, rrf_k integer DEFAULT 2)
RETURNS TABLE (id uuid, score real, vector_rank integer, text_rank integer, similarity real,
               content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
DECLARE
  depth integer;
  viewer uuid;   -- the caller, read only for a memory that changed hands
  log_ids uuid[] := '{}'::uuid[];
  log_query bytea := memoriesdb_internal.query_fingerprint(query, query_vector, k, filter, concat_ws(',', vector_weight, text_weight, rrf_k));
BEGIN
  PERFORM memoriesdb_internal.context_user();   -- the proof verified once, before the policies below ask
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
      HINT = 'weights are finite, >= 0 and not both 0; rrf_k is between 1 and 1000000 (the default, 2, lets the top of either ranking lead)';
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
  'Fuses search() and search_text() by reciprocal rank fusion: score = vector_weight / (rrf_k + vector rank) + text_weight / (rrf_k + text rank), so an exact phrase and a paraphrase both surface. rrf_k defaults to 2: with two rankings a small constant lets the top of either lead (60, the usual default for fusing many runs, flattens the ranks so that a row middling in both beats one that is first in one; measured in bench/results/search_quality.md). Weights finite and >= 0 (not both 0), rrf_k between 1 and 1000000, else MDB12; the text query is bounded as in search_text(). Same visibility and filter. Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';
ALTER FUNCTION memoriesdb.search_hybrid(text, vector, integer, jsonb, real, real, integer) OWNER TO memoriesdb_reader;

COMMIT;
