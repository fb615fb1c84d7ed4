-- Verify memoriesdb:text_index_columns on pg
BEGIN;
SELECT content_trgm FROM memoriesdb.memories WHERE false;
SELECT 1/count(*) FROM pg_catalog.pg_indexes
 WHERE schemaname = 'memoriesdb' AND tablename = 'memories' AND indexdef LIKE '%COALESCE(content_trgm, content)%';
ROLLBACK;
