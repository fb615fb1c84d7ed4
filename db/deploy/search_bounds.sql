-- Deploy memoriesdb:search_bounds to pg
-- requires: search_text_fn
-- requires: text_index_bounds
-- What one text search may cost, whatever a tenant stores or asks (run once): the
-- settings that bound search_text() and search_hybrid(), and every stored memory
-- re-windowed. The functions: search_text_fn.sql.
--
-- pg_trgm's word similarity is quadratic in the length of the text it reads and does not
-- check for interrupts: one tenant's 1 MB memory and a 1 kB query took 7 s, a 10 kB query
-- 226 s, uncancellable, and the KNN scan of every large caller re-checked its distance to
-- that memory (other tenants' rows included: the policy filters after the index scan).
-- The ranking now reads a window of each memory, coalesce(content_trgm, content), which
-- the trigram index holds too: content_trgm = trgm_prefix(content) is NULL when content has
-- at most search_text_window_chars characters, else its first that many. Until now it
-- was NULL for any content of at most 2600 distinct trigrams (1 MB of "ab ab ..." has 3),
-- so the stored memories are re-windowed here. Only that derived column changes, which
-- the audit log's row image leaves out: no trigger runs (no stamp, no audit entry), as a
-- superuser may arrange. Every memory longer than the window gets a new row version.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('search_text_max_query_chars', '1000', 'search_text(), search_hybrid(): the longest query accepted, in characters; a longer one is refused (MDB12)'),
  ('search_text_max_query_words', '32', 'search_text(), search_hybrid(): the most words (lexemes: stop words such as "the" do not count) the query''s full-text form may hold; more is refused (MDB12), as the full-text rank''s work grows with them'),
  ('search_text_max_phrase_ops', '8', 'search_text(), search_hybrid(): the most phrase operators (<-> and <N>) the query''s full-text form may hold: a quoted phrase of n words has n - 1, a hyphenated word of n parts n; more is refused (MDB12), as the full-text rank''s work grows with the square of a phrase'),
  ('search_text_window_chars', '1000', 'search_text(), search_hybrid(): how many characters from the start of each memory the text ranking reads and the trigram index holds (word similarity and full-text rank; a full-text match anywhere still finds the memory); at most 1732 (an index row). Applied when a memory is written (memories.content_trgm); see search_bounds.sql to re-window the stored ones');

RESET ROLE;
SET LOCAL session_replication_role = replica;   -- no trigger: content_trgm only (superuser)
SET LOCAL ROLE memoriesdb_owner;
UPDATE memoriesdb.memories AS m SET content_trgm = memoriesdb_internal.trgm_prefix(m.content)
 WHERE m.content_trgm IS DISTINCT FROM memoriesdb_internal.trgm_prefix(m.content);

COMMENT ON COLUMN memoriesdb.memories.content_trgm IS
  'The window of a long memory: its first search_text_window_chars characters (trgm_prefix()), NULL when content has no more; coalesce(content_trgm, content) is what the text ranking reads and the trigram index holds. Kept by the trigger text_index.';
COMMENT ON INDEX memoriesdb.memories_content_trgm IS
  'Trigram (GiST) index of the window of each memory, coalesce(content_trgm, content): the content, or its first search_text_window_chars characters. search_text() orders a large caller''s candidates by word distance to it (KNN).';

COMMIT;
