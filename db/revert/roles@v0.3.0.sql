-- Revert memoriesdb:roles from pg
-- Back to the roles of v0.1.0: memoriesdb_reader is dropped when no other
-- database still uses it (roles are cluster-wide); otherwise it is kept and a
-- NOTICE says so.
BEGIN;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_reader') THEN
    BEGIN
      DROP OWNED BY memoriesdb_reader;   -- this database only
      DROP ROLE memoriesdb_reader;
    EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
      RAISE NOTICE 'role memoriesdb_reader kept: another database still uses it';
    END;
  END IF;
END
$$;

COMMIT;
