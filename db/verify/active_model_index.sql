-- Verify memoriesdb:active_model_index on pg
BEGIN;
SELECT 1 / (1 - count(*)::int) FROM pg_catalog.pg_indexes WHERE schemaname = 'memoriesdb' AND indexname = 'memories_embedding_hnsw';
SELECT 1 / count(*)::int FROM memoriesdb.embedding_models AS em JOIN pg_catalog.pg_indexes AS i
    ON i.schemaname = 'memoriesdb' AND i.indexname = memoriesdb_internal.model_index_name(em.id)
 WHERE em.state = 'active';
ROLLBACK;
