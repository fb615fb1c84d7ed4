-- Verify memoriesdb:search_bounds on pg
BEGIN;
SELECT 1/(count(*) = 4)::int FROM memoriesdb.config
 WHERE key IN ('search_text_max_query_chars', 'search_text_max_query_words', 'search_text_max_phrase_ops', 'search_text_window_chars');
-- a long memory's window: its first search_text_window_chars characters
SELECT 1/(char_length(memoriesdb_internal.trgm_prefix(repeat('ab ', 1000))) = memoriesdb.setting('search_text_window_chars')::int)::int;
ROLLBACK;
