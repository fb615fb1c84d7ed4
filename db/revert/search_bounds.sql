-- Revert memoriesdb:search_bounds from pg
-- The settings go (trgm_prefix() falls back on a window of 1000 characters, as stored);
-- the comments of text_index_bounds come back.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DELETE FROM memoriesdb.config
 WHERE key IN ('search_text_max_query_chars', 'search_text_max_query_words', 'search_text_max_phrase_ops', 'search_text_window_chars');

COMMENT ON COLUMN memoriesdb.memories.content_trgm IS
  'What the trigram index holds instead of content when content has too many distinct trigrams for an index row: its first 1732 characters (trgm_prefix()); NULL when the index holds content itself. Kept by the trigger text_index.';
COMMENT ON INDEX memoriesdb.memories_content_trgm IS
  'Trigram (GiST) index of coalesce(content_trgm, content): all of the content when its trigrams fit an index row, else its first 1732 characters. search_text() orders by word distance to it (KNN).';

COMMIT;
