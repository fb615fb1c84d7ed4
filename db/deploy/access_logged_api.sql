-- Deploy memoriesdb:access_logged_api to pg
-- requires: access_log
-- Every read through the API writes one access log entry per call, with the
-- ids it returned; revise() records its read-only-grantee refusal (MDB04).
--
-- Each read function calls record_read() with exactly the same statement,
-- PERFORM memoriesdb.record_read('<its name>', log_ids, log_query); record_read()
-- checks that text and the frame below it on the call stack, so that nothing
-- but these functions can write a read into the log.
--
-- search() and search_text() become thin wrappers: their bodies (search_fn,
-- search_text_fn) are renamed vector_ranking() and text_ranking(), which
-- search_hybrid() fuses, so that a hybrid search is one entry, not three.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

ALTER FUNCTION memoriesdb.search(public.vector, integer, jsonb, real) RENAME TO vector_ranking;
COMMENT ON FUNCTION memoriesdb.vector_ranking(public.vector, integer, jsonb, real) IS
  'Internal: the body of search() (defined in search_fn as search), without the access log entry; search() and search_hybrid() call it. SECURITY INVOKER: row-level security decides.';
ALTER FUNCTION memoriesdb.search_text(text, integer, jsonb) RENAME TO text_ranking;
COMMENT ON FUNCTION memoriesdb.text_ranking(text, integer, jsonb) IS
  'Internal: the body of search_text() (defined in search_text_fn as search_text), without the access log entry; search_text() and search_hybrid() call it. SECURITY INVOKER.';

-- What a search's query hash covers: the query and every argument that shapes the answer.
CREATE FUNCTION memoriesdb.query_fingerprint(query_text text, query_vector public.vector, k integer, filter jsonb, extra text DEFAULT NULL)
RETURNS bytea
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.convert_to(pg_catalog.concat_ws(E'\x1f', k, filter, extra, query_text), 'UTF8')
         OPERATOR(pg_catalog.||) coalesce(public.vector_send(query_vector), ''::bytea)
$$;
COMMENT ON FUNCTION memoriesdb.query_fingerprint(text, public.vector, integer, jsonb, text) IS
  'Internal: the bytes record_read() hashes (with a key) into a search''s query_hash: text, vector, k, filter and the other arguments.';
GRANT EXECUTE ON FUNCTION memoriesdb.query_fingerprint(text, public.vector, integer, jsonb, text) TO memoriesdb_app;

CREATE FUNCTION memoriesdb.search(query public.vector, k integer DEFAULT 10, filter jsonb DEFAULT '{}',
                                  min_similarity real DEFAULT NULL)
RETURNS TABLE (id uuid, similarity real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
  log_ids uuid[] := '{}';
  log_query bytea := memoriesdb.query_fingerprint(NULL, query, k, filter, min_similarity::text);
BEGIN
  FOR id, similarity, content, metadata, owner_id, created_by, created_at IN
      SELECT * FROM memoriesdb.vector_ranking(query, k, filter, min_similarity) LOOP
    log_ids := log_ids || id;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb.record_read('search', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search(public.vector, integer, jsonb, real) IS
  'The k visible memories most similar to query (cosine similarity, 1 = same direction): the caller''s own and those shared with it by unexpired grants; forgotten ones never. SECURITY INVOKER: row-level security decides. filter: {"metadata": {...} (containment), "scope": "own"|"shared"|"all", "created_after": ts, "created_before": ts, "linked_to": memory id}; unknown keys are an error. MDB11 for a query vector of the wrong dimension, NaN or zero. Small callers get an exact scan, large ones the HNSW index with iterative scan (config search_exact_max). Each call is one access log entry with the ids returned and a hash of the query.';
GRANT EXECUTE ON FUNCTION memoriesdb.search(public.vector, integer, jsonb, real) TO memoriesdb_app;

CREATE FUNCTION memoriesdb.search_text(query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}')
RETURNS TABLE (id uuid, score real, content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
  log_ids uuid[] := '{}';
  log_query bytea := memoriesdb.query_fingerprint(query, NULL, k, filter);
BEGIN
  FOR id, score, content, metadata, owner_id, created_by, created_at IN
      SELECT * FROM memoriesdb.text_ranking(query, k, filter) LOOP
    log_ids := log_ids || id;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb.record_read('search_text', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search_text(text, integer, jsonb) IS
  'The k visible memories that best match query as text: pg_trgm word similarity (typos still match) plus the full-text rank (english stemming) when the words match. score is in [0, 2). Same visibility and filter as search(). SECURITY INVOKER. One access log entry per call.';
GRANT EXECUTE ON FUNCTION memoriesdb.search_text(text, integer, jsonb) TO memoriesdb_app;

CREATE OR REPLACE FUNCTION memoriesdb.search_hybrid(query text, query_vector public.vector, k integer DEFAULT 10,
                                                    filter jsonb DEFAULT '{}', vector_weight real DEFAULT 1,
                                                    text_weight real DEFAULT 1, rrf_k integer DEFAULT 60)
RETURNS TABLE (id uuid, score real, vector_rank integer, text_rank integer, similarity real,
               content text, metadata jsonb, owner_id uuid, created_by uuid, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
DECLARE
  depth integer;
  log_ids uuid[] := '{}';
  log_query bytea := memoriesdb.query_fingerprint(query, query_vector, k, filter, concat_ws(',', vector_weight, text_weight, rrf_k));
BEGIN
  IF k IS NULL OR k < 1 OR k > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'k must be between 1 and 1000';
  END IF;
  IF vector_weight IS NULL OR text_weight IS NULL OR vector_weight < 0 OR text_weight < 0
     OR vector_weight + text_weight = 0 OR rrf_k IS NULL OR rrf_k < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid fusion parameters',
      HINT = 'weights are >= 0 and not both 0; rrf_k >= 1 (60 is the usual choice)';
  END IF;
  depth := least(1000, greatest(4 * k, 40));   -- how deep each ranking is read before fusing
  -- each ranking carries its rows, so nothing is read twice
  FOR id, score, vector_rank, text_rank, similarity, content, metadata, owner_id, created_by, created_at IN
    WITH v AS (SELECT s.*, row_number() OVER (ORDER BY s.similarity DESC)::int AS r
                 FROM memoriesdb.vector_ranking(query_vector, depth, filter) AS s),
         t AS (SELECT s.*, row_number() OVER (ORDER BY s.score DESC)::int AS r
                 FROM memoriesdb.text_ranking(query, depth, filter) AS s)
    SELECT coalesce(v.id, t.id),
           (coalesce(vector_weight / (rrf_k + v.r), 0) + coalesce(text_weight / (rrf_k + t.r), 0))::real AS fused,
           v.r, t.r, v.similarity, coalesce(v.content, t.content), coalesce(v.metadata, t.metadata),
           coalesce(v.owner_id, t.owner_id), coalesce(v.created_by, t.created_by), coalesce(v.created_at, t.created_at)
      FROM v FULL JOIN t ON t.id = v.id
     ORDER BY fused DESC, 1
     LIMIT k
  LOOP
    log_ids := log_ids || id;
    RETURN NEXT;
  END LOOP;
  PERFORM memoriesdb.record_read('search_hybrid', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer) IS
  'Fuses search() and search_text() by reciprocal rank fusion: score = vector_weight / (rrf_k + vector rank) + text_weight / (rrf_k + text rank), so an exact phrase and a paraphrase both surface. Same visibility and filter. SECURITY INVOKER. One access log entry per call.';

CREATE OR REPLACE FUNCTION memoriesdb.neighbors(memory_id uuid, depth integer DEFAULT 1, edge_types text[] DEFAULT NULL,
                                     direction text DEFAULT 'both')
RETURNS TABLE (id uuid, hops integer, via_edge uuid, edge_type text, from_id uuid, weight real, content text, metadata jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
  max_rows integer := memoriesdb.setting('graph_max_rows')::int;
  nodes uuid[]; hop integer[]; edges uuid[]; types text[]; froms uuid[]; weights real[];
  log_ids uuid[];
  log_query bytea;   -- none: not a search
BEGIN
  PERFORM memoriesdb.check_traversal(depth, edge_types, direction);
  IF uid IS NULL OR NOT memoriesdb.visible_to(neighbors.memory_id, uid) THEN
    PERFORM memoriesdb.raise_not_found('memory', neighbors.memory_id);
  END IF;
  -- breadth first: each step reads the view, then checks the live edge and the
  -- neighbour's visibility; a path never revisits a memory, so cycles end; at
  -- most max_rows + 1 steps are ever produced (the recursion is lazy)
  WITH RECURSIVE walk(node, hops, via_edge, edge_type, from_id, weight, path) AS (
    SELECT neighbors.memory_id, 0, NULL::uuid, NULL::text, NULL::uuid, NULL::real, ARRAY[neighbors.memory_id]
    UNION ALL
    SELECT g.neighbor_id, w.hops + 1, g.edge_id, g.edge_type, w.node, g.weight, w.path || g.neighbor_id
      FROM walk AS w
      JOIN memoriesdb.memory_graph AS g ON g.node_id = w.node
     WHERE w.hops < neighbors.depth
       AND (neighbors.edge_types IS NULL OR g.edge_type = ANY (neighbors.edge_types))
       AND (NOT g.directed OR neighbors.direction = 'both' OR g.direction = neighbors.direction)
       AND NOT g.neighbor_id = ANY (w.path)
       AND EXISTS (SELECT 1 FROM memoriesdb.memory_edges AS e WHERE e.id = g.edge_id)
       AND memoriesdb.visible_to(g.neighbor_id, uid))
  SELECT array_agg(x.node), array_agg(x.hops), array_agg(x.via_edge), array_agg(x.edge_type), array_agg(x.from_id), array_agg(x.weight)
    INTO nodes, hop, edges, types, froms, weights
    FROM (SELECT * FROM walk WHERE walk.hops > 0 LIMIT max_rows + 1) AS x;
  IF cardinality(nodes) > max_rows THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB13', MESSAGE = 'traversal too large',
      DETAIL = format('more than %s steps', max_rows), HINT = 'lower depth, name edge_types, or raise config graph_max_rows';
  END IF;
  RETURN QUERY
    SELECT r.node, r.hops, r.via_edge, r.edge_type, r.from_id, r.weight, m.content, m.metadata
      FROM (SELECT DISTINCT ON (u.node) u.*   -- the first (shortest) way a memory was reached
              FROM unnest(nodes, hop, edges, types, froms, weights) AS u(node, hops, via_edge, edge_type, from_id, weight)
             ORDER BY u.node, u.hops, u.weight DESC) AS r
      JOIN memoriesdb.memories AS m ON m.id = r.node
     WHERE r.node <> neighbors.memory_id
     ORDER BY r.hops, r.weight DESC, r.node;
  -- one access log entry: the start (its visibility was checked) and every memory returned
  log_ids := ARRAY[neighbors.memory_id] || ARRAY(SELECT DISTINCT u.node FROM unnest(nodes) AS u(node) WHERE u.node <> neighbors.memory_id);
  PERFORM memoriesdb.record_read('neighbors', log_ids, log_query);
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.path(from_id uuid, to_id uuid, max_depth integer DEFAULT 6)
RETURNS TABLE (step integer, memory_id uuid, via_edge uuid, edge_type text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off   -- JIT compile time (tens of ms) would dwarf an interactive query
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
  max_rows integer := memoriesdb.setting('graph_max_rows')::int;
  steps integer := 0;
  r record;
  log_ids uuid[];
  log_query bytea;   -- none: not a search
BEGIN
  PERFORM memoriesdb.check_traversal(max_depth, NULL, 'both');
  IF uid IS NULL OR NOT memoriesdb.visible_to(from_id, uid) THEN PERFORM memoriesdb.raise_not_found('memory', from_id); END IF;
  IF NOT memoriesdb.visible_to(to_id, uid) THEN PERFORM memoriesdb.raise_not_found('memory', to_id); END IF;
  IF from_id = to_id THEN
    RETURN QUERY SELECT 0, from_id, NULL::uuid, NULL::text;
    log_ids := ARRAY[from_id];
    PERFORM memoriesdb.record_read('path', log_ids, log_query);
    RETURN;
  END IF;
  -- breadth first, so the first path that reaches to_id is a shortest one
  FOR r IN
    WITH RECURSIVE walk(node, hops, path, edges, types) AS (
      SELECT from_id, 0, ARRAY[from_id], ARRAY[]::uuid[], ARRAY[]::text[]
      UNION ALL
      SELECT g.neighbor_id, w.hops + 1, w.path || g.neighbor_id, w.edges || g.edge_id, w.types || g.edge_type
        FROM walk AS w
        JOIN memoriesdb.memory_graph AS g ON g.node_id = w.node
       WHERE w.hops < max_depth AND w.node <> to_id
         AND NOT g.neighbor_id = ANY (w.path)
         AND EXISTS (SELECT 1 FROM memoriesdb.memory_edges AS e WHERE e.id = g.edge_id)
         AND memoriesdb.visible_to(g.neighbor_id, uid))
    SELECT * FROM walk WHERE hops > 0
  LOOP
    steps := steps + 1;
    IF r.node = to_id THEN
      RETURN QUERY SELECT s.i - 1, r.path[s.i], CASE WHEN s.i > 1 THEN r.edges[s.i - 1] END, CASE WHEN s.i > 1 THEN r.types[s.i - 1] END
                     FROM generate_subscripts(r.path, 1) AS s(i) ORDER BY s.i;
      log_ids := r.path;   -- one access log entry: the memories on the path
      PERFORM memoriesdb.record_read('path', log_ids, log_query);
      RETURN;
    END IF;
    IF steps > max_rows THEN
      RAISE EXCEPTION USING ERRCODE = 'MDB13', MESSAGE = 'traversal too large',
        DETAIL = format('more than %s steps', max_rows), HINT = 'lower max_depth or raise config graph_max_rows';
    END IF;
  END LOOP;
  log_ids := ARRAY[from_id, to_id];   -- no path: both ends were still read
  PERFORM memoriesdb.record_read('path', log_ids, log_query);
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.recall(memory_id uuid)
RETURNS TABLE (id uuid, owner_id uuid, content text, metadata jsonb, content_hash bytea, revision integer,
               embedding_model text, embedded_at timestamptz,
               created_at timestamptz, created_by uuid, updated_at timestamptz, updated_by uuid)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  log_ids uuid[] := ARRAY[recall.memory_id];
  log_query bytea;   -- none: not a search
BEGIN
  RETURN QUERY
    SELECT m.id, m.owner_id, m.content, m.metadata, m.content_hash, m.revision, m.embedding_model, m.embedded_at,
           m.created_at, m.created_by, m.updated_at, m.updated_by
      FROM memoriesdb.memories AS m WHERE m.id = recall.memory_id;
  IF NOT FOUND THEN PERFORM memoriesdb.raise_not_found('memory', recall.memory_id); END IF;
  PERFORM memoriesdb.record_read('recall', log_ids, log_query);
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.verify(memory_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ok boolean;
  log_ids uuid[] := ARRAY[verify.memory_id];
  log_query bytea;   -- none: not a search
BEGIN
  SELECT m.content_hash = sha256(convert_to(m.content, 'UTF8')) INTO ok
    FROM memoriesdb.memories AS m WHERE m.id = verify.memory_id;
  IF NOT FOUND THEN PERFORM memoriesdb.raise_not_found('memory', verify.memory_id); END IF;
  PERFORM memoriesdb.record_read('verify', log_ids, log_query);
  RETURN ok;
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.provenance(memory_id uuid)
RETURNS TABLE (event text, at timestamptz, actor uuid, revision integer, content_hash bytea,
               from_owner uuid, to_owner uuid, note text)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  log_ids uuid[] := ARRAY[provenance.memory_id];
  log_query bytea;   -- none: not a search
BEGIN
  PERFORM 1 FROM memoriesdb.memories AS m WHERE m.id = provenance.memory_id;
  IF NOT FOUND THEN PERFORM memoriesdb.raise_not_found('memory', provenance.memory_id); END IF;
  RETURN QUERY
    SELECT e.event, e.at, e.actor, e.revision, e.content_hash, e.from_owner, e.to_owner, e.note
      FROM (SELECT CASE WHEN r.revision = 1 THEN 'created' ELSE 'revised' END AS event,
                   r.created_at AS at, r.created_by AS actor, r.revision, r.content_hash,
                   NULL::uuid AS from_owner, NULL::uuid AS to_owner, NULL::text AS note
              FROM memoriesdb.memory_revisions AS r WHERE r.memory_id = provenance.memory_id
            UNION ALL
            SELECT 'transferred', x.created_at, x.created_by, NULL, NULL, x.from_owner, x.to_owner, x.note
              FROM memoriesdb.memory_transfers AS x WHERE x.memory_id = provenance.memory_id) AS e
     ORDER BY e.at, e.event = 'transferred', e.revision;
  PERFORM memoriesdb.record_read('provenance', log_ids, log_query);
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.revise(memory_id uuid, content text DEFAULT NULL, metadata jsonb DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.require_user();
  m memoriesdb.memories;
  access text;
  new_hash bytea;
  new_meta jsonb;
BEGIN
  SELECT * INTO m FROM memoriesdb.memories AS t WHERE t.id = revise.memory_id FOR UPDATE;
  access := memoriesdb.access_level(revise.memory_id, uid);
  IF access IS NULL THEN PERFORM memoriesdb.raise_not_found('memory', revise.memory_id); END IF;
  IF access = 'read' THEN
    PERFORM memoriesdb.record_refusal('MDB04', revise.memory_id);
    RAISE EXCEPTION USING ERRCODE = 'MDB04', MESSAGE = 'not allowed to revise this memory',
      HINT = 'the owner can share it with permission ''write''';
  END IF;
  IF revise.content IS NULL AND revise.metadata IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'nothing to revise', HINT = 'pass content, metadata or both';
  END IF;
  IF revise.content IS NOT NULL THEN PERFORM memoriesdb.check_content(revise.content); END IF;
  IF revise.metadata IS NOT NULL THEN PERFORM memoriesdb.check_metadata(revise.metadata); END IF;
  new_hash := CASE WHEN revise.content IS NULL THEN m.content_hash ELSE sha256(convert_to(revise.content, 'UTF8')) END;
  new_meta := coalesce(revise.metadata, m.metadata);
  IF new_hash = m.content_hash AND new_meta = m.metadata THEN
    RETURN m.revision;   -- nothing changed: no new revision
  END IF;
  UPDATE memoriesdb.memories AS t
     SET content = coalesce(revise.content, t.content), content_hash = new_hash,
         metadata = new_meta, revision = t.revision + 1
   WHERE t.id = m.id;
  INSERT INTO memoriesdb.memory_revisions (memory_id, revision, content_hash, metadata, content_changed, metadata_changed)
  VALUES (m.id, m.revision + 1, new_hash, new_meta, new_hash <> m.content_hash, new_meta <> m.metadata);
  RETURN m.revision + 1;
END
$$;

COMMENT ON FUNCTION memoriesdb.recall(uuid) IS
  'One memory with its metadata and content hash, if the caller may see it (row-level security decides: SECURITY INVOKER); MDB03 otherwise, the same for a missing id. One access log entry per call; a refusal is logged too.';
COMMENT ON FUNCTION memoriesdb.verify(uuid) IS
  'Recomputes the SHA-256 of a visible memory''s content and compares it with the stored content_hash: false means the content was changed behind the API. One access log entry per call; a refusal is logged too.';
COMMENT ON FUNCTION memoriesdb.provenance(uuid) IS
  'The chain of custody of a visible memory, oldest first: its creation (creator, hash), every revision (who, revision number, new hash) and every transfer (from, to, by, note). One access log entry per call; a refusal is logged too.';
COMMENT ON FUNCTION memoriesdb.neighbors(uuid, integer, text[], text) IS
  'Memories linked to memory_id within depth hops (edge_types: only these; direction: out = follow source to target, in = the reverse, both; undirected types always both ways), each once with the edge it was first reached by. Only visible memories, and only through visible memories. Bounded: config graph_max_depth, graph_max_rows (MDB13 past them). Reads memory_graph, so an edge made since the last refresh may be missing; a removed edge or a memory no longer visible never appears. One access log entry per call (the start and every memory returned); a refusal is logged too.';
COMMENT ON FUNCTION memoriesdb.path(uuid, uuid, integer) IS
  'A shortest chain of links from from_id to to_id (edges followed either way), through visible memories only: step 0 is from_id, each later step names the edge taken. No rows when there is none within max_depth. Bounded like neighbors(); reads memory_graph (see neighbors()). One access log entry per call (the memories on the path, or both ends); a refusal is logged too.';

COMMIT;
