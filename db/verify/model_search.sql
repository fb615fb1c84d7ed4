-- Verify memoriesdb:model_search on pg
BEGIN;
SELECT 1 / count(*) FROM pg_catalog.pg_proc
 WHERE oid = 'memoriesdb.search(public.vector, text, integer, jsonb, real)'::regprocedure AND prosecdef
   AND proowner = 'memoriesdb_reader'::regrole AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp'];
SELECT 'memoriesdb.search_hybrid(text, public.vector, text, integer, jsonb, real, real, integer)'::regprocedure;
ROLLBACK;
