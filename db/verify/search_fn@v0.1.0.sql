-- Verify memoriesdb:search_fn on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.search(public.vector, integer, jsonb, real)', 'execute')::int;
-- (search's SECURITY INVOKER is not checked here: api_only_content_reads makes it a definer owned by memoriesdb_reader)
SELECT 'memoriesdb.memories_embedding_hnsw'::regclass;
ROLLBACK;
