-- Revert memoriesdb:text_index_columns from pg
-- Drops content_trgm (no table rewrite) and the trigram index on coalesce(content_trgm, content).
-- (text_index_bounds, reverted before this, rebuilt the index on content.)
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP INDEX memoriesdb.memories_content_trgm_key;
ALTER TABLE memoriesdb.memories DROP COLUMN content_trgm;

COMMIT;
