-- Deploy memoriesdb:text_index_bounds to pg
-- requires: triggers
-- Content under max_content_bytes that the text indexes cannot hold whole is accepted (run
-- once; text_index_columns began it).
--   memories_content_trgm: the index on coalesce(content_trgm, content) that
--     text_index_columns built takes the name; the one on content, which search_text() no
--     longer uses, is dropped.
--   content_tsv: no longer a generated column but a plain one kept by the trigger
--     text_index (triggers.sql) as content_tsvector(content): the same vector as before for
--     every memory whose vector fits PostgreSQL's 1 MB tsvector limit, which ~500 kB of
--     distinct words passed ("string is too long for tsvector"). DROP EXPRESSION changes the
--     catalog only: no table rewrite, and its GIN index stays as it is.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP INDEX memoriesdb.memories_content_trgm;
ALTER INDEX memoriesdb.memories_content_trgm_key RENAME TO memories_content_trgm;
COMMENT ON INDEX memoriesdb.memories_content_trgm IS
  'Trigram (GiST) index of coalesce(content_trgm, content): all of the content when its trigrams fit an index row, else its first 1732 characters. search_text() orders by word distance to it (KNN).';

ALTER TABLE memoriesdb.memories ALTER COLUMN content_tsv DROP EXPRESSION;
COMMENT ON COLUMN memoriesdb.memories.content_tsv IS
  'Full-text vector of content (english stemming), for search_text(): content_tsvector(content), kept by the trigger text_index: all of it when it fits PostgreSQL''s 1 MB tsvector limit, else the vectors of as many chunks from the start as fit.';

COMMIT;
