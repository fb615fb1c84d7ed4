-- Revert memoriesdb:text_index_bounds from pg
-- content_tsv a generated column again and the trigram index on content, as in v0.2.0.
-- A generated column cannot be added to an existing column: content_tsv is dropped and
-- added again (a table rewrite), and its GIN index built again. Fails, and changes nothing,
-- while a memory holds content that v0.2.0's indexes cannot hold (forget it first).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE INDEX memories_content_trgm_v020 ON memoriesdb.memories USING gist (content public.gist_trgm_ops);
DROP INDEX memoriesdb.memories_content_trgm;
ALTER INDEX memoriesdb.memories_content_trgm_v020 RENAME TO memories_content_trgm;

ALTER TABLE memoriesdb.memories DROP COLUMN content_tsv;
ALTER TABLE memoriesdb.memories
  ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED;
COMMENT ON COLUMN memoriesdb.memories.content_tsv IS 'Full-text vector of content (english stemming), for search_text().';
CREATE INDEX memories_content_tsv ON memoriesdb.memories USING gin (content_tsv);

COMMIT;
