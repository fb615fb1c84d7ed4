-- Verify memoriesdb:text_index_bounds on pg
BEGIN;
SELECT 1/(attgenerated = '')::int FROM pg_catalog.pg_attribute
 WHERE attrelid = 'memoriesdb.memories'::regclass AND attname = 'content_tsv';
SELECT 1/(position('COALESCE(content_trgm, content)' in pg_get_indexdef('memoriesdb.memories_content_trgm'::regclass)) > 0)::int;
ROLLBACK;
