-- Verify memoriesdb:embedding_models on pg
BEGIN;
SELECT id, name, provider, dimension, state, activated_at, retired_at FROM memoriesdb.embedding_models WHERE false;
SELECT memory_id, model_id, content_hash, embedding FROM memoriesdb.embeddings WHERE false;
SELECT model_id FROM memoriesdb.embedding_schedule WHERE false;
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb.embedding_models'::regclass, 'memoriesdb.embeddings'::regclass) AND relrowsecurity AND relforcerowsecurity;
SELECT 1 / (count(*) = 1)::int FROM memoriesdb.embedding_models WHERE state = 'active';
SELECT 1 / count(*) FROM pg_catalog.pg_index WHERE indexrelid = 'memoriesdb.embedding_models_one_active'::regclass AND indisunique;
ROLLBACK;
