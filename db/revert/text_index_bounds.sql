-- Revert memoriesdb:text_index_bounds from pg
-- Back to the state text_index_columns left: content_tsv a generated column again, the
-- trigram index on content (memories_content_trgm) beside the one on coalesce(content_trgm,
-- content) (memories_content_trgm_key). A generated column cannot be added to an existing
-- column: content_tsv is dropped and added again (a table rewrite) and its GIN index built
-- again. Fails, changing nothing, while a memory holds content that v0.2.0's indexes cannot
-- hold (forget such memories first).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

COMMENT ON INDEX memoriesdb.memories_content_trgm IS NULL;
ALTER INDEX memoriesdb.memories_content_trgm RENAME TO memories_content_trgm_key;
CREATE INDEX memories_content_trgm ON memoriesdb.memories USING gist (content public.gist_trgm_ops);

ALTER TABLE memoriesdb.memories DROP COLUMN content_tsv;
ALTER TABLE memoriesdb.memories
  ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED;
COMMENT ON COLUMN memoriesdb.memories.content_tsv IS 'Full-text vector of content (english stemming), for search_text().';
CREATE INDEX memories_content_tsv ON memoriesdb.memories USING gin (content_tsv);

COMMIT;
