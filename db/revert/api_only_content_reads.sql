-- Revert memoriesdb:api_only_content_reads from pg
-- The read functions run as the caller again; the application reads whole rows.
BEGIN;

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOREACH f IN ARRAY ARRAY[
      'memoriesdb.recall(uuid)', 'memoriesdb.verify(uuid)', 'memoriesdb.provenance(uuid)',
      'memoriesdb.search(public.vector, integer, jsonb, real)', 'memoriesdb.search_text(text, integer, jsonb)',
      'memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer)',
      'memoriesdb.vector_ranking(public.vector, integer, jsonb, real)', 'memoriesdb.text_ranking(text, integer, jsonb)']::regprocedure[]
  LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER', f);
    EXECUTE format('ALTER FUNCTION %s OWNER TO memoriesdb_owner', f);
  END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION memoriesdb.vector_ranking(public.vector, integer, jsonb, real),
                          memoriesdb.text_ranking(text, integer, jsonb) TO memoriesdb_app;
COMMENT ON FUNCTION memoriesdb.vector_ranking(public.vector, integer, jsonb, real) IS
  'Internal: the body of search() (defined in search_fn as search), without the access log entry; search() and search_hybrid() call it. SECURITY INVOKER: row-level security decides.';
COMMENT ON FUNCTION memoriesdb.text_ranking(text, integer, jsonb) IS
  'Internal: the body of search_text() (defined in search_text_fn as search_text), without the access log entry; search_text() and search_hybrid() call it. SECURITY INVOKER.';

REVOKE SELECT ON memoriesdb.memories, memoriesdb.memory_revisions, memoriesdb.audit_log FROM memoriesdb_app;
GRANT SELECT ON memoriesdb.memories, memoriesdb.memory_revisions, memoriesdb.audit_log TO memoriesdb_app;

ALTER POLICY memories_visible ON memoriesdb.memories TO memoriesdb_app;
ALTER POLICY memory_revisions_visible ON memoriesdb.memory_revisions TO memoriesdb_app;
ALTER POLICY memory_grants_parties ON memoriesdb.memory_grants TO memoriesdb_app;
ALTER POLICY memory_transfers_visible ON memoriesdb.memory_transfers TO memoriesdb_app;
ALTER POLICY memory_edges_visible ON memoriesdb.memory_edges TO memoriesdb_app;
ALTER POLICY edge_types_read ON memoriesdb.edge_types TO memoriesdb_app;

-- the role goes unless another database's ledger still uses it
DO $$
BEGIN
  EXECUTE 'DROP OWNED BY memoriesdb_reader';   -- its privileges in this database
  BEGIN
    DROP ROLE memoriesdb_reader;
  EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
    RAISE NOTICE 'role memoriesdb_reader kept: another database still uses it';
  END;
END
$$;

COMMENT ON FUNCTION memoriesdb.recall(uuid) IS
  'One memory with its metadata and content hash, if the caller may see it (row-level security decides: SECURITY INVOKER); MDB03 otherwise, the same for a missing id. One access log entry per call; a refusal is logged too.';
COMMENT ON FUNCTION memoriesdb.search(public.vector, integer, jsonb, real) IS
  'The k visible memories most similar to query (cosine similarity, 1 = same direction): the caller''s own and those shared with it by unexpired grants; forgotten ones never. SECURITY INVOKER: row-level security decides. filter: {"metadata": {...} (containment), "scope": "own"|"shared"|"all", "created_after": ts, "created_before": ts, "linked_to": memory id}; unknown keys are an error. MDB11 for a query vector of the wrong dimension, NaN or zero. Small callers get an exact scan, large ones the HNSW index with iterative scan (config search_exact_max). Each call is one access log entry with the ids returned and a hash of the query.';
COMMENT ON FUNCTION memoriesdb.search_text(text, integer, jsonb) IS
  'The k visible memories that best match query as text: pg_trgm word similarity (typos still match) plus the full-text rank (english stemming) when the words match. score is in [0, 2). Same visibility and filter as search(). SECURITY INVOKER. One access log entry per call.';
COMMENT ON FUNCTION memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer) IS
  'Fuses search() and search_text() by reciprocal rank fusion: score = vector_weight / (rrf_k + vector rank) + text_weight / (rrf_k + text rank), so an exact phrase and a paraphrase both surface. Same visibility and filter. SECURITY INVOKER. One access log entry per call.';

COMMIT;
