-- Verify memoriesdb:search_text_fn on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.search_text(text, integer, jsonb)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer)', 'execute')::int;
SELECT 'memoriesdb.memories_content_trgm'::regclass, 'memoriesdb.memories_content_tsv'::regclass;
ROLLBACK;
