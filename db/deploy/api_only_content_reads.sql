-- Deploy memoriesdb:api_only_content_reads to pg
-- requires: access_logged_api
-- Memory contents are read only through the API, so every read of them is in
-- the access log. The application role keeps SELECT (under row-level security)
-- on the columns that say what exists and who owns it, but not on content,
-- metadata, the embedding or its derived text, nor on the row images of the
-- audit log; the read functions become SECURITY DEFINER functions owned by
-- memoriesdb_reader, a NOLOGIN role without BYPASSRLS that row-level security
-- binds exactly as it binds the application: it sees what the context user may see.
BEGIN;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_reader') THEN
    CREATE ROLE memoriesdb_reader NOLOGIN NOINHERIT;
  END IF;
END
$$;
COMMENT ON ROLE memoriesdb_reader IS
  'MemoriesDB: owns the read functions (recall, verify, provenance, search*). NOLOGIN, no BYPASSRLS: row-level security shows it what the context user may see. Nobody acts as it outside those functions.';

GRANT USAGE ON SCHEMA memoriesdb TO memoriesdb_reader;
GRANT SELECT ON memoriesdb.memories, memoriesdb.memory_revisions, memoriesdb.memory_grants,
                memoriesdb.memory_transfers, memoriesdb.memory_edges, memoriesdb.edge_types TO memoriesdb_reader;
ALTER POLICY memories_visible ON memoriesdb.memories TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_revisions_visible ON memoriesdb.memory_revisions TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_grants_parties ON memoriesdb.memory_grants TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_transfers_visible ON memoriesdb.memory_transfers TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_edges_visible ON memoriesdb.memory_edges TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY edge_types_read ON memoriesdb.edge_types TO memoriesdb_app, memoriesdb_reader;

-- the application: what exists and whose it is, not what it says
REVOKE SELECT ON memoriesdb.memories, memoriesdb.memory_revisions, memoriesdb.audit_log FROM memoriesdb_app;
GRANT SELECT (id, owner_id, content_hash, revision, embedding_model, embedded_at, embedded_hash,
              created_at, created_by, updated_at, updated_by) ON memoriesdb.memories TO memoriesdb_app;
GRANT SELECT (id, memory_id, revision, content_hash, content_changed, metadata_changed,
              created_at, created_by, updated_at, updated_by) ON memoriesdb.memory_revisions TO memoriesdb_app;
GRANT SELECT (id, created_at, created_by, db_role, application_name, txid, table_name, row_id, memory_id, op, row_hash)
  ON memoriesdb.audit_log TO memoriesdb_app;

-- the read functions run as the reader
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
    EXECUTE format('ALTER FUNCTION %s OWNER TO memoriesdb_reader', f);
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER', f);
  END LOOP;
END
$$;
-- the rankings return contents and write no access log entry: only the logged functions call them
REVOKE EXECUTE ON FUNCTION memoriesdb.vector_ranking(public.vector, integer, jsonb, real),
                           memoriesdb.text_ranking(text, integer, jsonb) FROM memoriesdb_app;
-- what the read functions call
GRANT EXECUTE ON FUNCTION memoriesdb.current_user_id(), memoriesdb.setting(text), memoriesdb.raise_not_found(text, uuid),
  memoriesdb.record_read(text, uuid[], bytea), memoriesdb.record_refusal(text, uuid),
  memoriesdb.query_fingerprint(text, public.vector, integer, jsonb, text),
  memoriesdb.check_query_vector(public.vector), memoriesdb.check_embedding(public.vector),
  memoriesdb.check_search_filter(jsonb), memoriesdb.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[]),
  memoriesdb.linked_ids(jsonb), memoriesdb.visible_memories(uuid), memoriesdb.visible_count(bigint),
  memoriesdb.fulltext_candidates(tsquery, integer, jsonb, uuid[])
  TO memoriesdb_reader;

COMMENT ON FUNCTION memoriesdb.vector_ranking(public.vector, integer, jsonb, real) IS
  'Internal: the body of search() (defined in search_fn as search), without the access log entry; search() and search_hybrid() call it, nothing else may. Runs as memoriesdb_reader under row-level security.';
COMMENT ON FUNCTION memoriesdb.text_ranking(text, integer, jsonb) IS
  'Internal: the body of search_text() (defined in search_text_fn as search_text), without the access log entry; search_text() and search_hybrid() call it, nothing else may. Runs as memoriesdb_reader under row-level security.';

COMMENT ON FUNCTION memoriesdb.recall(uuid) IS
  'One memory with its metadata and content hash, if the caller may see it (row-level security decides: it runs as memoriesdb_reader, which the same policies bind); MDB03 otherwise, the same for a missing id. One access log entry per call; a refusal is logged too.';
COMMENT ON FUNCTION memoriesdb.search(public.vector, integer, jsonb, real) IS
  'The k visible memories most similar to query (cosine similarity, 1 = same direction): the caller''s own and those shared with it by unexpired grants; forgotten ones never. Row-level security decides (it runs as memoriesdb_reader, which the same policies bind). filter: {"metadata": {...} (containment), "scope": "own"|"shared"|"all", "created_after": ts, "created_before": ts, "linked_to": memory id}; unknown keys are an error. MDB11 for a query vector of the wrong dimension, NaN or zero. Small callers get an exact scan, large ones the HNSW index with iterative scan (config search_exact_max). Each call is one access log entry with the ids returned and a hash of the query.';
COMMENT ON FUNCTION memoriesdb.search_text(text, integer, jsonb) IS
  'The k visible memories that best match query as text: pg_trgm word similarity (typos still match) plus the full-text rank (english stemming) when the words match. score is in [0, 2). Same visibility and filter as search(). Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';
COMMENT ON FUNCTION memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer) IS
  'Fuses search() and search_text() by reciprocal rank fusion: score = vector_weight / (rrf_k + vector rank) + text_weight / (rrf_k + text rank), so an exact phrase and a paraphrase both surface. Same visibility and filter. Row-level security decides (it runs as memoriesdb_reader). One access log entry per call.';

COMMIT;
