-- Revert memoriesdb:memory_words from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP INDEX memoriesdb.memories_long_owner_words;
DELETE FROM memoriesdb.config WHERE key = 'search_text_max_postings';
UPDATE memoriesdb.config
   SET description = replace(description, ', then run SELECT memoriesdb_internal.rebuild_memory_words() (triggers off: the words search_text() scores follow the window)', '')
 WHERE key = 'search_text_window_chars';
DROP TRIGGER memory_words ON memoriesdb.memories;
DROP FUNCTION memoriesdb_internal.rebuild_memory_words();
DROP FUNCTION memoriesdb_internal.keep_memory_words();
DROP FUNCTION memoriesdb_internal.words_of(uuid, uuid, tsvector, boolean);
DROP TABLE memoriesdb_internal.memory_words;
COMMIT;
