-- Revert memoriesdb:access_log from pg
-- The access log goes with its entries; this database's logger role is dropped
-- unless a restored copy of this database elsewhere on the cluster still uses it.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb.raise_not_found(what text, id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'MDB03', MESSAGE = what || ' not found',
    DETAIL = format('%s %s', what, id),
    HINT = 'the id does not exist or is not visible to you';
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.require_user() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
BEGIN
  IF uid IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB01', MESSAGE = 'no user context',
      HINT = 'call memoriesdb.authenticate(api_key) or select set_config(''app.current_user'', <user uuid>, true) in this transaction';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = uid) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB02', MESSAGE = 'unknown user',
      DETAIL = format('app.current_user is %s, which is not a user', uid),
      HINT = 'create users with memoriesdb.create_user()';
  END IF;
  RETURN uid;
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.require_owner(memory_id uuid, uid uuid, verb text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  access text := memoriesdb.access_level(memory_id, uid);
BEGIN
  IF access IS NULL THEN PERFORM memoriesdb.raise_not_found('memory', memory_id); END IF;
  IF access <> 'owner' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB04', MESSAGE = format('only the owner may %s a memory', verb);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION memoriesdb.authenticate(api_key text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k memoriesdb.api_keys;
BEGIN
  SELECT * INTO k FROM memoriesdb.api_keys AS a WHERE a.key_hash = sha256(convert_to(coalesce(api_key, ''), 'UTF8'));
  IF k.id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'invalid api key',
      HINT = 'the key is wrong; keys are shown only once, by memoriesdb.create_api_key()';
  END IF;
  IF k.revoked_at IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'api key revoked',
      DETAIL = format('key %s… was revoked at %s', k.key_prefix, k.revoked_at);
  END IF;
  -- transaction-local: under PgBouncer transaction pooling nothing outlives the transaction
  PERFORM set_config('app.current_user', k.user_id::text, true);
  RETURN k.user_id;
END
$$;

DROP FUNCTION memoriesdb.flush_access_log();
DROP FUNCTION memoriesdb.access_refusals(interval);
DROP FUNCTION memoriesdb.access_history(uuid, timestamptz);
DROP FUNCTION memoriesdb.record_read(text, uuid[], bytea);
DROP FUNCTION memoriesdb.record_refusal(text, uuid);
DROP FUNCTION memoriesdb.calling_api_function();
DELETE FROM memoriesdb.config WHERE key = 'access_log_reads';
RESET ROLE;

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
DROP FUNCTION memoriesdb.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text);
DROP FUNCTION memoriesdb.await_access_log_writes();
DROP FUNCTION memoriesdb.setup_access_logger();
DROP FUNCTION memoriesdb.append_access_log(timestamptz, uuid, name, text, text, uuid[], bytea, text);
DROP TABLE memoriesdb.access_log_sink;
DROP TABLE memoriesdb.access_log;
DROP EXTENSION IF EXISTS dblink;
DROP SCHEMA IF EXISTS memoriesdb_dblink;

COMMIT;
