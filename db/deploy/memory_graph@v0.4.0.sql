-- Deploy memoriesdb:memory_graph to pg
-- Reworked after @v0.3.0 (released version: memory_graph@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: memory_graph@v0.2.0
-- requires: internal_schema
-- Live functions of graph traversal and memory_graph refresh: neighbors(), path() (logged reads), run_vindexing().
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework memory_graph`.
-- Run once, by memory_graph@v0.1.0.sql: materialized view memory_graph and its indexes, graph settings. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.visible_to(memory_id uuid, user_id uuid) RETURNS boolean
LANGUAGE sql STABLE
AS $$   -- no SET clause, so it can be inlined into the traversal queries
  SELECT EXISTS (SELECT 1 FROM memoriesdb.memories AS m WHERE m.id = memory_id
                    AND (m.owner_id = user_id
                         OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                                     WHERE g.memory_id = m.id AND g.grantee_id = user_id
                                       AND (g.expires_at IS NULL OR g.expires_at OPERATOR(pg_catalog.>) pg_catalog.statement_timestamp()))))
$$;
COMMENT ON FUNCTION memoriesdb_internal.visible_to(uuid, uuid) IS 'Internal: may user_id see the memory now? The memories_visible policy, for SECURITY DEFINER readers.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_traversal(depth integer, edge_types text[], direction text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  max_depth integer := memoriesdb.setting('graph_max_depth')::int;
  unknown text[];
BEGIN
  IF depth IS NULL OR depth < 1 OR depth > max_depth THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB13', MESSAGE = format('depth must be between 1 and %s', max_depth),
      HINT = 'config graph_max_depth bounds every traversal';
  END IF;
  IF direction IS NULL OR direction NOT IN ('out', 'in', 'both') THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'direction must be out, in or both';
  END IF;
  SELECT array_agg(t ORDER BY t) INTO unknown FROM unnest(edge_types) AS t
   WHERE NOT EXISTS (SELECT 1 FROM memoriesdb.edge_types AS et WHERE et.name = t);
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB07', MESSAGE = 'unknown edge type', DETAIL = array_to_string(unknown, ', ');
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_traversal(integer, text[], text) IS
  'Internal: validates neighbors() arguments: depth within config graph_max_depth (MDB13), direction out|in|both, known edge types (MDB07).';

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
  PERFORM memoriesdb_internal.check_traversal(depth, edge_types, direction);
  IF uid IS NULL OR NOT memoriesdb_internal.visible_to(neighbors.memory_id, uid) THEN
    PERFORM memoriesdb_internal.raise_not_found('memory', neighbors.memory_id);
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
       AND memoriesdb_internal.visible_to(g.neighbor_id, uid))
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
  PERFORM memoriesdb_internal.record_read('neighbors', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.neighbors(uuid, integer, text[], text) IS
  'Memories linked to memory_id within depth hops (edge_types: only these; direction: out = follow source to target, in = the reverse, both; undirected types always both ways), each once with the edge it was first reached by. Only visible memories, and only through visible memories. Bounded: config graph_max_depth, graph_max_rows (MDB13 past them). Reads memory_graph, so an edge made since the last refresh may be missing; a removed edge or a memory no longer visible never appears. One access log entry per call (the start and every memory returned); a refusal is logged too.';

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
  PERFORM memoriesdb_internal.check_traversal(max_depth, NULL, 'both');
  IF uid IS NULL OR NOT memoriesdb_internal.visible_to(from_id, uid) THEN PERFORM memoriesdb_internal.raise_not_found('memory', from_id); END IF;
  IF NOT memoriesdb_internal.visible_to(to_id, uid) THEN PERFORM memoriesdb_internal.raise_not_found('memory', to_id); END IF;
  IF from_id = to_id THEN
    RETURN QUERY SELECT 0, from_id, NULL::uuid, NULL::text;
    log_ids := ARRAY[from_id];
    PERFORM memoriesdb_internal.record_read('path', log_ids, log_query);
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
         AND memoriesdb_internal.visible_to(g.neighbor_id, uid))
    SELECT * FROM walk WHERE hops > 0
  LOOP
    steps := steps + 1;
    IF r.node = to_id THEN
      RETURN QUERY SELECT s.i - 1, r.path[s.i], CASE WHEN s.i > 1 THEN r.edges[s.i - 1] END, CASE WHEN s.i > 1 THEN r.types[s.i - 1] END
                     FROM generate_subscripts(r.path, 1) AS s(i) ORDER BY s.i;
      log_ids := r.path;   -- one access log entry: the memories on the path
      PERFORM memoriesdb_internal.record_read('path', log_ids, log_query);
      RETURN;
    END IF;
    IF steps > max_rows THEN
      RAISE EXCEPTION USING ERRCODE = 'MDB13', MESSAGE = 'traversal too large',
        DETAIL = format('more than %s steps', max_rows), HINT = 'lower max_depth or raise config graph_max_rows';
    END IF;
  END LOOP;
  log_ids := ARRAY[from_id, to_id];   -- no path: both ends were still read
  PERFORM memoriesdb_internal.record_read('path', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.path(uuid, uuid, integer) IS
  'A shortest chain of links from from_id to to_id (edges followed either way), through visible memories only: step 0 is from_id, each later step names the edge taken. No rows when there is none within max_depth. Bounded like neighbors(); reads memory_graph (see neighbors()). One access log entry per call (the memories on the path, or both ends); a refusal is logged too.';

CREATE OR REPLACE FUNCTION memoriesdb.run_vindexing(worker text DEFAULT NULL)
RETURNS TABLE (refreshed boolean, rows_coalesced integer, duration_ms double precision)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  started timestamptz := clock_timestamp();
  n integer;
BEGIN
  -- one refresher at a time across all runners; the others return at once
  BEGIN   -- (a table lock no client may take: advisory lock keys are public)
    LOCK TABLE memoriesdb_internal.vindexing_lock IN EXCLUSIVE MODE NOWAIT;
  EXCEPTION WHEN lock_not_available THEN
    RETURN QUERY SELECT false, 0, 0::float8;
    RETURN;
  END;
  WITH drained AS (DELETE FROM memoriesdb.vindexing_schedule RETURNING 1) SELECT count(*)::integer INTO n FROM drained;
  IF n = 0 THEN
    RETURN QUERY SELECT false, 0, 0::float8;
    RETURN;
  END IF;
  REFRESH MATERIALIZED VIEW CONCURRENTLY memoriesdb.memory_graph;
  INSERT INTO memoriesdb.vindexing_runs (started_at, finished_at, rows_coalesced, worker)
  VALUES (started, clock_timestamp(), n, worker);
  RETURN QUERY SELECT true, n, (extract(epoch FROM clock_timestamp() - started) * 1000)::float8;
END
$$;
COMMENT ON FUNCTION memoriesdb.run_vindexing(text) IS
  'Worker: drains every pending vindexing_schedule row into one REFRESH MATERIALIZED VIEW CONCURRENTLY memory_graph and records the run. Only one runs at a time (a lock on memoriesdb_internal.vindexing_lock, which no client can take); a concurrent call returns refreshed = false at once.';

COMMIT;
