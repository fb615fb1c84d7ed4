-- Deploy memoriesdb:active_model_index to pg
-- requires: embedding_models
-- requires: models_api
-- The active model is searched through its own partial HNSW index on memoriesdb.embeddings, like every other
-- model (run once). memories.embedding stays the mirror of the active model's vectors (the exact search plan,
-- the graph, the audit log read it) but loses its HNSW index: with it, activate_model() cost one HNSW insert
-- per memory into an index holding both models' row versions (44.6 s for 5,000 memories of 384 dimensions,
-- 96 % of the switch); without it the switch is a registry flip and a set-wise rewrite of the mirror, and the
-- active model's index is the one its filling built. search_fn.sql (vector_ranking()) reads it.
--
-- The embeddings_visible policy (the memories the caller may see) becomes a correlated EXISTS that the planner
-- cannot turn into a hash of every visible memory (OFFSET 0): an HNSW scan checks the few candidates it
-- returns, each by primary key under the memories' own policy, instead of hashing the caller's whole tenant
-- first (21 ms for 5,000 memories, growing with the tenant).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
ALTER POLICY embeddings_visible ON memoriesdb.embeddings
  USING (EXISTS (SELECT 1 FROM memoriesdb.memories AS m WHERE m.id = memory_id OFFSET 0));   -- m is itself under RLS
SELECT memoriesdb_internal.create_model_index(em.id, em.dimension) FROM memoriesdb.embedding_models AS em WHERE em.state = 'active';
DROP INDEX memoriesdb.memories_embedding_hnsw;
COMMIT;
