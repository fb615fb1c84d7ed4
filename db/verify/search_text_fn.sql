-- Verify memoriesdb:search_text_fn on pg
BEGIN;
SELECT 'memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean)'::regprocedure;
SELECT 1/(to_regprocedure('memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[])') IS NULL)::int;
SELECT 'memoriesdb_internal.text_ranking(text, integer, jsonb)'::regprocedure;
SELECT 'memoriesdb.search_text(text, integer, jsonb)'::regprocedure;
SELECT 'memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.text_ranking(text, integer, jsonb)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.search_text(text, integer, jsonb)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer)'::regprocedure;
SELECT 1/(strpos(prosrc, 'statement_timestamp()') > 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean)'::regprocedure;
SELECT 'memoriesdb_internal.set_text_index_columns()'::regprocedure;
-- the window: ordinary content itself, the first search_text_window_chars (1000 until search_bounds) characters of longer content
SELECT 1/(memoriesdb_internal.trgm_prefix('an ordinary memory') IS NULL)::int;
SELECT 1/(char_length(memoriesdb_internal.trgm_prefix(string_agg(md5(g::text), ' ')))
          = least(coalesce(memoriesdb.setting('search_text_window_chars')::int, 1000), 1732))::int FROM generate_series(1, 2000) AS g;
SELECT 1/(char_length(memoriesdb_internal.trgm_prefix(repeat('ab ', 1000)))
          = least(coalesce(memoriesdb.setting('search_text_window_chars')::int, 1000), 1732))::int;
SELECT 1/(strpos(prosrc, 'search_text_max_query_chars') > 0 AND strpos(prosrc, 'content_trgm') > 0)::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.text_ranking(text, integer, jsonb)'::regprocedure;
-- (v0.5) any word of the query, ranked by BM25 over the caller's rows
SELECT 1/(strpos(prosrc, 'fulltext_ranking(') > 0 AND strpos(prosrc, 'pos_units') > 0)::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.text_ranking(text, integer, jsonb)'::regprocedure;
SELECT 1/(strpos(prosrc, 'ts_filter(setweight(') > 0)::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean)'::regprocedure;
SELECT 1/(strpos(prosrc, '''Infinity''::real') > 0)::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer)'::regprocedure;
SELECT 1/(memoriesdb_internal.content_tsvector('an ordinary memory') = to_tsvector('english'::regconfig, 'an ordinary memory'))::int;
ROLLBACK;
