-- Deploy memoriesdb:config to pg
-- requires: audit_log
-- requires: row_stamps
-- Deploy-time settings (sqitch variables) kept in a table the functions read.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.config (
  key         text PRIMARY KEY CHECK (key ~ '^[a-z_]+$'),
  value       jsonb NOT NULL,
  description text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  uuid,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  uuid
);
COMMENT ON TABLE memoriesdb.config IS
  'Ledger settings. Changed by an administrator with UPDATE as the table owner (or a superuser); every change is in the audit log. created_by/updated_by are NULL for settings made at deploy time.';
ALTER TABLE memoriesdb.config ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY config_owner ON memoriesdb.config TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.config FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.config FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row();

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('embedding_dim', to_jsonb(:'embedding_dim'::int), 'dimension of memories.embedding, fixed at deploy time (sqitch variable embedding_dim)'),
  ('max_content_bytes', to_jsonb(:'max_content_bytes'::int), 'largest memory content accepted, in bytes (UTF-8)'),
  ('max_attempts', '5', 'embedding attempts before a job is dead'),
  ('backoff_base_seconds', '5', 'first retry delay of a failed embedding job; doubles each attempt'),
  ('backoff_max_seconds', '3600', 'longest retry delay of a failed embedding job');

CREATE FUNCTION memoriesdb.setting(key text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT c.value FROM memoriesdb.config AS c WHERE c.key = setting.key $$;
COMMENT ON FUNCTION memoriesdb.setting(text) IS 'The value of one ledger setting (memoriesdb.config), or NULL.';
GRANT EXECUTE ON FUNCTION memoriesdb.setting(text) TO memoriesdb_app, memoriesdb_worker, memoriesdb_auditor;

COMMIT;
