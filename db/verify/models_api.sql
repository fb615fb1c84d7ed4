-- Verify memoriesdb:models_api on pg
BEGIN;
SELECT 1 / count(*) FROM pg_catalog.pg_proc
 WHERE oid = 'memoriesdb.activate_model(text)'::regprocedure AND prosecdef
   AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp'];
SELECT 'memoriesdb.add_model(text, text, integer)'::regprocedure, 'memoriesdb.pause_model(text)'::regprocedure,
       'memoriesdb.resume_model(text)'::regprocedure, 'memoriesdb.retire_model(text)'::regprocedure,
       'memoriesdb.model_progress()'::regprocedure,
       'memoriesdb.import_embeddings(text, uuid[], text[], public.vector[])'::regprocedure;
ROLLBACK;
