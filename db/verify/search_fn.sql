-- Verify memoriesdb:search_fn on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.search(public.vector, integer, jsonb, real)', 'execute')::int;
SELECT 1/(NOT prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.search(public.vector, integer, jsonb, real)'::regprocedure;
SELECT 'memoriesdb.memories_embedding_hnsw'::regclass;
ROLLBACK;
