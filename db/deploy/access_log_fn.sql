-- Deploy memoriesdb:access_log_fn to pg
-- Reworked after @v0.4.0 (released version: access_log_fn@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: access_log
-- requires: internal_schema
-- requires: access_log_v4 (placed before this rework in the plan)
-- Live functions of the access log: Writing entries (autonomously, over the loggers dblink connection, or in the callers transaction),
-- record_read()/record_refusal() for the API, access_history(), access_refusals(), flush_access_log().
-- Design: see the header of access_log.sql (tables) and of access_log_v4.sql (v0.4: every entry
-- authenticated by a MAC the logger cannot make; refusal bursts counted). Since v0.4 every write
-- is waited for, and a read or refusal whose entry cannot be written is refused (MDB22 / MDB23):
-- the log fails closed.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework access_log_fn`.
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- The form every entry is authenticated in: its fields as a JSON array (unambiguous
-- boundaries, NULLs kept, the time in UTC whatever the session's settings), under
-- HMAC-SHA-256 with the owner's key. access_log_v4.sql signs older entries the same way.
CREATE OR REPLACE FUNCTION memoriesdb_internal.access_log_mac(entry_id uuid, at timestamptz, actor uuid, db_role name, vouched_by name,
                                                application_name text, function text, memory_ids uuid[], query_hash bytea,
                                                sqlstate text)
RETURNS bytea
LANGUAGE plpgsql STABLE
-- PL/pgSQL with no SET clause (every name qualified), so that a session plans its statement once: as an SQL function
-- with a SET clause it was parsed and planned at every call (0.28 ms of every search on the caller's side, and as much
-- in the logger's, which checks the MAC; measured with track_functions on bench/search.py's database)
AS $$
BEGIN
  RETURN public.hmac(pg_catalog.convert_to(pg_catalog.jsonb_build_array(entry_id,
                       pg_catalog.to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                       actor, db_role, vouched_by, application_name, function, memory_ids,
                       pg_catalog.encode(query_hash, 'hex'), sqlstate)::pg_catalog.text, 'UTF8'),
                     (SELECT s.mac_key FROM memoriesdb.access_log_sink AS s), 'sha256');
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.access_log_mac(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text) IS
  'Internal: the MAC an access log entry must carry: HMAC-SHA-256, with access_log_sink.mac_key (readable by the owner only), of the entry''s fields. Computed by the session that makes the entry, checked by append_access_entry() and by the readers of the log.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.access_burst_mac(actor uuid, db_role name, vouched_by name, function text, sqlstate text,
                                                  bucket timestamptz, logged integer, aggregated bigint,
                                                  first_at timestamptz, last_at timestamptz)
RETURNS bytea
LANGUAGE plpgsql STABLE   -- planned once per session, as access_log_mac()
AS $$
BEGIN
  RETURN public.hmac(pg_catalog.convert_to(pg_catalog.jsonb_build_array('burst', actor, db_role, vouched_by, function, sqlstate,
                       pg_catalog.to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), logged, aggregated,
                       pg_catalog.to_char(first_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                       pg_catalog.to_char(last_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))::pg_catalog.text, 'UTF8'),
                     (SELECT s.mac_key FROM memoriesdb.access_log_sink AS s), 'sha256');
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.access_burst_mac(uuid, name, name, text, text, timestamptz, integer, bigint, timestamptz, timestamptz) IS
  'Internal: the MAC a row of access_refusal_bursts must carry (same key as access_log_mac()).';

-- What the logger role may do: append one authenticated entry. Anybody who can
-- log in as the logger (a trust-auth server lets anybody) reaches this function,
-- so it trusts nothing it is given: the MAC must verify (it was computed with a
-- key the logger cannot read), entry_id must be new (no replay).
-- PL/pgSQL, so that the logger's long-lived session plans its statements once.
CREATE OR REPLACE FUNCTION memoriesdb_internal.append_access_entry(entry_id uuid, at timestamptz, actor uuid, db_role name,
                                                     vouched_by name, application_name text, function text,
                                                     memory_ids uuid[], query_hash bytea, sqlstate text, mac bytea)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  burst jsonb;
  threshold integer;
  bucket_start timestamptz;
  b memoriesdb.access_refusal_bursts;
  as_row boolean := true;
BEGIN
  IF mac IS NULL OR entry_id IS NULL
     OR mac <> memoriesdb_internal.access_log_mac(entry_id, at, actor, db_role, vouched_by, application_name, function,
                                                  memory_ids, query_hash, sqlstate) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB24', MESSAGE = 'access log entry not authentic: refused',
      DETAIL = format('entry %s: its MAC does not verify', entry_id),
      HINT = 'entries are made by the ledger''s API only; logging in as the logger role does not make one';
  END IF;
  IF sqlstate IS NOT NULL THEN
    SELECT c.value INTO burst FROM memoriesdb.config AS c WHERE c.key = 'access_log_refusal_burst';
    threshold := (burst->>'threshold')::integer;
    IF threshold IS NOT NULL AND (burst->>'bucket_seconds')::integer > 0 THEN
      bucket_start := to_timestamp(floor(extract(epoch FROM at) / (burst->>'bucket_seconds')::integer)
                                   * (burst->>'bucket_seconds')::integer);
      INSERT INTO memoriesdb.access_refusal_bursts AS r (actor, db_role, vouched_by, function, sqlstate, bucket, first_at, last_at, mac)
      VALUES (actor, db_role, vouched_by, function, sqlstate, bucket_start, at, at, '\x')
      ON CONFLICT ON CONSTRAINT access_refusal_bursts_key DO NOTHING;
      SELECT * INTO STRICT b FROM memoriesdb.access_refusal_bursts AS r
       WHERE r.actor IS NOT DISTINCT FROM append_access_entry.actor AND r.db_role = append_access_entry.db_role
         AND r.vouched_by IS NOT DISTINCT FROM append_access_entry.vouched_by
         AND r.function = append_access_entry.function AND r.sqlstate = append_access_entry.sqlstate
         AND r.bucket = bucket_start
       FOR UPDATE;
      as_row := b.logged < threshold;
      b.logged := b.logged + as_row::integer;
      b.aggregated := b.aggregated + (NOT as_row)::integer;
      b.first_at := least(b.first_at, at);
      b.last_at := greatest(b.last_at, at);
      UPDATE memoriesdb.access_refusal_bursts AS r
         SET logged = b.logged, aggregated = b.aggregated, first_at = b.first_at, last_at = b.last_at,
             mac = memoriesdb_internal.access_burst_mac(b.actor, b.db_role, b.vouched_by, b.function, b.sqlstate,
                                                        b.bucket, b.logged, b.aggregated, b.first_at, b.last_at)
       WHERE r.actor IS NOT DISTINCT FROM b.actor AND r.db_role = b.db_role AND r.vouched_by IS NOT DISTINCT FROM b.vouched_by
         AND r.function = b.function AND r.sqlstate = b.sqlstate AND r.bucket = b.bucket;
    END IF;
  END IF;
  IF as_row THEN
    INSERT INTO memoriesdb.access_log (entry_id, at, actor, db_role, vouched_by, application_name, function, memory_ids,
                                       query_hash, sqlstate, mac)
    VALUES (entry_id, at, actor, db_role, vouched_by, coalesce(application_name, ''), function, coalesce(memory_ids, '{}'),
            query_hash, sqlstate, mac);
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.append_access_entry(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea) IS
  'Internal: appends one access log entry whose MAC verifies (MDB24 otherwise; a repeated entry_id is a unique violation). A refusal past config access_log_refusal_burst.threshold in its bucket is only counted, in access_refusal_bursts. Executed by the API (as the owner) and, for autonomous writes, by this database''s logger role.';

-- v0.3.0's unauthenticated entry points: kept (the revert to v0.3.0 restores their
-- bodies) but they accept nothing.
CREATE OR REPLACE FUNCTION memoriesdb_internal.append_access_log(at timestamptz, actor uuid, db_role name, application_name text,
                                             function text, memory_ids uuid[], query_hash bytea, sqlstate text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- retired: it keeps v0.3.0's signature (the revert restores its body) and ignores every argument
-- @plpgsql_check_options: extra_warnings = false, performance_warnings = false
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'MDB24', MESSAGE = 'access log entry not authentic: refused',
    DETAIL = 'append_access_log() takes entries without a MAC and accepts none since v0.4',
    HINT = 'entries are made by the ledger''s API only (append_access_entry)';
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.append_access_log(timestamptz, uuid, name, text, text, uuid[], bytea, text) IS
  'Internal, retired: the v0.3.0 entry point for unauthenticated entries; refuses every call (MDB24). See append_access_entry().';

-- The dblink drivers and setup_access_logger() belong to the deploying superuser:
-- dblink requires it on a server that trusts local logins (see access_log.sql).
RESET ROLE;

-- The autonomous writes. Owned by the deploying superuser (see the top of
-- file and access_log.sql); executable by memoriesdb_owner only, so only the API reaches them.
--
-- A write is sent over the session's connection and its outcome waited for, in one of two ways:
--   durable    synchronous commit (refusals)
--   confirmed  asynchronous commit (reads): the logger's commit does not wait for
--              the WAL flush, but the entry is in the logger's committed
--              transaction before the read returns anything; if it failed, the
--              read is refused (fail closed)
CREATE OR REPLACE FUNCTION memoriesdb_internal.await_access_log_writes() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n integer;
  failure text;
BEGIN
  IF NOT coalesce('memoriesdb_access_log' = ANY (memoriesdb_dblink.dblink_get_connections()), false) THEN
    RETURN true;
  END IF;
  -- No EXCEPTION block (a subtransaction per read: on Citus a SAVEPOINT and a RELEASE on every worker connection of
  -- the transaction, measured: recall() p50 4.5 -> 3.7 ms): a write's failure, the logger's error or a broken
  -- connection, is not raised (fail_on_error false) but left as the connection's error message.
  LOOP   -- each result of what was sent, then an empty one: nothing more pending
    SELECT count(*)::integer INTO n FROM memoriesdb_dblink.dblink_get_result('memoriesdb_access_log', false) AS t(status text);
    EXIT WHEN n = 0;
  END LOOP;
  failure := memoriesdb_dblink.dblink_error_message('memoriesdb_access_log');
  IF failure IS DISTINCT FROM 'OK' THEN
    RAISE WARNING 'access log: an entry was not written: %', coalesce(failure, 'no message')
      USING HINT = 'a superuser can run memoriesdb.setup_access_logger() to renew the logger''s login';
    PERFORM memoriesdb_dblink.dblink_disconnect('memoriesdb_access_log');
    RETURN false;
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.await_access_log_writes() IS
  'Internal: waits for the outcome of this session''s access log writes; false (and a WARNING, and the connection dropped) if one failed.';

-- v0.3.0's driver, retired with append_access_log() (kept for the revert).
CREATE OR REPLACE FUNCTION memoriesdb_internal.append_access_log_autonomously(at timestamptz, actor uuid, application_name text,
                                                          function text, memory_ids uuid[], query_hash bytea, sqlstate text,
                                                          mode text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- retired: it keeps v0.3.0's signature (the revert restores its body) and ignores every argument
-- @plpgsql_check_options: extra_warnings = false, performance_warnings = false
BEGIN
  RETURN false;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text) IS
  'Internal, retired: v0.3.0''s autonomous writer (unauthenticated entries); writes nothing, returns false. See append_access_entry_autonomously().';

CREATE OR REPLACE FUNCTION memoriesdb_internal.append_access_entry_autonomously(entry_id uuid, at timestamptz, actor uuid, db_role name,
                                                                  vouched_by name, application_name text, function text,
                                                                  memory_ids uuid[], query_hash bytea, sqlstate text,
                                                                  mac bytea, mode text)
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
       || format('EXECUTE memoriesdb_append(%L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L)',
                 entry_id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, db_role, vouched_by,
                 application_name, function, memory_ids, query_hash, sqlstate, mac);
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
        -- the settings the logger's writes depend on are given at connection: they override the
        -- logger role's defaults, which whoever logs in as the logger may change (ALTER ROLE
        -- CURRENT_USER SET default_transaction_read_only = on would refuse every read, MDB22)
        PERFORM memoriesdb_dblink.dblink_connect(conn, format(
          'host=%s port=%s dbname=%s user=%s password=%s application_name=memoriesdb_access_log connect_timeout=5 options=''-c synchronous_commit=off'
          ' -c default_transaction_read_only=off -c default_transaction_isolation=read\\ committed -c statement_timeout=0'
          ' -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c idle_session_timeout=0 -c plpgsql.extra_errors=none''',
          quote_literal(coalesce(host, CASE WHEN current_setting('listen_addresses') = ''
                                            THEN split_part(current_setting('unix_socket_directories'), ',', 1)
                                            ELSE '127.0.0.1' END)),
          quote_literal(coalesce(port, current_setting('port'))), quote_literal(current_database()),
          quote_literal(s.logger_role), quote_literal(s.password)));
        -- parsed and planned once per connection, not per entry
        PERFORM memoriesdb_dblink.dblink_exec(conn,
          'PREPARE memoriesdb_append(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea) AS '
          'SELECT memoriesdb_internal.append_access_entry($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)');
      EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'access log: cannot connect the logger: %', SQLERRM
          USING HINT = 'a superuser can run memoriesdb.setup_access_logger() to renew the logger''s login; see the README on the logger''s connections';
        IF coalesce(conn = ANY (memoriesdb_dblink.dblink_get_connections()), false) THEN
          PERFORM memoriesdb_dblink.dblink_disconnect(conn);
        END IF;
        RETURN false;
      END;
    END IF;
    IF mode = 'connect' THEN
      RETURN true;   -- the connection is up (authenticate(): a failure would be recorded); no entry
    END IF;
    IF memoriesdb_dblink.dblink_send_query(conn, stmt) = 1 THEN
      IF memoriesdb_internal.await_access_log_writes() THEN
        RETURN true;
      END IF;
      -- failed, and the connection is gone: once more on a new one (a connection an older
      -- version prepared its statement on fails once after an upgrade). entry_id is unique:
      -- an entry that did get in is not written twice.
      CONTINUE;
    END IF;
    PERFORM memoriesdb_dblink.dblink_disconnect(conn);   -- could not even send: a broken connection
  END LOOP;
  RAISE WARNING 'access log: the logger''s connection is broken';
  RETURN false;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.append_access_entry_autonomously(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea, text) IS
  'Internal: appends an authenticated access log entry in its own transaction (dblink, as the logger role, over a connection kept for the session; to the primary when run on a standby), so it survives the caller''s rollback, and waits for the outcome. mode: durable (synchronous commit) or confirmed (asynchronous commit); connect: no entry, only the logger''s connection opened when this session has none (authenticate() before it answers a key). false (and a WARNING) when it cannot: the caller then refuses (fail closed). Owned by the deploying superuser because dblink requires it when the server trusts local logins.';

-- One key check per REPEATABLE READ or SERIALIZABLE transaction (authenticate()): such a transaction
-- reads the access log in the snapshot of its first statement, where the failures recorded during it
-- (by the logger, in transactions of its own) never appear, so the throttle could not count them and
-- savepoints gave one transaction unlimited guesses. The note is kept in the logger's session (this
-- session's connection to it): no savepoint's rollback undoes it and no client reaches it. true for the
-- transaction's first key check (noted), false for a later one, NULL when the logger cannot be asked.
CREATE OR REPLACE FUNCTION memoriesdb_internal.note_key_check(mark text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  conn constant text := 'memoriesdb_access_log';
  first boolean;
BEGIN
  IF NOT coalesce(conn = ANY (memoriesdb_dblink.dblink_get_connections()), false)
     OR NOT memoriesdb_internal.await_access_log_writes() THEN
    RETURN NULL;
  END IF;
  SELECT t.first INTO first FROM memoriesdb_dblink.dblink(conn, format(
    'SELECT CASE WHEN current_setting(''memoriesdb.key_checked_in'', true) = %1$L THEN false '
    'ELSE set_config(''memoriesdb.key_checked_in'', %1$L, false) IS NOT NULL END', mark)) AS t(first boolean);
  RETURN first;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'access log: the logger''s connection is broken: %', SQLERRM;
  IF coalesce(conn = ANY (memoriesdb_dblink.dblink_get_connections()), false) THEN
    PERFORM memoriesdb_dblink.dblink_disconnect(conn);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.note_key_check(text) IS
  'Internal, for authenticate() in a REPEATABLE READ or SERIALIZABLE transaction: notes mark (the session''s process and the transaction''s start) in the session of this session''s logger connection and says whether it is the transaction''s first key check (true), a later one (false: the throttle, reading the transaction''s snapshot, could not count the failures recorded since) or cannot be asked (NULL: no logger connection; authenticate() refuses, MDB23). A savepoint''s rollback does not undo the note. Owned by the deploying superuser (dblink).';

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
  -- the logger's statements (which carry the entries' MACs) are not shown in
  -- pg_stat_activity, not even to another session of the logger role
  EXECUTE format('ALTER ROLE %I SET track_activities = off', logger);
  EXECUTE format('COMMENT ON ROLE %I IS %L', logger,
                 format('MemoriesDB: appends to the access log of database %s, and nothing else.', current_database()));
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), logger);
  EXECUTE format('GRANT USAGE ON SCHEMA memoriesdb_internal TO %I', logger);
  EXECUTE format('REVOKE ALL ON FUNCTION memoriesdb_internal.append_access_log(timestamptz, uuid, name, text, text, uuid[], bytea, text) FROM %I', logger);
  EXECUTE format('GRANT EXECUTE ON FUNCTION memoriesdb_internal.append_access_entry(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea) TO %I', logger);
  INSERT INTO memoriesdb.access_log_sink AS s (logger_role, password, hash_key)
  VALUES (logger, secret, public.gen_random_bytes(32))
  ON CONFLICT (singleton) DO UPDATE SET logger_role = excluded.logger_role, password = excluded.password;
  RETURN logger;
END
$$;
COMMENT ON FUNCTION memoriesdb.setup_access_logger() IS
  'Superuser only: creates this database''s logger role (memoriesdb_log_<hash of the database name>) with a new random password and stores it for the autonomous writes. Run by the deploy; run it again after restoring a dump on another cluster. The query-hash key and the MAC key are kept.';

-- A function the superuser creates is executable by PUBLIC until someone says
-- otherwise; these never are, not even until privileges.sql runs.
REVOKE ALL ON FUNCTION memoriesdb_internal.await_access_log_writes(),
  memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text),
  memoriesdb_internal.append_access_entry_autonomously(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea, text),
  memoriesdb_internal.note_key_check(text),
  memoriesdb.setup_access_logger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.await_access_log_writes(),
  memoriesdb_internal.append_access_entry_autonomously(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea, text),
  memoriesdb_internal.note_key_check(text)
  TO memoriesdb_owner;

SET LOCAL ROLE memoriesdb_owner;

-- Every entry is made here, in the session of the call it records: its id, time,
-- context, login and MAC; written autonomously (mode durable or confirmed) or,
-- mode 'transaction', in the caller's transaction. false when it could not be written.
CREATE OR REPLACE FUNCTION memoriesdb_internal.write_access_entry(function text, memory_ids uuid[], query_hash bytea,
                                                    sqlstate text, mode text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  entry uuid := public.gen_random_uuid();
  at timestamptz := clock_timestamp();
  actor uuid := memoriesdb.current_user_id();
  vouched name := memoriesdb_internal.context_vouched_by();
  app text := coalesce(current_setting('application_name'), '');
  ids uuid[] := coalesce(memory_ids, '{}');
  mac bytea;
BEGIN
  mac := memoriesdb_internal.access_log_mac(entry, at, actor, session_user, vouched, app, function, ids, query_hash, sqlstate);
  IF mode = 'transaction' THEN
    PERFORM memoriesdb_internal.append_access_entry(entry, at, actor, session_user, vouched, app, function, ids,
                                                    query_hash, sqlstate, mac);
    RETURN true;
  END IF;
  RETURN memoriesdb_internal.append_access_entry_autonomously(entry, at, actor, session_user, vouched, app, function, ids,
                                                              query_hash, sqlstate, mac, mode);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.write_access_entry(text, uuid[], bytea, text, text) IS
  'Internal: makes one access log entry for the call in progress (entry id, time, context user, login, who vouched, MAC) and writes it: mode durable or confirmed autonomously, transaction in the caller''s transaction. false when the autonomous write failed.';

-- A granted read's entry, or no read (MDB22): used by record_read() and by the worker's claims.
CREATE OR REPLACE FUNCTION memoriesdb_internal.log_read(function text, memory_ids uuid[], query_hash bytea) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  read_only boolean := current_setting('transaction_read_only') = 'on';
BEGIN
  IF NOT read_only AND memoriesdb.setting('access_log_reads') = '"transactional"' THEN
    PERFORM memoriesdb_internal.write_access_entry(function, memory_ids, query_hash, NULL, 'transaction');
  ELSIF NOT memoriesdb_internal.write_access_entry(function, memory_ids, query_hash, NULL, 'confirmed') THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB22', MESSAGE = 'a read''s entry could not be written: refused',
      DETAIL = format('%s of %s memories', function, coalesce(cardinality(memory_ids), 0)),
      HINT = 'the access log''s logger could not write the entry (see the WARNING above); no read goes unlogged. Check the logger''s connections (README: the access log)';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.log_read(text, uuid[], bytea) IS
  'Internal: writes the entry of a read that is about to return contents, autonomously (config access_log_reads autonomous, or any read-only transaction) or in the caller''s transaction (transactional); MDB22 when it cannot: no read goes unlogged.';

-- The API function a refusal happened in (recall, revise, share, ...), from the
-- PL/pgSQL context: the innermost frame of a memoriesdb function. Everything above it
-- (innermost first) is the ledger's own code; what lies beyond is the caller's, whose
-- function names and SQL text (newlines included) can read like frames of the ledger's.
CREATE OR REPLACE FUNCTION memoriesdb_internal.calling_api_function() RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stack text;
  fn text;
BEGIN
  GET DIAGNOSTICS stack = PG_CONTEXT;
  fn := (regexp_match(stack, '^PL/pgSQL function memoriesdb\.([a-z_]+)\(', 'n'))[1];   -- the first such frame: the innermost
  RETURN coalesce(fn, 'unknown');
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.calling_api_function() IS 'Internal: the name of the innermost memoriesdb function on the call stack (the API function refusing), for access log entries of refusals; never a frame of the caller''s, whose names it chooses.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.record_refusal(sqlstate text, memory_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fn text := memoriesdb_internal.calling_api_function();
  ids uuid[] := CASE WHEN memory_id IS NULL THEN '{}' ELSE ARRAY[memory_id] END;
BEGIN
  IF sqlstate IS NULL OR sqlstate !~ '^[0-9A-Z]{5}$' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'record_refusal() records refusals only',
      DETAIL = format('sqlstate %L', sqlstate);
  END IF;
  IF NOT memoriesdb_internal.write_access_entry(fn, ids, NULL, sqlstate, 'durable') THEN
    -- An entry written in the caller's transaction would go with the rollback the
    -- refusal causes: say so, in the server's log and to the caller, instead.
    RAISE LOG 'memoriesdb access log: refusal not recorded: function %, sqlstate %, memory %, actor %, login %',
      fn, sqlstate, memory_id, memoriesdb.current_user_id(), session_user;
    RAISE EXCEPTION USING ERRCODE = 'MDB23', MESSAGE = 'a refusal''s entry could not be written',
      DETAIL = format('%s was refused (%s); the access log''s logger could not record it', fn, sqlstate),
      HINT = 'the refusal is in the server''s log; check the logger''s connections (README: the access log)';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.record_refusal(text, uuid) IS
  'Internal: records a refused attempt (sqlstate, never NULL; the memory asked for, the context user, the API function from the call stack) in the access log, durably and autonomously, so that it survives the rollback the error causes. The API calls it just before raising. When the entry cannot be written: MDB23 (and the refusal in the server''s log), never silence. Executable by the owner and memoriesdb_reader only.';

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
  key bytea;
  qh bytea;
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
  SELECT s.hash_key INTO key FROM memoriesdb.access_log_sink AS s;
  qh := CASE WHEN query IS NOT NULL THEN public.hmac(query, key, 'sha256') END;
  PERFORM memoriesdb_internal.log_read(function, memory_ids, qh);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.record_read(text, uuid[], bytea) IS
  'Internal, for the read functions only (it checks its caller): records one granted read (the function, the ids it returned, the keyed hash of the query) in the access log. By default autonomously with asynchronous commit, waited for (survives the caller''s rollback; the caller''s transaction stays read-only); with config access_log_reads = transactional, in the caller''s transaction. MDB22 when the entry cannot be written, in every mode: no unlogged read.';

CREATE OR REPLACE FUNCTION memoriesdb.access_history(memory_id uuid, since timestamptz DEFAULT NULL)
RETURNS TABLE (at timestamptz, outcome text, actor uuid, db_role name, application_name text,
               function text, sqlstate text, query_hash bytea)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  PERFORM memoriesdb_internal.require_owner(access_history.memory_id, uid, 'read the access history of');
  PERFORM memoriesdb_internal.await_access_log_writes();   -- this session's own reads are in it
  RETURN QUERY
    -- a stranger's id only as a pseudonym, and not its login or application_name
    -- either (they name it): those only for users the owner deals with, and for
    -- reads with no user (the worker's claims)
    SELECT l.at, CASE WHEN l.sqlstate IS NULL THEN 'read' ELSE 'refused' END, d.shown,
           CASE WHEN d.known THEN l.db_role END, CASE WHEN d.known THEN l.application_name END,
           l.function, l.sqlstate, l.query_hash
      FROM memoriesdb.access_log AS l
     CROSS JOIN LATERAL (SELECT memoriesdb_internal.disclosed_user(l.actor, uid, uid) AS shown) AS p
     CROSS JOIN LATERAL (SELECT p.shown, (l.actor IS NULL AND l.sqlstate IS NULL) OR p.shown = l.actor AS known) AS d
     WHERE l.memory_ids @> ARRAY[access_history.memory_id]
       AND (since IS NULL OR l.at >= since)
       AND l.mac = memoriesdb_internal.access_log_mac(l.entry_id, l.at, l.actor, l.db_role, l.vouched_by, l.application_name,
                                                      l.function, l.memory_ids, l.query_hash, l.sqlstate)
     ORDER BY l.at DESC, l.id DESC;
END
$$;
COMMENT ON FUNCTION memoriesdb.access_history(uuid, timestamptz) IS
  'For the memory''s current owner: every read that returned it and every refused attempt on it (since: only those at or after), newest first, each an authenticated entry (its MAC verifies; refusals past a burst''s threshold are only counted, see access_refusals()); outcome read or refused, with the SQLSTATE of a refusal. A user the owner does not deal with (no share or transfer either way) is shown by a pseudonym, with no login or application_name. Custody passes with the memory: after a transfer the new owner sees all of it and the former owner nothing. MDB03/MDB04 for anyone else (and that refusal is logged too).';

CREATE OR REPLACE FUNCTION memoriesdb.access_refusals(since interval DEFAULT '1 hour')
RETURNS TABLE (function text, sqlstate text, attempts bigint, actors bigint, no_context bigint, last_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
  WITH refusals AS (
    -- every authenticated refusal written as a row
    SELECT l.function, l.sqlstate, l.actor, 1::bigint AS n, l.at
      FROM memoriesdb.access_log AS l
     WHERE l.at >= now() - since AND l.sqlstate IS NOT NULL
       AND l.mac = memoriesdb_internal.access_log_mac(l.entry_id, l.at, l.actor, l.db_role, l.vouched_by, l.application_name,
                                                      l.function, l.memory_ids, l.query_hash, l.sqlstate)
    UNION ALL
    -- and those of a burst that were only counted
    SELECT b.function, b.sqlstate, b.actor, b.aggregated, b.last_at
      FROM memoriesdb.access_refusal_bursts AS b
     WHERE b.last_at >= now() - since AND b.aggregated > 0
       AND b.mac = memoriesdb_internal.access_burst_mac(b.actor, b.db_role, b.vouched_by, b.function, b.sqlstate, b.bucket,
                                                        b.logged, b.aggregated, b.first_at, b.last_at)
  )
  SELECT r.function, r.sqlstate, sum(r.n)::bigint, count(DISTINCT r.actor), coalesce(sum(r.n) FILTER (WHERE r.actor IS NULL), 0)::bigint,
         max(r.at)
    FROM refusals AS r
   GROUP BY 1, 2
   ORDER BY 3 DESC, 1, 2
$$;
COMMENT ON FUNCTION memoriesdb.access_refusals(interval) IS
  'Refused attempts in the last interval, counted by function and SQLSTATE (how many, from how many distinct actors, how many with no context, the latest), exactly: the authenticated rows of access_log plus the refusals of bursts that were only counted (access_refusal_bursts.aggregated; a burst counts when its latest refusal is in the interval). Counts only, no ids: for the runner''s status and the auditor.';

CREATE OR REPLACE FUNCTION memoriesdb.flush_access_log() RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$ SELECT memoriesdb_internal.await_access_log_writes() $$;
COMMENT ON FUNCTION memoriesdb.flush_access_log() IS
  'Waits until the access log entries of this session''s reads are committed (reads send them without waiting); false, with a WARNING, if one could not be written. access_history() does this itself.';

-- this database's logger role (a new password each time this change is deployed)
RESET ROLE;
DO $$ BEGIN PERFORM memoriesdb.setup_access_logger(); END $$;

COMMIT;
