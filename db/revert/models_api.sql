-- Revert memoriesdb:models_api from pg
BEGIN;
DROP FUNCTION memoriesdb.add_model(text, text, integer), memoriesdb.activate_model(text), memoriesdb.pause_model(text),
  memoriesdb.resume_model(text), memoriesdb.retire_model(text), memoriesdb.model_progress(),
  memoriesdb.import_embeddings(text, uuid[], text[], public.vector[]),
  memoriesdb.dead_embedding_jobs(integer, text), memoriesdb.requeue_dead_embedding_jobs(uuid[], text),
  memoriesdb_internal.model_named(text), memoriesdb_internal.model_index_name(uuid),
  memoriesdb_internal.create_model_index(uuid, integer), memoriesdb_internal.model_index_definition(uuid, integer),
  memoriesdb_internal.model_index_rebuild(text);
COMMIT;
