-- Revert memoriesdb:model_search from pg
BEGIN;
DROP FUNCTION memoriesdb.search(public.vector, text, integer, jsonb, real),
  memoriesdb.search_hybrid(text, public.vector, text, integer, jsonb, real, real, integer),
  memoriesdb_internal.model_vector_ranking(public.vector, uuid, integer, integer, jsonb, real),
  memoriesdb_internal.search_model(text), memoriesdb.search_model_info(text);
COMMIT;
