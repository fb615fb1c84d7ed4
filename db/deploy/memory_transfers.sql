-- Deploy memoriesdb:memory_transfers to pg
-- requires: memories
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.memory_transfers (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  memory_id   uuid NOT NULL REFERENCES memoriesdb.memories ON DELETE CASCADE,
  from_owner  uuid NOT NULL REFERENCES memoriesdb.users,
  to_owner    uuid NOT NULL REFERENCES memoriesdb.users,
  note        text CHECK (length(note) <= 2000),
  created_at  timestamptz NOT NULL,
  created_by  uuid NOT NULL,
  updated_at  timestamptz NOT NULL,
  updated_by  uuid,
  CHECK (from_owner <> to_owner)
);
COMMENT ON TABLE memoriesdb.memory_transfers IS
  'Chain of custody: every change of a memory''s owner by transfer(), from, to, by (created_by) and when (created_at). Visible to whoever may see the memory now; a former owner sees nothing of it.';
CREATE INDEX memory_transfers_memory ON memoriesdb.memory_transfers (memory_id, created_at);

ALTER TABLE memoriesdb.memory_transfers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_transfers_owner ON memoriesdb.memory_transfers TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY memory_transfers_visible ON memoriesdb.memory_transfers FOR SELECT TO memoriesdb_app
  USING (memory_id IN (SELECT m.id FROM memoriesdb.memories AS m));
GRANT SELECT ON memoriesdb.memory_transfers TO memoriesdb_app;

CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_transfers FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.memory_transfers FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row('memory_id');

COMMIT;
