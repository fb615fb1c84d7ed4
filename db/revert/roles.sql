-- Revert memoriesdb:roles from pg
-- Back to the functions of roles as released in v0.3.0 (roles@v0.3.0.sql).
BEGIN;

-- memoriesdb_backend is new after v0.3.0: dropped when no other database still uses it
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_backend') THEN
    BEGIN
      DROP OWNED BY memoriesdb_backend;   -- this database only
      DROP ROLE memoriesdb_backend;
    EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
      RAISE NOTICE 'role memoriesdb_backend kept: another database still uses it';
    END;
  END IF;
END
$$;

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('memoriesdb_owner',   'NOLOGIN NOINHERIT BYPASSRLS'),
      ('memoriesdb_reader',  'NOLOGIN NOINHERIT'),
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

-- The owner bypasses row-level security. Every policy for it is USING (true)
-- anyway (only the SECURITY DEFINER API and the triggers act as the owner, and
-- they check access themselves), but pg_dump/pg_restore run with row_security
-- off, and without BYPASSRLS the restore's REFRESH of memory_graph, which runs as
-- the owner, fails on the forced policies.
ALTER ROLE memoriesdb_owner NOLOGIN BYPASSRLS;
ALTER ROLE memoriesdb_reader NOLOGIN NOBYPASSRLS;
COMMENT ON ROLE memoriesdb_owner IS
  'MemoriesDB: owns every object of the ledger. NOLOGIN: no client ever acts as the owner. BYPASSRLS so that a dump restores (its policies are all USING (true)).';
COMMENT ON ROLE memoriesdb_reader IS
  'MemoriesDB: owns the read functions (recall, verify, provenance, search*). NOLOGIN, no BYPASSRLS: row-level security shows it what the context user may see. Nobody acts as it outside those functions.';
COMMENT ON ROLE memoriesdb_app IS
  'MemoriesDB: granted to application logins. Reads tables under row-level security, writes only through the API functions.';
COMMENT ON ROLE memoriesdb_worker IS
  'MemoriesDB: the runner. Executes the queue functions only; no table privileges.';
COMMENT ON ROLE memoriesdb_auditor IS
  'MemoriesDB: reads the whole audit log and verifies its hash chain.';

COMMIT;
