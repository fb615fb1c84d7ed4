-- Deploy memoriesdb:text_index_columns to pg
-- requires: audit_log
-- What the trigram index holds of a memory, in a column (run once). An index row holds at
-- most 8191 bytes, and the trigram GiST entry of a memory takes 3 bytes a distinct trigram:
-- before this change 45 kB of random words failed inside remember() with "index row requires
-- 74168 bytes, maximum size is 8191". content_trgm is NULL while the content fits (every
-- memory stored until now, and so no backfill: ADD COLUMN without a default changes the
-- catalog only), else the prefix the index holds instead (memoriesdb_internal.trgm_prefix(),
-- kept by the trigger text_index). The new index, on coalesce(content_trgm, content), has
-- the same entries as the old one for every memory that fits; it is built beside the old
-- one, which search_text() uses until text_index_bounds drops it, so reads go on during the
-- build (writes wait for it).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

ALTER TABLE memoriesdb.memories ADD COLUMN content_trgm text;
COMMENT ON COLUMN memoriesdb.memories.content_trgm IS
  'What the trigram index holds instead of content when content has too many distinct trigrams for an index row: its first 1732 characters (trgm_prefix()); NULL when the index holds content itself. Kept by the trigger text_index.';

CREATE INDEX memories_content_trgm_key ON memoriesdb.memories
  USING gist ((coalesce(content_trgm, content)) public.gist_trgm_ops);

COMMIT;
