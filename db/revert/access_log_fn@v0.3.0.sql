-- Revert memoriesdb:access_log_fn from pg
-- The access log's functions; this database's logger role is dropped
-- unless a restored copy of this database elsewhere on the cluster still uses it.
BEGIN;


DO $$
DECLARE
  logger name := (SELECT s.logger_role FROM memoriesdb.access_log_sink AS s);
BEGIN
  IF logger IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = logger) THEN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), logger);
    EXECUTE format('DROP OWNED BY %I', logger);   -- its privileges in this database
    BEGIN
      EXECUTE format('DROP ROLE %I', logger);
    EXCEPTION WHEN dependent_objects_still_exist THEN
      RAISE NOTICE 'role % kept: another database still uses it', logger;
    END;
  END IF;
END
$$;
DO $$
BEGIN
  PERFORM memoriesdb_dblink.dblink_disconnect('memoriesdb_access_log')
    WHERE 'memoriesdb_access_log' = ANY (memoriesdb_dblink.dblink_get_connections());
END
$$;
DROP FUNCTION memoriesdb.flush_access_log();
DROP FUNCTION memoriesdb.access_refusals(interval);
DROP FUNCTION memoriesdb.access_history(uuid, timestamptz);
DROP FUNCTION memoriesdb_internal.record_read(text, uuid[], bytea);
DROP FUNCTION memoriesdb_internal.record_refusal(text, uuid);
DROP FUNCTION memoriesdb_internal.calling_api_function();
DROP FUNCTION memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text);
DROP FUNCTION memoriesdb_internal.await_access_log_writes();
DROP FUNCTION memoriesdb.setup_access_logger();
DROP FUNCTION memoriesdb_internal.append_access_log(timestamptz, uuid, name, text, text, uuid[], bytea, text);
DELETE FROM memoriesdb.access_log_sink;

COMMIT;
