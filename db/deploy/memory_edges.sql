-- Deploy memoriesdb:memory_edges to pg
-- requires: memory_grants
-- Typed, weighted links between memories, and the user-extensible edge types.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.edge_types (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  description text NOT NULL DEFAULT '',
  directed    boolean NOT NULL DEFAULT true,
  acyclic     boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL,
  created_by  uuid,
  updated_at  timestamptz NOT NULL,
  updated_by  uuid
);
COMMENT ON TABLE memoriesdb.edge_types IS
  'Kinds of links between memories, shared by all users, extended with create_edge_type(). directed: the edge has a direction (source to target). acyclic: link() refuses an edge that would close a cycle of this type. created_by is NULL for the types seeded at deploy time.';

CREATE TABLE memoriesdb.memory_edges (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  source_id  uuid NOT NULL REFERENCES memoriesdb.memories ON DELETE CASCADE,
  target_id  uuid NOT NULL REFERENCES memoriesdb.memories ON DELETE CASCADE,
  edge_type  text NOT NULL REFERENCES memoriesdb.edge_types (name),
  weight     real NOT NULL DEFAULT 1 CHECK (weight NOT IN ('NaN', 'Infinity', '-Infinity')),  -- NaN = NaN in PostgreSQL
  metadata   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz NOT NULL,
  created_by uuid NOT NULL,
  updated_at timestamptz NOT NULL,
  updated_by uuid,
  CHECK (source_id <> target_id),
  UNIQUE (source_id, target_id, edge_type)
);
COMMENT ON TABLE memoriesdb.memory_edges IS
  'Links made by link(): visible to a user only when both ends are visible to that user. Removed by unlink() or with either memory.';
CREATE INDEX memory_edges_target ON memoriesdb.memory_edges (target_id, edge_type);
CREATE INDEX memory_edges_type_source ON memoriesdb.memory_edges (edge_type, source_id);

ALTER TABLE memoriesdb.edge_types ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE memoriesdb.memory_edges ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY edge_types_owner ON memoriesdb.edge_types TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY edge_types_read ON memoriesdb.edge_types FOR SELECT TO memoriesdb_app USING (true);
CREATE POLICY memory_edges_owner ON memoriesdb.memory_edges TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY memory_edges_visible ON memoriesdb.memory_edges FOR SELECT TO memoriesdb_app
  USING (source_id IN (SELECT m.id FROM memoriesdb.memories AS m)
         AND target_id IN (SELECT m.id FROM memoriesdb.memories AS m));
GRANT SELECT ON memoriesdb.edge_types, memoriesdb.memory_edges TO memoriesdb_app;

CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.edge_types FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.edge_types FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row();
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_edges FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.memory_edges FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row('source_id');

INSERT INTO memoriesdb.edge_types (name, description, directed, acyclic) VALUES
  ('derived_from', 'source was derived from target (summary, extraction, inference)', true, true),
  ('related_to',   'the two memories are about the same thing', false, false),
  ('contradicts',  'the two memories disagree', false, false),
  ('supersedes',   'source replaces target, which is outdated', true, true),
  ('part_of',      'source is a part of target', true, true);

COMMIT;
