-- Deploy memoriesdb:roles to pg
-- Reworked after @v0.3.0 (released version: roles@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: roles@v0.1.0
-- The cluster roles of the ledger. Roles are cluster-wide: each is created only
-- when missing (a second database on the same cluster deploys cleanly), then its
-- attributes are set. Re-deployable: change it with `sqitch rework roles`.
-- What each role may do: privileges.sql. The per-database logger role of the
-- access log is made by memoriesdb.setup_access_logger() (access_log_fn.sql).
BEGIN;

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('memoriesdb_owner',   'NOLOGIN NOINHERIT BYPASSRLS'),
      ('memoriesdb_reader',  'NOLOGIN NOINHERIT'),
      ('memoriesdb_app',     'NOLOGIN'),
      ('memoriesdb_backend', 'NOLOGIN'),
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
  'MemoriesDB: granted to untrusted application logins (e.g. agents). A context only from authenticate(api_key): a bare app.current_user is nobody. Writes only through the API functions.';
COMMENT ON ROLE memoriesdb_backend IS
  'MemoriesDB: granted to the logins of a trusted application server that authenticates its users itself. Everything memoriesdb_app may do, and its bare set_config(''app.current_user'', <uuid>, true) is believed (an app login needs authenticate()); it may create users. Every audit row of such a context records the login that vouched for it.';
COMMENT ON ROLE memoriesdb_worker IS
  'MemoriesDB: the runner. Executes the queue functions only; no table privileges.';
COMMENT ON ROLE memoriesdb_auditor IS
  'MemoriesDB: reads the whole audit log and verifies its hash chain.';

COMMIT;
