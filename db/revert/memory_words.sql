-- Revert memoriesdb:memory_words from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP INDEX memoriesdb.memories_long_owner_words;
DROP TRIGGER memory_words ON memoriesdb.memories;
DROP FUNCTION memoriesdb_internal.rebuild_memory_words();
DROP FUNCTION memoriesdb_internal.keep_memory_words();
DROP FUNCTION memoriesdb_internal.words_of(uuid, uuid, tsvector, boolean);
DROP TABLE memoriesdb_internal.memory_words;
COMMIT;
