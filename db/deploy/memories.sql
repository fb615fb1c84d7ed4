-- Deploy memoriesdb:memories to pg
-- requires: users
-- Memories, their revision history, and who may read them (owners here; the
-- memory_grants change widens the policy to grantees).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.memories (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id        uuid NOT NULL REFERENCES memoriesdb.users,
  content         text NOT NULL,
  metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  content_hash    bytea NOT NULL CHECK (octet_length(content_hash) = 32),
  revision        integer NOT NULL DEFAULT 1 CHECK (revision > 0),
  embedding       public.vector(:embedding_dim),
  embedding_model text,
  embedded_at     timestamptz,
  embedded_hash   bytea,
  created_at      timestamptz NOT NULL,
  created_by      uuid NOT NULL,
  updated_at      timestamptz NOT NULL,
  updated_by      uuid,
  CHECK ((embedding IS NULL) = (embedding_model IS NULL))
);
COMMENT ON TABLE memoriesdb.memories IS
  'Memories. Read under row-level security (the owner, and holders of unexpired grants); written only through remember(), revise(), forget() and transfer(). created_by is the creator forever; owner_id changes only by transfer().';
COMMENT ON COLUMN memoriesdb.memories.content_hash IS 'SHA-256 of content (UTF-8), computed by the API on every write; verify() recomputes it to catch edits made behind the API.';
COMMENT ON COLUMN memoriesdb.memories.embedding IS 'L2-normalised embedding of content, stored by the embedding worker; its dimension is fixed at deploy time (sqitch variable embedding_dim).';
COMMENT ON COLUMN memoriesdb.memories.embedded_hash IS 'content_hash of the content the embedding was computed from.';
CREATE INDEX memories_owner_id ON memoriesdb.memories (owner_id);

CREATE TABLE memoriesdb.memory_revisions (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  memory_id    uuid NOT NULL REFERENCES memoriesdb.memories ON DELETE CASCADE,
  revision     integer NOT NULL CHECK (revision > 0),
  content_hash bytea NOT NULL,
  metadata     jsonb NOT NULL,
  content_changed  boolean NOT NULL,
  metadata_changed boolean NOT NULL,
  created_at   timestamptz NOT NULL,
  created_by   uuid NOT NULL,
  updated_at   timestamptz NOT NULL,
  updated_by   uuid,
  UNIQUE (memory_id, revision)
);
COMMENT ON TABLE memoriesdb.memory_revisions IS
  'One row per revision of a memory (revision 1 is its creation): who, when, the content hash and metadata. The old content itself is in the audit log.';

ALTER TABLE memoriesdb.memories ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE memoriesdb.memory_revisions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY memories_owner ON memoriesdb.memories TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY memories_visible ON memoriesdb.memories FOR SELECT TO memoriesdb_app
  USING (owner_id = (SELECT memoriesdb.current_user_id()));
CREATE POLICY memory_revisions_owner ON memoriesdb.memory_revisions TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY memory_revisions_visible ON memoriesdb.memory_revisions FOR SELECT TO memoriesdb_app
  USING (memory_id IN (SELECT m.id FROM memoriesdb.memories AS m));  -- m is itself under RLS
GRANT SELECT ON memoriesdb.memories, memoriesdb.memory_revisions TO memoriesdb_app;

-- owners read the audit rows of the memories they own now
CREATE POLICY audit_log_memory_owner ON memoriesdb.audit_log FOR SELECT TO memoriesdb_app
  USING (memory_id IN (SELECT m.id FROM memoriesdb.memories AS m WHERE m.owner_id = (SELECT memoriesdb.current_user_id())));
GRANT SELECT ON memoriesdb.audit_log TO memoriesdb_app;

CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row('id');
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_revisions FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.memory_revisions FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row('memory_id');

COMMIT;
