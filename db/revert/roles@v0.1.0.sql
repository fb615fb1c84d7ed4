-- Revert memoriesdb:roles from pg
-- A role is dropped only when no other database still uses it (roles are
-- cluster-wide); otherwise it is kept and a NOTICE says so.
BEGIN;

DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor', 'memoriesdb_owner']
  LOOP
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r);
    BEGIN
      EXECUTE format('DROP OWNED BY %I', r);   -- this database only
      EXECUTE format('DROP ROLE %I', r);
    EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
      RAISE NOTICE 'role % kept: another database still uses it', r;
    END;
  END LOOP;
END
$$;

COMMIT;
