-- Deploy memoriesdb:access_log_v4 to pg
-- requires: access_log
-- requires: config
-- The access log, v0.4 (run once): every entry is authenticated, says who vouched
-- for its context, and a storm of refusals is counted instead of written row by row.
--
-- Authenticated entries. The logger role is a LOGIN (its autonomous writes need
-- one), and on a server that trusts local logins anybody can log in as it and
-- call append_access_log(). So an entry carries entry_id (a uuid drawn by the
-- session that made the entry) and mac = HMAC-SHA-256(mac_key, the entry's
-- fields), computed in that session with a key only the ledger owner can read
-- (access_log_sink.mac_key). append_access_log() recomputes it and refuses an
-- entry whose MAC does not verify (MDB24); entry_id is unique, so a genuine entry
-- cannot be appended twice; access_history() and access_refusals() count only
-- entries whose MAC verifies.
--
-- Refusal bursts. Past config access_log_refusal_burst.threshold refusals of one
-- (actor, login, vouched_by, function, sqlstate) in one bucket of
-- bucket_seconds, further ones are counted in access_refusal_bursts.aggregated
-- instead of written one row each: rows of the bucket + aggregated = every refusal.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

ALTER TABLE memoriesdb.access_log
  ADD COLUMN vouched_by name,
  ADD COLUMN entry_id uuid,
  ADD COLUMN mac bytea;
COMMENT ON COLUMN memoriesdb.access_log.vouched_by IS
  'The trusted backend login that vouched for the context of the call (memoriesdb_internal.context_vouched_by()), NULL when the context was proven in the database (or there was none).';
COMMENT ON COLUMN memoriesdb.access_log.entry_id IS 'A uuid drawn by the session that made the entry; unique, so no entry can be appended twice.';
COMMENT ON COLUMN memoriesdb.access_log.mac IS
  'HMAC-SHA-256, with a key only the ledger owner can read, of the entry''s fields (memoriesdb_internal.access_log_mac()): computed by the session that made the entry, checked on append; an entry whose MAC does not verify is not shown by access_history() or counted by access_refusals().';

ALTER TABLE memoriesdb.access_log_sink ADD COLUMN mac_key bytea NOT NULL DEFAULT public.gen_random_bytes(32);
COMMENT ON COLUMN memoriesdb.access_log_sink.mac_key IS 'The key of the access log entries'' MACs. Readable by the owner only (not by the logger role).';

-- sign the entries written before this change (the same fields, in the same form,
-- as memoriesdb_internal.access_log_mac() in access_log_fn.sql)
ALTER TABLE memoriesdb.access_log DISABLE TRIGGER append_only;
UPDATE memoriesdb.access_log AS l SET entry_id = public.gen_random_uuid();
UPDATE memoriesdb.access_log AS l
   SET mac = public.hmac(convert_to(jsonb_build_array(l.entry_id, to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                 l.actor, l.db_role, l.vouched_by, l.application_name, l.function, l.memory_ids,
                 encode(l.query_hash, 'hex'), l.sqlstate)::text, 'UTF8'),
                 (SELECT s.mac_key FROM memoriesdb.access_log_sink AS s), 'sha256');
ALTER TABLE memoriesdb.access_log ENABLE TRIGGER append_only;
ALTER TABLE memoriesdb.access_log ALTER COLUMN entry_id SET NOT NULL, ALTER COLUMN mac SET NOT NULL;
CREATE UNIQUE INDEX access_log_entry_id ON memoriesdb.access_log (entry_id);

CREATE TABLE memoriesdb.access_refusal_bursts (
  actor      uuid,
  db_role    name NOT NULL,
  vouched_by name,
  function   text NOT NULL,
  sqlstate   text NOT NULL CHECK (sqlstate ~ '^[0-9A-Z]{5}$'),
  bucket     timestamptz NOT NULL,
  logged     integer NOT NULL DEFAULT 0 CHECK (logged >= 0),
  aggregated bigint NOT NULL DEFAULT 0 CHECK (aggregated >= 0),
  first_at   timestamptz NOT NULL,
  last_at    timestamptz NOT NULL,
  mac        bytea NOT NULL,
  CONSTRAINT access_refusal_bursts_key UNIQUE NULLS NOT DISTINCT (actor, db_role, vouched_by, function, sqlstate, bucket)
);
COMMENT ON TABLE memoriesdb.access_refusal_bursts IS
  'Refusals counted per (actor, login, vouched_by, function, sqlstate, bucket): logged = how many were written to access_log as rows, aggregated = how many more were only counted (past config access_log_refusal_burst.threshold in the bucket). Every refusal is in exactly one of the two. Written only by memoriesdb_internal.append_access_log(); mac: HMAC of the row (memoriesdb_internal.access_burst_mac()). Read by the auditor.';
CREATE INDEX access_refusal_bursts_bucket ON memoriesdb.access_refusal_bursts USING brin (bucket);
ALTER TABLE memoriesdb.access_refusal_bursts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY access_refusal_bursts_owner ON memoriesdb.access_refusal_bursts TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY access_refusal_bursts_auditor ON memoriesdb.access_refusal_bursts FOR SELECT TO memoriesdb_auditor USING (true);

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('access_log_refusal_burst', '{"threshold": 100, "bucket_seconds": 60}',
   'refusals of one (actor, login, vouched_by, function, sqlstate) in one bucket of bucket_seconds: the first threshold are written to access_log one row each, the rest only counted in access_refusal_bursts.aggregated (nothing is lost: rows + aggregated = every refusal)');

COMMIT;
