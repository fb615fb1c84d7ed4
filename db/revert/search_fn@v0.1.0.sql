-- Revert memoriesdb:search_fn from pg
BEGIN;
DROP FUNCTION memoriesdb.search(public.vector, integer, jsonb, real);
DROP FUNCTION memoriesdb.visible_memories(uuid);
DROP FUNCTION memoriesdb.visible_count(bigint);
DROP FUNCTION memoriesdb.linked_ids(jsonb);
DROP FUNCTION memoriesdb.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[]);
DROP FUNCTION memoriesdb.check_search_filter(jsonb);
DROP FUNCTION memoriesdb.check_query_vector(public.vector);
DELETE FROM memoriesdb.config WHERE key IN ('search_exact_max', 'search_ef_search', 'search_max_scan_tuples');
DROP INDEX memoriesdb.memories_embedding_hnsw;
COMMIT;
