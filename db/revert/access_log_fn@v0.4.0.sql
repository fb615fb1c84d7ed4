-- Revert memoriesdb:access_log_fn from pg
-- Back to the functions of access_log_fn as released in v0.3.0 (access_log_fn@v0.3.0.sql).
BEGIN;
-- what v0.4 added
DROP FUNCTION memoriesdb_internal.log_read(text, uuid[], bytea);
DROP FUNCTION memoriesdb_internal.write_access_entry(text, uuid[], bytea, text, text);
DROP FUNCTION memoriesdb_internal.append_access_entry_autonomously(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea, text);
DROP FUNCTION memoriesdb_internal.append_access_entry(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea);
DROP FUNCTION memoriesdb_internal.access_burst_mac(uuid, name, name, text, text, timestamptz, integer, bigint, timestamptz, timestamptz);
DROP FUNCTION memoriesdb_internal.access_log_mac(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text);
DO $$
BEGIN
  EXECUTE format('ALTER ROLE %I RESET track_activities', (SELECT s.logger_role FROM memoriesdb.access_log_sink AS s));
END
$$;
SET LOCAL ROLE memoriesdb_owner;

-- What the logger role may do: append one entry.
-- PL/pgSQL, so that the logger's long-lived session plans the INSERT once.
CREATE OR REPLACE FUNCTION memoriesdb_internal.append_access_log(at timestamptz, actor uuid, db_role name, application_name text,
                                             function text, memory_ids uuid[], query_hash bytea, sqlstate text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO memoriesdb.access_log (at, actor, db_role, application_name, function, memory_ids, query_hash, sqlstate)
  VALUES (at, actor, db_role, coalesce(application_name, ''), function, coalesce(memory_ids, '{}'), query_hash, sqlstate);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.append_access_log(timestamptz, uuid, name, text, text, uuid[], bytea, text) IS
  'Internal: appends one access log entry. Executed by the API (as the owner) and, for autonomous writes, by this database''s logger role.';

-- The dblink drivers and setup_access_logger() belong to the deploying superuser:
-- dblink requires it on a server that trusts local logins (see access_log.sql).
RESET ROLE;

-- The autonomous writes. Owned by the deploying superuser (see the top of
-- file and access_log.sql); executable by memoriesdb_owner only, so only the API reaches them.
--
-- A write is sent over the session's connection in one of three ways:
--   durable    synchronous commit, waited for (refusals)
--   confirmed  asynchronous commit, waited for (reads in a read-only transaction)
--   pipelined  asynchronous commit, sent but not waited for (other reads): the
--              logger commits it while the caller goes on, and the next write
--              of the session (or await_access_log_writes()) collects the outcome
CREATE OR REPLACE FUNCTION memoriesdb_internal.await_access_log_writes() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n integer;
BEGIN
  IF NOT coalesce('memoriesdb_access_log' = ANY (memoriesdb_dblink.dblink_get_connections()), false) THEN
    RETURN true;
  END IF;
  LOOP   -- each result of what was sent, then an empty one: nothing more pending
    SELECT count(*)::integer INTO n FROM memoriesdb_dblink.dblink_get_result('memoriesdb_access_log') AS t(status text);
    EXIT WHEN n = 0;
  END LOOP;
  RETURN true;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'access log: an entry was not written: %', SQLERRM
    USING HINT = 'a superuser can run memoriesdb.setup_access_logger() to renew the logger''s login';
  PERFORM memoriesdb_dblink.dblink_disconnect('memoriesdb_access_log');
  RETURN false;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.await_access_log_writes() IS
  'Internal: waits for the outcome of this session''s pipelined access log writes; false (and a WARNING, and the connection dropped) if one failed.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.append_access_log_autonomously(at timestamptz, actor uuid, application_name text,
                                                          function text, memory_ids uuid[], query_hash bytea, sqlstate text,
                                                          mode text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  conn constant text := 'memoriesdb_access_log';
  s memoriesdb.access_log_sink;
  host text;
  port text;
  stmt text;
  connected boolean;
BEGIN
  -- every value as a literal; the time in UTC ISO form, whatever this session's DateStyle;
  -- the logger's session commits asynchronously, a durable write asks for a synchronous commit
  stmt := CASE WHEN mode = 'durable' THEN 'SET LOCAL synchronous_commit = on; ' ELSE '' END
       || format('EXECUTE memoriesdb_append(%L, %L, %L, %L, %L, %L, %L, %L)',
                 to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, session_user,
                 application_name, function, memory_ids, query_hash, sqlstate);
  FOR attempt IN 1..2 LOOP
    connected := coalesce(conn = ANY (memoriesdb_dblink.dblink_get_connections()), false);
    IF connected AND NOT memoriesdb_internal.await_access_log_writes() THEN
      connected := false;   -- an earlier write failed (and was reported); the connection is gone
    END IF;
    IF NOT connected THEN
      BEGIN
        SELECT * INTO STRICT s FROM memoriesdb.access_log_sink;
        IF pg_is_in_recovery() THEN   -- a standby cannot write: the primary it replicates
          host := substring(current_setting('primary_conninfo') FROM $r$host\s*=\s*'?([^'\s]+)$r$);
          port := substring(current_setting('primary_conninfo') FROM $r$port\s*=\s*'?([0-9]+)$r$);
        END IF;
        PERFORM memoriesdb_dblink.dblink_connect(conn, format(
          'host=%s port=%s dbname=%s user=%s password=%s application_name=memoriesdb_access_log connect_timeout=5 options=''-c synchronous_commit=off''',
          quote_literal(coalesce(host, CASE WHEN current_setting('listen_addresses') = ''
                                            THEN split_part(current_setting('unix_socket_directories'), ',', 1)
                                            ELSE '127.0.0.1' END)),
          quote_literal(coalesce(port, current_setting('port'))), quote_literal(current_database()),
          quote_literal(s.logger_role), quote_literal(s.password)));
        -- parsed and planned once per connection, not per entry
        PERFORM memoriesdb_dblink.dblink_exec(conn,
          'PREPARE memoriesdb_append(timestamptz, uuid, name, text, text, uuid[], bytea, text) AS '
          'SELECT memoriesdb_internal.append_access_log($1, $2, $3, $4, $5, $6, $7, $8)');
      EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'access log: cannot connect the logger: %', SQLERRM
          USING HINT = 'a superuser can run memoriesdb.setup_access_logger() to renew the logger''s login';
        IF coalesce(conn = ANY (memoriesdb_dblink.dblink_get_connections()), false) THEN
          PERFORM memoriesdb_dblink.dblink_disconnect(conn);
        END IF;
        RETURN false;
      END;
    END IF;
    IF memoriesdb_dblink.dblink_send_query(conn, stmt) = 1 THEN
      -- pipelined: collected by the next write; otherwise waited for now
      RETURN mode = 'pipelined' OR memoriesdb_internal.await_access_log_writes();
    END IF;
    PERFORM memoriesdb_dblink.dblink_disconnect(conn);   -- could not even send: a broken connection
  END LOOP;
  RAISE WARNING 'access log: the logger''s connection is broken';
  RETURN false;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text) IS
  'Internal: appends an access log entry in its own transaction (dblink, as the logger role, over a connection kept for the session; to the primary when run on a standby), so it survives the caller''s rollback. mode: durable (synchronous commit, waited for), confirmed (asynchronous commit, waited for) or pipelined (asynchronous commit, not waited for). false (and a WARNING) when it cannot. Owned by the deploying superuser because dblink requires it when the server trusts local logins.';

-- Creates (or re-creates) this database's logger role with a new password.
-- Run by the deploy; run it again after restoring a dump on another cluster.
CREATE OR REPLACE FUNCTION memoriesdb.setup_access_logger() RETURNS name
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  logger name := ('memoriesdb_log_' || left(md5(current_database()), 12))::name;
  secret text := encode(public.gen_random_bytes(24), 'hex');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = logger) THEN
    EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', logger);
  END IF;
  EXECUTE format('ALTER ROLE %I LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', logger, secret);
  EXECUTE format('COMMENT ON ROLE %I IS %L', logger,
                 format('MemoriesDB: appends to the access log of database %s, and nothing else.', current_database()));
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), logger);
  EXECUTE format('GRANT USAGE ON SCHEMA memoriesdb_internal TO %I', logger);
  EXECUTE format('GRANT EXECUTE ON FUNCTION memoriesdb_internal.append_access_log(timestamptz, uuid, name, text, text, uuid[], bytea, text) TO %I', logger);
  INSERT INTO memoriesdb.access_log_sink AS s (logger_role, password, hash_key)
  VALUES (logger, secret, public.gen_random_bytes(32))
  ON CONFLICT (singleton) DO UPDATE SET logger_role = excluded.logger_role, password = excluded.password;
  RETURN logger;
END
$$;
COMMENT ON FUNCTION memoriesdb.setup_access_logger() IS
  'Superuser only: creates this database''s logger role (memoriesdb_log_<hash of the database name>) with a new random password and stores it for the autonomous writes. Run by the deploy; run it again after restoring a dump on another cluster. The query-hash key is kept.';

-- A function the superuser creates is executable by PUBLIC until someone says
-- otherwise; these three never are, not even until privileges.sql runs.
REVOKE ALL ON FUNCTION memoriesdb_internal.await_access_log_writes(),
  memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text),
  memoriesdb.setup_access_logger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.await_access_log_writes(),
  memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text)
  TO memoriesdb_owner;

SET LOCAL ROLE memoriesdb_owner;

-- The API function a refusal happened in: the outermost memoriesdb function on
-- the call stack (recall, revise, share, ...), from the PL/pgSQL context.
CREATE OR REPLACE FUNCTION memoriesdb_internal.calling_api_function() RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stack text;
  fn text;
BEGIN
  GET DIAGNOSTICS stack = PG_CONTEXT;
  SELECT r.m[1] INTO fn FROM regexp_matches(stack, 'function memoriesdb\.([a-z_]+)\(', 'g') WITH ORDINALITY AS r(m, o)
   ORDER BY r.o DESC LIMIT 1;   -- the last frame is the outermost
  RETURN coalesce(fn, 'unknown');
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.calling_api_function() IS 'Internal: the name of the outermost memoriesdb function on the call stack, for access log entries of refusals.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.record_refusal(sqlstate text, memory_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fn text := memoriesdb_internal.calling_api_function();
  ids uuid[] := CASE WHEN memory_id IS NULL THEN '{}' ELSE ARRAY[memory_id] END;
  at timestamptz := clock_timestamp();
  actor uuid := memoriesdb.current_user_id();
  app text := current_setting('application_name');
BEGIN
  IF NOT memoriesdb_internal.append_access_log_autonomously(at, actor, app, fn, ids, NULL, sqlstate, 'durable') THEN
    -- no autonomous write: keep it at least in this transaction (a caller that
    -- catches the error and commits keeps it)
    PERFORM memoriesdb_internal.append_access_log(at, actor, session_user, app, fn, ids, NULL, sqlstate);
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.record_refusal(text, uuid) IS
  'Internal: records a refused attempt (sqlstate, the memory asked for, the context user, the API function from the call stack) in the access log so that it survives the rollback the error causes. The API calls it just before raising; a direct call records the caller''s own attempt.';

-- Granted reads. record_read() accepts only a call from the read function it
-- names (the frame below its own on the PL/pgSQL call stack; no client can
-- create a function in schema memoriesdb), so no client can write a read into
-- the log by calling it directly. The ids come from the caller's own answer,
-- which row-level security or the function's visibility checks produced.
CREATE OR REPLACE FUNCTION memoriesdb_internal.record_read(function text, memory_ids uuid[], query bytea DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stack text;
  mode jsonb;
  key bytea;
  qh bytea;
  read_only boolean := current_setting('transaction_read_only') = 'on';
BEGIN
  -- line 1: this function; line 2: the statement that called it, which must be
  -- exactly the one every read function uses (so it holds no line break a caller
  -- could use to fake a frame); line 3: the function it is in
  GET DIAGNOSTICS stack = PG_CONTEXT;
  IF function NOT IN ('recall', 'verify', 'provenance', 'search', 'search_text', 'search_hybrid', 'neighbors', 'path')
     OR split_part(stack, E'\n', 2) <> format('SQL statement "SELECT memoriesdb_internal.record_read(%L, log_ids, log_query)"', function)
     OR NOT starts_with(split_part(stack, E'\n', 3), format('PL/pgSQL function memoriesdb.%s(', function)) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'record_read() is called by the read functions only',
      DETAIL = format('function %L', function);
  END IF;
  SELECT c.value, s.hash_key INTO mode, key
    FROM memoriesdb.config AS c CROSS JOIN memoriesdb.access_log_sink AS s WHERE c.key = 'access_log_reads';
  qh := CASE WHEN query IS NOT NULL THEN public.hmac(query, key, 'sha256') END;
  IF read_only OR mode <> '"transactional"' THEN
    IF memoriesdb_internal.append_access_log_autonomously(clock_timestamp(), memoriesdb.current_user_id(),
         current_setting('application_name'), function, memory_ids, qh, NULL,
         CASE WHEN read_only THEN 'confirmed' ELSE 'pipelined' END) THEN
      RETURN;
    END IF;
    IF read_only THEN
      RAISE EXCEPTION USING ERRCODE = 'MDB22', MESSAGE = 'the access log cannot be written: read refused',
        HINT = 'a read-only transaction can log a read only autonomously; see the WARNING above for why that failed';
    END IF;
  END IF;
  -- transactional mode, or the autonomous write failed: in the caller's transaction
  PERFORM memoriesdb_internal.append_access_log(clock_timestamp(), memoriesdb.current_user_id(), session_user,
                                       current_setting('application_name'), function, memory_ids, qh, NULL);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.record_read(text, uuid[], bytea) IS
  'Internal, for the read functions only (it checks its caller): records one granted read (the function, the ids it returned, the keyed hash of the query) in the access log. By default autonomously with asynchronous commit (survives the caller''s rollback; the caller''s transaction stays read-only); with config access_log_reads = transactional, in the caller''s transaction. In a read-only transaction only autonomously: MDB22 if that fails, no unlogged read.';

CREATE OR REPLACE FUNCTION memoriesdb.access_history(memory_id uuid, since timestamptz DEFAULT NULL)
RETURNS TABLE (at timestamptz, outcome text, actor uuid, db_role name, application_name text,
               function text, sqlstate text, query_hash bytea)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  PERFORM memoriesdb_internal.require_owner(access_history.memory_id, uid, 'read the access history of');
  PERFORM memoriesdb_internal.await_access_log_writes();   -- this session's own reads are in it
  RETURN QUERY
    SELECT l.at, CASE WHEN l.sqlstate IS NULL THEN 'read' ELSE 'refused' END, l.actor, l.db_role,
           l.application_name, l.function, l.sqlstate, l.query_hash
      FROM memoriesdb.access_log AS l
     WHERE l.memory_ids @> ARRAY[access_history.memory_id]
       AND (since IS NULL OR l.at >= since)
     ORDER BY l.at DESC, l.id DESC;
END
$$;
COMMENT ON FUNCTION memoriesdb.access_history(uuid, timestamptz) IS
  'For the memory''s current owner: every read that returned it and every refused attempt on it (since: only those at or after), newest first; outcome read or refused, with the SQLSTATE of a refusal. Custody passes with the memory: after a transfer the new owner sees all of it and the former owner nothing. MDB03/MDB04 for anyone else (and that refusal is logged too).';

CREATE OR REPLACE FUNCTION memoriesdb.access_refusals(since interval DEFAULT '1 hour')
RETURNS TABLE (function text, sqlstate text, attempts bigint, actors bigint, no_context bigint, last_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT l.function, l.sqlstate, count(*), count(DISTINCT l.actor), count(*) FILTER (WHERE l.actor IS NULL), max(l.at)
    FROM memoriesdb.access_log AS l
   WHERE l.at >= now() - since AND l.sqlstate IS NOT NULL
   GROUP BY 1, 2
   ORDER BY 3 DESC, 1, 2
$$;
COMMENT ON FUNCTION memoriesdb.access_refusals(interval) IS
  'Refused attempts in the last interval, counted by function and SQLSTATE (how many, from how many distinct actors, how many with no context, the latest). Counts only, no ids: for the runner''s status and the auditor.';

CREATE OR REPLACE FUNCTION memoriesdb.flush_access_log() RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT memoriesdb_internal.await_access_log_writes() $$;
COMMENT ON FUNCTION memoriesdb.flush_access_log() IS
  'Waits until the access log entries of this session''s reads are committed (reads send them without waiting); false, with a WARNING, if one could not be written. access_history() does this itself.';

-- this database's logger role (a new password each time this change is deployed)
RESET ROLE;
DO $$ BEGIN PERFORM memoriesdb.setup_access_logger(); END $$;

COMMIT;
