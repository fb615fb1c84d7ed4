-- Revert memoriesdb:search_text_fn from pg
BEGIN;
DROP FUNCTION memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer);
DROP FUNCTION memoriesdb.search_text(text, integer, jsonb);
DROP FUNCTION memoriesdb.fulltext_candidates(tsquery, integer, jsonb, uuid[]);
DELETE FROM memoriesdb.config WHERE key IN ('search_text_threshold', 'search_text_exact_max');
DROP INDEX memoriesdb.memories_content_tsv;
DROP INDEX memoriesdb.memories_content_trgm;
ALTER TABLE memoriesdb.memories DROP COLUMN content_tsv;
COMMIT;
