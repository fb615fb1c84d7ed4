-- Deploy memoriesdb:identity to pg
-- requires: search_bounds
-- requires: access_log
-- Proof of identity (run once). The functions: context.sql (current_user_id(),
-- context_vouched_by(), the proof), users.sql (authenticate(), keys), audit_log.sql.
--
-- An untrusted login (memoriesdb_app) gets a context only from authenticate(): it sets
-- app.current_user and app.current_user_proof = HMAC-SHA-256(context key, user ||
-- backend pid || transaction start), both transaction-local. The key below is private
-- to the owner, so no client can forge a proof, and a proof names one backend process
-- and one transaction, so it cannot be replayed in another session or carried into
-- another transaction. A login granted memoriesdb_backend is trusted to have
-- authenticated its users itself: its bare app.current_user is believed, and the audit
-- log records that it vouched.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- ipad and opad are the key XOR the HMAC pads (RFC 2104, SHA-256's 64-byte block), so
-- HMAC-SHA-256(key, m) = sha256(opad || sha256(ipad || m)) with the built-in sha256():
-- a few microseconds, where pgcrypto's hmac() costs tens (it looks the digest up each call).
CREATE TABLE memoriesdb_internal.context_key (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  key        bytea NOT NULL CHECK (octet_length(key) = 32),
  ipad       bytea NOT NULL CHECK (octet_length(ipad) = 64),
  opad       bytea NOT NULL CHECK (octet_length(opad) = 64),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memoriesdb_internal.context_key IS
  'Private: the key of the context proofs authenticate() mints and of the pseudonyms of user ids (HMAC-SHA-256; ipad/opad: the key XOR 0x36/0x5c, zero-padded to 64 bytes). Readable by the owner only; never audited (the audit log would keep a copy). To replace it (as the owner), set all three together: it invalidates every proof in flight and changes every pseudonym, nothing else.';
ALTER TABLE memoriesdb_internal.context_key ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY context_key_owner ON memoriesdb_internal.context_key TO memoriesdb_owner USING (true) WITH CHECK (true);
INSERT INTO memoriesdb_internal.context_key (key, ipad, opad)
SELECT k, i, o FROM (SELECT public.gen_random_bytes(32) AS k) AS g
 CROSS JOIN LATERAL (
   SELECT string_agg(decode(lpad(to_hex(coalesce(CASE WHEN n < 32 THEN get_byte(g.k, n) END, 0) # 54), 2, '0'), 'hex'), ''::bytea ORDER BY n) AS i,
          string_agg(decode(lpad(to_hex(coalesce(CASE WHEN n < 32 THEN get_byte(g.k, n) END, 0) # 92), 2, '0'), 'hex'), ''::bytea ORDER BY n) AS o
     FROM generate_series(0, 63) AS n) AS pads;

-- Keys expire. NULL: a key made before v0.4, which never expires; 'infinity': asked never to.
ALTER TABLE memoriesdb.api_keys ADD COLUMN expires_at timestamptz;
COMMENT ON COLUMN memoriesdb.api_keys.expires_at IS
  'authenticate() refuses the key from then on (MDB10). Set by create_api_key(): now() + api_key_lifetime unless asked; ''infinity'' never expires; NULL only for keys made before v0.4 (never expire).';

-- Who acted, whatever role was in force, and who vouched for the context.
ALTER TABLE memoriesdb.audit_log ADD COLUMN login name, ADD COLUMN vouched_by name;
COMMENT ON COLUMN memoriesdb.audit_log.login IS
  'session_user of the change: the database login (db_role is the role in force, which SET ROLE changes). NULL in rows written before v0.4.';
COMMENT ON COLUMN memoriesdb.audit_log.vouched_by IS
  'The memoriesdb_backend login that vouched for created_by (set it with set_config, unproven); NULL when the context was proven by an API key, or there was none.';

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('api_key_lifetime', '"90 days"', 'how long a key from create_api_key() lives unless its expires_at is given (an interval; ''infinity'' is asked for explicitly)'),
  ('auth_throttle', '{"window_seconds": 300, "max_failures_per_login": 30, "max_failures_per_key_prefix": 10}',
   'authenticate() refuses (MDB14) a login with max_failures_per_login failed authentications in the last window_seconds, and a login that has itself failed on a key prefix that has max_failures_per_key_prefix failures in the window (any login): a login that never failed is never locked out by another''s failures');

-- Counting failed authentications: the access log's refusals of authenticate()
-- (written autonomously, so the failing transaction's rollback does not erase them).
CREATE INDEX access_log_auth_failures_by_login ON memoriesdb.access_log (db_role, at)
  WHERE function = 'authenticate' AND sqlstate = 'MDB10';
CREATE INDEX access_log_auth_failures_by_prefix ON memoriesdb.access_log (query_hash, at)
  WHERE function = 'authenticate' AND sqlstate = 'MDB10';

COMMIT;
