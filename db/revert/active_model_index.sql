-- Revert memoriesdb:active_model_index from pg
-- memories.embedding gets its HNSW index back (as search_fn@v0.1.0.sql made it); the active model's index on
-- embeddings goes (before this change an active model had none); the policy hashes the visible memories again.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
CREATE INDEX memories_embedding_hnsw ON memoriesdb.memories USING hnsw (embedding public.vector_ip_ops);
COMMENT ON INDEX memoriesdb.memories_embedding_hnsw IS
  'Inner product on L2-normalised embeddings = cosine similarity, without the normalisation cost per comparison.';
DO $$
BEGIN
  EXECUTE (SELECT format('DROP INDEX IF EXISTS memoriesdb.%I', memoriesdb_internal.model_index_name(em.id))
             FROM memoriesdb.embedding_models AS em WHERE em.state = 'active');
END
$$;
ALTER POLICY embeddings_visible ON memoriesdb.embeddings USING (memory_id IN (SELECT m.id FROM memoriesdb.memories AS m));
COMMIT;
