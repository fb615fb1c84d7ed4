-- Deploy memoriesdb:roles to pg
-- Roles are cluster-wide: create each only when it is missing, so that a second
-- database on the same cluster deploys cleanly.
BEGIN;

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('memoriesdb_owner',   'NOLOGIN NOINHERIT'),
      ('memoriesdb_app',     'NOLOGIN'),
      ('memoriesdb_worker',  'NOLOGIN'),
      ('memoriesdb_auditor', 'NOLOGIN')) AS v(name, opts)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I %s', r.name, r.opts);
    END IF;
  END LOOP;
END
$$;

COMMENT ON ROLE memoriesdb_owner IS
  'MemoriesDB: owns every object of the ledger. NOLOGIN: no client ever acts as the owner.';
COMMENT ON ROLE memoriesdb_app IS
  'MemoriesDB: granted to application logins. Reads tables under row-level security, writes only through the API functions.';
COMMENT ON ROLE memoriesdb_worker IS
  'MemoriesDB: the runner. Executes the queue functions only; no table privileges.';
COMMENT ON ROLE memoriesdb_auditor IS
  'MemoriesDB: reads the whole audit log and verifies its hash chain.';

COMMIT;
