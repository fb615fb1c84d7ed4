-- Deploy memoriesdb:api_graph to pg
-- Reworked after @v0.4.0 (released version: api_graph@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: api_graph@v0.4.0
-- requires: edge_type_links
-- Live functions of edges between memories: create_edge_type, link, unlink; reaches() for acyclic edge types.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework api_graph`.
-- api_graph@v0.1.0.sql and api_graph@v0.2.0.sql are released versions of this change (history, superseded by this file).
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb.create_edge_type(name text, description text DEFAULT '',
                                            directed boolean DEFAULT true, acyclic boolean DEFAULT false)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  new_id uuid;
  max_chars integer := memoriesdb.setting('max_edge_type_description_chars')::int;
BEGIN
  PERFORM memoriesdb_internal.require_user();
  IF name IS NULL OR name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid edge type name',
      DETAIL = format('name %L', name), HINT = 'lower-case letters, digits and _, starting with a letter, at most 63';
  END IF;
  IF directed IS NULL OR acyclic IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'directed and acyclic must be true or false';
  END IF;
  -- every tenant reads the description (memoriesdb.edge_types): bounded
  IF char_length(description) > max_chars THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB05', MESSAGE = 'edge type description too long',
      DETAIL = format('%s characters; the limit is %s', char_length(description), max_chars),
      HINT = 'describe the edge type briefly, or raise config max_edge_type_description_chars';
  END IF;
  IF EXISTS (SELECT 1 FROM memoriesdb.edge_types AS t WHERE t.name = create_edge_type.name) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'edge type already exists', DETAIL = format('name %L', name);
  END IF;
  INSERT INTO memoriesdb.edge_types AS t (name, description, directed, acyclic)
  VALUES (create_edge_type.name, coalesce(create_edge_type.description, ''), create_edge_type.directed, create_edge_type.acyclic)
  RETURNING t.id INTO new_id;
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.create_edge_type(text, text, boolean, boolean) IS
  'Adds a kind of link, available to every user. acyclic types refuse edges that would close a cycle. MDB12 for an invalid or taken name, MDB05 for a description longer than config max_edge_type_description_chars.';

-- v0.3.0's reaches() followed every edge, visible or not: link() refused (MDB08)
-- because of another tenant's hidden path, and so revealed it.
DROP FUNCTION IF EXISTS memoriesdb_internal.reaches(uuid, uuid, text, boolean);
CREATE OR REPLACE FUNCTION memoriesdb_internal.reaches(from_id uuid, to_id uuid, edge_type text, directed boolean, user_id uuid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- is to_id reachable from from_id over edges of this type between memories user_id
  -- may see? A memory user_id cannot see is never stepped on, so the answer (and the
  -- work done) depends on the caller's visible graph only.
  WITH RECURSIVE walk(node) AS (
    SELECT from_id
    UNION
    SELECT CASE WHEN e.source_id = w.node THEN e.target_id ELSE e.source_id END
      FROM walk AS w
      JOIN memoriesdb.memory_edges AS e
        ON e.edge_type = reaches.edge_type
       AND (e.source_id = w.node OR (NOT directed AND e.target_id = w.node))
     WHERE memoriesdb_internal.visible_to(CASE WHEN e.source_id = w.node THEN e.target_id ELSE e.source_id END, user_id)
  )
  SELECT EXISTS (SELECT 1 FROM walk WHERE node = to_id)
$$;
COMMENT ON FUNCTION memoriesdb_internal.reaches(uuid, uuid, text, boolean, uuid) IS
  'Internal: reachability for the acyclic check of link(), over the edges of the type between memories user_id may see (the caller''s visible graph): a hidden memory is never stepped on, so link() reveals nothing the caller could not find with neighbors(). UNION (not UNION ALL) makes it stop on cycles.';

CREATE OR REPLACE FUNCTION memoriesdb.link(source uuid, target uuid, edge_type text, weight real DEFAULT 1,
                                metadata jsonb DEFAULT '{}') RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  t memoriesdb.edge_types;
  edge_id uuid;
BEGIN
  IF memoriesdb_internal.access_level(source, uid) IS NULL THEN PERFORM memoriesdb_internal.raise_not_found('memory', source); END IF;
  IF memoriesdb_internal.access_level(target, uid) IS NULL THEN PERFORM memoriesdb_internal.raise_not_found('memory', target); END IF;
  SELECT * INTO t FROM memoriesdb.edge_types AS et WHERE et.name = link.edge_type;
  IF t.id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB07', MESSAGE = 'unknown edge type', DETAIL = format('edge_type %L', link.edge_type),
      HINT = 'memoriesdb.list_edge_types() lists them; add one with memoriesdb.create_edge_type()';
  END IF;
  IF source = target THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB09', MESSAGE = 'a memory cannot be linked to itself';
  END IF;
  IF weight IS NULL OR weight IN ('NaN'::real, 'Infinity'::real, '-Infinity'::real) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'weight must be a finite number';
  END IF;
  PERFORM memoriesdb_internal.check_metadata(metadata);
  PERFORM memoriesdb_internal.check_json_size(metadata, 'max_edge_metadata_bytes', 'edge metadata too large',
                                              'keep large data in a memory');
  -- one link at a time per type, so two concurrent links cannot close a cycle (or make
  -- the same undirected edge twice) together. The lock is the edge type's row, which
  -- no client may lock (that needs UPDATE on edge_types): an advisory lock key is
  -- public, and any login holding it would stall every tenant's links of the type.
  -- NO KEY UPDATE: the foreign key checks of memory_edges (KEY SHARE) do not wait on it.
  -- (read again under the lock: directed and acyclic as they are now)
  SELECT * INTO t FROM memoriesdb.edge_types AS et WHERE et.id = t.id FOR NO KEY UPDATE;
  -- and a write, not only a lock: under REPEATABLE READ / SERIALIZABLE a link that waited here for
  -- another of its type fails with 40001 (its snapshot predates the other's edge, which its checks
  -- below could not see); under READ COMMITTED the checks below read the committed edges
  INSERT INTO memoriesdb_internal.edge_type_links AS l (edge_type_id, links) VALUES (t.id, 1)
  ON CONFLICT (edge_type_id) DO UPDATE SET links = l.links + 1;
  IF EXISTS (SELECT 1 FROM memoriesdb.memory_edges AS e
              WHERE e.edge_type = t.name
                AND ((e.source_id = source AND e.target_id = target)
                  OR (NOT t.directed AND e.source_id = target AND e.target_id = source))) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB09', MESSAGE = 'these memories are already linked with this edge type';
  END IF;
  IF t.acyclic AND memoriesdb_internal.reaches(target, source, t.name, t.directed, uid) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB08', MESSAGE = format('edge would close a cycle of %s', t.name),
      HINT = format('%s is acyclic: the target already leads back to the source through memories you can see', t.name);
  END IF;
  INSERT INTO memoriesdb.memory_edges AS e (source_id, target_id, edge_type, weight, metadata)
  VALUES (source, target, t.name, weight, metadata)
  RETURNING e.id INTO edge_id;
  RETURN edge_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.link(uuid, uuid, text, real, jsonb) IS
  'Links two memories the caller can see (read access to both is enough) with a typed, weighted edge and returns its id. Refused: a memory not visible (MDB03), an unknown type (MDB07), a self-edge or duplicate (MDB09), an edge closing a cycle of an acyclic type through memories the caller can see (MDB08: edges among memories hidden from the caller are never followed, so the refusal reveals nothing), metadata that is not an object (MDB06) or over config max_edge_metadata_bytes (MDB05). Links of one edge type are made one at a time.';

CREATE OR REPLACE FUNCTION memoriesdb.unlink(edge_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  e memoriesdb.memory_edges;
BEGIN
  SELECT * INTO e FROM memoriesdb.memory_edges AS x WHERE x.id = edge_id FOR UPDATE;
  IF e.id IS NULL OR memoriesdb_internal.access_level(e.source_id, uid) IS NULL
     OR memoriesdb_internal.access_level(e.target_id, uid) IS NULL THEN
    PERFORM memoriesdb_internal.raise_not_found('edge', edge_id);
  END IF;
  IF e.created_by <> uid AND memoriesdb_internal.access_level(e.source_id, uid) <> 'owner' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB04', MESSAGE = 'only the edge''s creator or the source memory''s owner may unlink it';
  END IF;
  DELETE FROM memoriesdb.memory_edges AS x WHERE x.id = e.id;
END
$$;
COMMENT ON FUNCTION memoriesdb.unlink(uuid) IS 'Removes an edge: by whoever made it, or by the owner of its source memory. MDB03 when the edge is not visible.';

RESET ROLE;   -- created as the deploying superuser; ownership set below, in this transaction
-- The edge types and the visible edges: what a client used to SELECT from the
-- tables. Owned by memoriesdb_reader: row-level security decides (an edge is
-- visible when both its ends are).
CREATE OR REPLACE FUNCTION memoriesdb.list_edge_types()
RETURNS TABLE (name text, description text, directed boolean, acyclic boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
  SELECT t.name, t.description, t.directed, t.acyclic FROM memoriesdb.edge_types AS t ORDER BY t.name
$$;
COMMENT ON FUNCTION memoriesdb.list_edge_types() IS
  'Every edge type: name, description, directed, acyclic (not who made it).';
ALTER FUNCTION memoriesdb.list_edge_types() OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.list_edges(memory_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, source_id uuid, target_id uuid, edge_type text, weight real, metadata jsonb, mine boolean,
               created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
  SELECT e.id, e.source_id, e.target_id, e.edge_type, e.weight, e.metadata, e.created_by = memoriesdb.current_user_id(), e.created_at
    FROM memoriesdb.memory_edges AS e
   WHERE list_edges.memory_id IS NULL OR list_edges.memory_id IN (e.source_id, e.target_id)
   ORDER BY e.created_at, e.id
$$;
COMMENT ON FUNCTION memoriesdb.list_edges(uuid) IS
  'The edges between memories the context user may see (memory_id: only those touching it): ends, type, weight, edge metadata, mine = made by the caller. Row-level security decides.';
ALTER FUNCTION memoriesdb.list_edges(uuid) OWNER TO memoriesdb_reader;

COMMIT;
