-- Deploy memoriesdb:text_index_bounds to pg
-- requires: triggers
-- Content under max_content_bytes that the text indexes cannot hold whole is accepted
-- (run once). Before this change, 45 kB of random words failed inside remember() with
-- "index row requires 74168 bytes, maximum size is 8191" (the trigram GiST index), and
-- ~500 kB of distinct words with "string is too long for tsvector" (content_tsv).
--   content_tsv: no longer a generated column but a plain one kept by the trigger
--     content_tsv (triggers.sql) as content_tsvector(content), the same vector for every
--     memory that fits. DROP EXPRESSION changes the catalog only: no table rewrite, and the
--     GIN index on it stays as it is.
--   memories_content_trgm: on trgm_key(content), the content itself for every memory that
--     fits (so the same entries as before) and a prefix for the others. Rebuilt: an index
--     expression cannot change in place. Built before the old index is dropped, so reads
--     go on during the build (writes wait for it).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE INDEX memories_content_trgm_key ON memoriesdb.memories
  USING gist (memoriesdb_internal.trgm_key(content) public.gist_trgm_ops);
DROP INDEX memoriesdb.memories_content_trgm;
ALTER INDEX memoriesdb.memories_content_trgm_key RENAME TO memories_content_trgm;
COMMENT ON INDEX memoriesdb.memories_content_trgm IS
  'Trigram (GiST) index of trgm_key(content): all of the content when its trigrams fit an index row, else its first 1732 characters. search_text() orders by word distance to it (KNN).';

ALTER TABLE memoriesdb.memories ALTER COLUMN content_tsv DROP EXPRESSION;
COMMENT ON COLUMN memoriesdb.memories.content_tsv IS
  'Full-text vector of content (english stemming), for search_text(): content_tsvector(content), kept by the trigger content_tsv: all of it when it fits PostgreSQL''s 1 MB tsvector limit, else the vectors of as many chunks from the start as fit.';

COMMIT;
