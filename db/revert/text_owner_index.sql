-- Revert memoriesdb:text_owner_index from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
CREATE INDEX memories_content_tsv ON memoriesdb.memories USING gin (content_tsv);
DROP INDEX memoriesdb.memories_owner_words;
DROP FUNCTION memoriesdb_internal.owner_word_keys(uuid, tsvector);
COMMIT;
