-- Deploy memoriesdb:idempotency_keys to pg
-- requires: memories
-- requires: reader_policies
-- Run once. Which memory a client's idempotency key stored, per owner, so a retried or repeated call
-- of remember_once() (api_memories.sql) stores nothing twice: `memoriesdb ingest` run twice on the
-- same file, or again after Ctrl-C. Its triggers (stamp, audit): triggers.sql; its grants: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.idempotency_keys (
  owner_id    uuid NOT NULL REFERENCES memoriesdb.users,
  key         text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 200),
  memory_id   uuid REFERENCES memoriesdb.memories ON DELETE SET NULL,
  created_at  timestamptz NOT NULL,
  created_by  uuid NOT NULL,
  updated_at  timestamptz NOT NULL,
  updated_by  uuid,
  PRIMARY KEY (owner_id, key)
);
COMMENT ON TABLE memoriesdb.idempotency_keys IS
  'One row per idempotency key a user has used with remember_once(): (owner, key) -> the memory that call stored. Kept when the memory is forgotten (memory_id NULL), so a re-run does not bring a forgotten memory back. Written only by remember_once(); each user reads their own keys.';
COMMENT ON COLUMN memoriesdb.idempotency_keys.owner_id IS 'The user who called remember_once() (the memory''s first owner; a transfer does not move the key).';
COMMENT ON COLUMN memoriesdb.idempotency_keys.key IS 'Chosen by the client, 1 to 200 characters; `memoriesdb ingest` uses a SHA-256 of (source, line number, line bytes).';
COMMENT ON COLUMN memoriesdb.idempotency_keys.memory_id IS 'The memory stored under this key; NULL once it has been forgotten.';
CREATE INDEX idempotency_keys_memory ON memoriesdb.idempotency_keys (memory_id);

ALTER TABLE memoriesdb.idempotency_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_owner ON memoriesdb.idempotency_keys TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY idempotency_keys_visible ON memoriesdb.idempotency_keys FOR SELECT TO memoriesdb_app
  USING (owner_id = (SELECT memoriesdb.current_user_id()));

COMMIT;
