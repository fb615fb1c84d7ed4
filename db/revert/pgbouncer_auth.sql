-- Revert memoriesdb:pgbouncer_auth from pg
-- The lookup role is dropped only when no other database still uses it (roles are
-- cluster-wide); otherwise it is kept and a NOTICE says so.
BEGIN;

DROP SCHEMA memoriesdb_pgbouncer CASCADE;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_pgbouncer_auth') THEN
    BEGIN
      DROP OWNED BY memoriesdb_pgbouncer_auth;   -- this database only
      DROP ROLE memoriesdb_pgbouncer_auth;
    EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
      RAISE NOTICE 'role memoriesdb_pgbouncer_auth kept: another database still uses it';
    END;
  END IF;
END
$$;

COMMIT;
