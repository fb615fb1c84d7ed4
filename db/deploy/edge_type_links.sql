-- Deploy memoriesdb:edge_type_links to pg
-- requires: memory_edges
-- requires: internal_schema
-- Run once. One row per edge type that link() writes (a counter of its links) before its duplicate and
-- cycle checks. Locking the edge type's row (FOR NO KEY UPDATE) makes links of one type wait for each
-- other, but under REPEATABLE READ or SERIALIZABLE the waiting link's snapshot still predates the
-- other's edge: its cycle check could not see it, and two links could close a cycle together (that it
-- failed anyway, with 40001, was the audit seal's doing, and only when both were in one owner's chain).
-- An UPDATE of a row another transaction updated since the snapshot fails with 40001 at those levels,
-- whatever the chains: the waiting link retries. Under READ COMMITTED the update waits and the checks
-- after it read the committed edges. The function: api_graph.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb_internal.edge_type_links (
  edge_type_id uuid PRIMARY KEY REFERENCES memoriesdb.edge_types (id) ON DELETE CASCADE,
  links        bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE memoriesdb_internal.edge_type_links IS
  'Per edge type, how many times link() made an edge of it: written by every link() before its checks, so that two concurrent links of one type are serialised under every isolation level (the second fails with 40001 under REPEATABLE READ / SERIALIZABLE rather than check a snapshot without the first''s edge). Only link() writes it.';
ALTER TABLE memoriesdb_internal.edge_type_links ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY edge_type_links_owner ON memoriesdb_internal.edge_type_links TO memoriesdb_owner USING (true) WITH CHECK (true);

COMMIT;
