-- Deploy memoriesdb:access_log to pg
-- requires: internal_schema
-- requires: memory_graph
-- requires: search_text_fn
-- The access log: every read through the API and every refused attempt.
-- Run once: dblink in its own schema, the tables, the setting. The functions that
-- write and read the log: access_log_fn.sql; who may do what: privileges.sql.
--
-- A refused call ends in an error that rolls back the caller's transaction, and
-- with it anything written in it. A refusal is therefore written autonomously:
-- through dblink, over a connection of this database's own logger role, which
-- may do nothing but append to this log. The connection is opened once per
-- server session and kept, with the insert prepared on it (a new connection per
-- write would cost 4-7 ms). dblink refuses a non-superuser a connection the
-- server lets in without a password (trust), so the two functions that drive it
-- are owned by the deploying superuser, not by memoriesdb_owner; they run a
-- fixed statement, with every value quoted, and only memoriesdb_owner may
-- execute them. dblink itself lives in a schema no client may use, so no client
-- can borrow that connection. A refusal is committed synchronously and waited for.
--
-- Granted reads go the same way, pipelined: sent before the rows are returned,
-- committed asynchronously, their outcome collected by the session's next write.
-- The caller's transaction stays read-only (an entry written in it would give it
-- a transaction id and make its COMMIT wait for a WAL flush). In a read-only
-- transaction the write is waited for (no unlogged read: MDB22); on a hot
-- standby it goes to the primary. Config access_log_reads = 'transactional'
-- writes reads in the caller's transaction instead.
BEGIN;

DO $$
BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
    RAISE EXCEPTION 'the access_log change must be deployed by a superuser'
      USING HINT = 'it installs dblink and creates this database''s logger role';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension AS e JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
              WHERE e.extname = 'dblink' AND n.nspname <> 'memoriesdb_dblink') THEN
    RAISE EXCEPTION 'dblink is installed in a schema clients may use'
      USING HINT = 'ALTER EXTENSION dblink SET SCHEMA memoriesdb_dblink (MemoriesDB keeps it where no client can call it), then deploy again';
  END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS memoriesdb_dblink;
REVOKE ALL ON SCHEMA memoriesdb_dblink FROM PUBLIC;
COMMENT ON SCHEMA memoriesdb_dblink IS 'MemoriesDB: dblink, for the access log''s autonomous writes. No client may use it.';
CREATE EXTENSION IF NOT EXISTS dblink SCHEMA memoriesdb_dblink;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA memoriesdb_dblink FROM PUBLIC;

SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.access_log (
  id               bigint GENERATED ALWAYS AS IDENTITY,
  at               timestamptz NOT NULL,
  actor            uuid,
  db_role          name NOT NULL,
  application_name text NOT NULL DEFAULT '',
  function         text NOT NULL,
  memory_ids       uuid[] NOT NULL,
  query_hash       bytea,
  sqlstate         text CHECK (sqlstate ~ '^[0-9A-Z]{5}$')
);
COMMENT ON TABLE memoriesdb.access_log IS
  'One row per read through the API (sqlstate NULL: memory_ids are the memories it returned) and per refused attempt (sqlstate: the error it got; memory_ids: the memory it asked for). actor: the context user the call ran as (NULL for none; the claimed uuid for a context naming no user). query_hash: HMAC-SHA-256 of a search''s query, never the query. Append-only for every role; written only by the API. Read by the auditor, and by a memory''s current owner through access_history().';
COMMENT ON COLUMN memoriesdb.access_log.db_role IS 'session_user of the call: the database login.';
COMMENT ON COLUMN memoriesdb.access_log.query_hash IS 'Searches: HMAC-SHA-256 (key private to this database) of the query text and/or vector, k and filter, so equal queries can be matched without revealing them.';
CREATE INDEX access_log_at ON memoriesdb.access_log USING brin (at);
CREATE INDEX access_log_memory_ids ON memoriesdb.access_log USING gin (memory_ids);
ALTER TABLE memoriesdb.access_log ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY access_log_owner ON memoriesdb.access_log TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY access_log_auditor ON memoriesdb.access_log FOR SELECT TO memoriesdb_auditor USING (true);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON memoriesdb.access_log
  FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.refuse_change();

-- The logger's credentials and the query-hash key: readable by the owner only.
CREATE TABLE memoriesdb.access_log_sink (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  logger_role name NOT NULL,
  password    text NOT NULL,
  hash_key    bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memoriesdb.access_log_sink IS
  'Private: the login the access log''s autonomous writes use (a role that may only append to the log) and the key of its query hashes. Written by setup_access_logger().';
ALTER TABLE memoriesdb.access_log_sink ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY access_log_sink_owner ON memoriesdb.access_log_sink TO memoriesdb_owner USING (true) WITH CHECK (true);

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('access_log_reads', '"autonomous"', 'granted reads are logged "autonomous" (own transaction over the logger''s connection, asynchronous commit: survives the caller''s rollback, one extra connection per session) or "transactional" (in the caller''s transaction: no extra connection, but the caller''s commit waits for a WAL flush and a rollback removes the entry); refusals are always autonomous and durable');

COMMIT;
