-- Deploy memoriesdb:row_stamps to pg
-- requires: row_stamps@v0.1.0
-- requires: internal_schema
-- Live functions of row stamps: stamp_row(): created_*/updated_* from the clock and the context, on every ledger table.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework row_stamps`.
-- row_stamps@v0.1.0.sql is the released version of this change (history, superseded by this file).
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.stamp_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  actor uuid := memoriesdb.current_user_id();
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.created_at := now();
    -- a user created with no context is its own creator
    IF actor IS NULL AND TG_TABLE_NAME = 'users' THEN
      -- plpgsql_check checks this branch against every table stamp_row() is on; only
      -- users has a uuid id (config and embedding_schedule have no id, the vindexing
      -- tables a bigint one), and the branch runs for users alone
      PERFORM 'PRAGMA:disable:check';
      NEW.created_by := NEW.id;
    ELSE
      NEW.created_by := actor;
    END IF;
  ELSE
    IF NEW.created_by IS DISTINCT FROM OLD.created_by OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
      RAISE EXCEPTION USING ERRCODE = 'MDB21', MESSAGE = format('%s.created_by and created_at can never change', TG_TABLE_NAME);
    END IF;
  END IF;
  NEW.updated_at := now();
  NEW.updated_by := actor;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.stamp_row() IS
  'Trigger (BEFORE INSERT OR UPDATE, every ledger table): sets created_at/created_by and updated_at/updated_by from the clock and the context, whatever the client sent; refuses any change of created_by or created_at. NULL updated_by means the system (a worker) made the change.';

COMMIT;
