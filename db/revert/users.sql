-- Revert memoriesdb:users from pg (back to the live functions as of @v0.4.0)
-- Reworked after @v0.3.0 (released version: users@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: users@v0.1.0
-- requires: internal_schema
-- Live functions of users, API keys and authentication: create_user(), create_api_key(), revoke_api_key(), authenticate(); require_user() for every write.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework users`.
-- Run once, by users@v0.1.0.sql: tables users and api_keys, their index, policies and triggers. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- what v0.5 added
DROP FUNCTION memoriesdb_internal.lifted_bounds(jsonb);
DROP FUNCTION memoriesdb_internal.context_user();
DROP FUNCTION memoriesdb_internal.api_key_proven(text);
DROP FUNCTION IF EXISTS memoriesdb_internal.bounds_kept(jsonb);   -- (IF EXISTS: deployed from an earlier v0.5 main)
DROP FUNCTION IF EXISTS memoriesdb_internal.auth_prefix_hash(text);

CREATE OR REPLACE FUNCTION memoriesdb_internal.require_user() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
BEGIN
  IF uid IS NULL THEN
    PERFORM memoriesdb_internal.record_refusal('MDB01', NULL);
    IF coalesce(current_setting('app.current_user', true), '') <> '' THEN
      RAISE EXCEPTION USING ERRCODE = 'MDB01', MESSAGE = 'no user context',
        DETAIL = 'app.current_user is set but unproven: only authenticate() in this transaction proves it, unless the login is a memoriesdb_backend',
        HINT = 'call memoriesdb.authenticate(api_key) in this transaction';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'MDB01', MESSAGE = 'no user context',
      HINT = 'call memoriesdb.authenticate(api_key) in this transaction (a memoriesdb_backend login may select set_config(''app.current_user'', <user uuid>, true))';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = uid) THEN
    PERFORM memoriesdb_internal.record_refusal('MDB02', NULL);
    RAISE EXCEPTION USING ERRCODE = 'MDB02', MESSAGE = 'unknown user',
      DETAIL = format('app.current_user is %s, which is not a user', uid),
      HINT = 'create users with memoriesdb.create_user()';
  END IF;
  RETURN uid;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.require_user() IS
  'The context user, checked to exist; MDB01 when there is no context, MDB02 when the context names no user. Every write calls it first.';

CREATE OR REPLACE FUNCTION memoriesdb.create_user(handle text, display_name text DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_id uuid := gen_random_uuid();
BEGIN
  IF handle IS NULL OR handle !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid handle',
      DETAIL = format('handle %L', handle),
      HINT = '1 to 63 characters: lower-case letters, digits, _ . -; starting with a letter or digit';
  END IF;
  IF length(display_name) > 200 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'display_name too long', HINT = 'at most 200 characters';
  END IF;
  INSERT INTO memoriesdb.users (id, handle, display_name) VALUES (new_id, handle, display_name);
  RETURN new_id;
EXCEPTION WHEN unique_violation THEN
  RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'handle already taken', DETAIL = format('handle %L', handle);
END
$$;
COMMENT ON FUNCTION memoriesdb.create_user(text, text) IS
  'Creates a user and returns its id. Executable by memoriesdb_backend logins (and superusers) only: an untrusted app login cannot make users. created_by is the context user, or the new user itself when there is no context. A backend then vouches for the new user (set_config) to mint its first key with create_api_key().';

-- Is the login an administrator (a superuser)? Administrators may mint keys for any user.
CREATE OR REPLACE FUNCTION memoriesdb_internal.login_is_admin() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = session_user), false) $$;
COMMENT ON FUNCTION memoriesdb_internal.login_is_admin() IS
  'Internal: true when the login (session_user) is a superuser, the administrator who may mint keys for any user.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.issue_api_key(user_id uuid, expires_at timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ctx uuid := memoriesdb.current_user_id();
  api_key text := 'mdb_' || encode(public.gen_random_bytes(24), 'hex');
  expiry timestamptz;
BEGIN
  -- an administrator provisions with no context; with one, the rules of that user apply
  IF NOT (ctx IS NULL AND memoriesdb_internal.login_is_admin()) THEN
    IF ctx IS NULL THEN
      PERFORM memoriesdb_internal.require_user();   -- MDB01, recorded
    END IF;
    -- before the user is looked up: a refusal must not tell whether a uuid is a user
    IF ctx IS DISTINCT FROM issue_api_key.user_id THEN
      PERFORM memoriesdb_internal.record_refusal('MDB04', NULL);
      RAISE EXCEPTION USING ERRCODE = 'MDB04', MESSAGE = 'not allowed',
        DETAIL = 'a user may create API keys only for itself',
        HINT = 'act as that user: authenticate() with one of its keys, or a memoriesdb_backend login vouching for it';
    END IF;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = issue_api_key.user_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB02', MESSAGE = 'unknown user', DETAIL = format('user %s', issue_api_key.user_id);
  END IF;
  expiry := coalesce(issue_api_key.expires_at, now() + (memoriesdb.setting('api_key_lifetime') #>> '{}')::interval);
  IF expiry <= statement_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'expiry in the past',
      DETAIL = format('expires_at %s', expiry), HINT = 'a time to come, or ''infinity'' for a key that never expires';
  END IF;
  INSERT INTO memoriesdb.api_keys (user_id, key_hash, key_prefix, expires_at)
  VALUES (issue_api_key.user_id, sha256(convert_to(api_key, 'UTF8')), left(api_key, 12), expiry);
  RETURN api_key;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.issue_api_key(uuid, timestamptz) IS
  'Internal: create_api_key() for both signatures. Only the context user itself (proven or vouched for), or an administrator (a superuser login) with no context; MDB04 before the user is looked up, so a refusal tells nothing about which uuids are users.';

CREATE OR REPLACE FUNCTION memoriesdb.create_api_key(user_id uuid) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT memoriesdb_internal.issue_api_key(create_api_key.user_id, NULL) $$;
COMMENT ON FUNCTION memoriesdb.create_api_key(uuid) IS
  'Creates an API key for the context user itself (proven or vouched for; or any user, for an administrator with no context) and returns it in plaintext, once; only its SHA-256 is kept. It expires after config api_key_lifetime (90 days).';

CREATE OR REPLACE FUNCTION memoriesdb.create_api_key(user_id uuid, expires_at timestamptz) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT memoriesdb_internal.issue_api_key(create_api_key.user_id, create_api_key.expires_at) $$;
COMMENT ON FUNCTION memoriesdb.create_api_key(uuid, timestamptz) IS
  'As create_api_key(user_id), with the key''s expiry: a time to come (MDB12 otherwise), ''infinity'' for never, NULL for config api_key_lifetime.';

CREATE OR REPLACE FUNCTION memoriesdb.api_keys_list()
RETURNS TABLE (id uuid, key_prefix text, created_at timestamptz, expires_at timestamptz, revoked_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  RETURN QUERY SELECT k.id, k.key_prefix, k.created_at, k.expires_at, k.revoked_at
                 FROM memoriesdb.api_keys AS k WHERE k.user_id = uid ORDER BY k.created_at, k.id;
END
$$;
COMMENT ON FUNCTION memoriesdb.api_keys_list() IS
  'The context user''s API keys: id (for revoke_api_key(key_id)), key_prefix (the first 12 characters, to tell keys apart), created_at, expires_at (NULL: a pre-v0.4 key that never expires), revoked_at. Never the key.';

CREATE OR REPLACE FUNCTION memoriesdb.revoke_api_key(key_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  UPDATE memoriesdb.api_keys AS a SET revoked_at = coalesce(a.revoked_at, now())
   WHERE a.id = revoke_api_key.key_id AND a.user_id = uid;
  IF NOT FOUND THEN
    PERFORM memoriesdb_internal.record_refusal('MDB10', NULL);
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'api key not found',
      DETAIL = format('key %s', revoke_api_key.key_id), HINT = 'memoriesdb.api_keys_list() lists your keys';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb.revoke_api_key(uuid) IS
  'Revokes one of the context user''s API keys by its id (api_keys_list()), so a leaked key the user no longer holds can be revoked; authenticate() refuses it from then on. MDB10 for a key that is not the user''s.';

CREATE OR REPLACE FUNCTION memoriesdb.revoke_api_key(api_key text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ctx uuid := memoriesdb.current_user_id();
  k memoriesdb.api_keys;
BEGIN
  SELECT * INTO k FROM memoriesdb.api_keys AS a WHERE a.key_hash = sha256(convert_to(coalesce(api_key, ''), 'UTF8'));
  IF k.id IS NULL OR (ctx IS NOT NULL AND ctx <> k.user_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'invalid api key';
  END IF;
  UPDATE memoriesdb.api_keys AS a SET revoked_at = coalesce(a.revoked_at, now()) WHERE a.id = k.id;
END
$$;
COMMENT ON FUNCTION memoriesdb.revoke_api_key(text) IS 'Revokes an API key given in plaintext (holding it is proof enough): authenticate() refuses it from then on.';

-- Failed authentications are counted from the access log's refusals of
-- authenticate() (sqlstate MDB10), which are written autonomously and durably, so
-- the failing transaction's rollback does not erase them. Each carries, as its
-- query_hash, a keyed hash of the key prefix it tried: SHA-256 of the access log's
-- private hash key and the prefix (a bucket to count in, never the prefix itself).
CREATE OR REPLACE FUNCTION memoriesdb_internal.record_auth_failure(prefix_hash bytea) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- an authenticated entry (access_log_v4), durable and autonomous: it outlives the
  -- rollback of the failing call; the throttle counts these rows (auth_throttle's
  -- limits are below access_log_refusal_burst's threshold, so none is only counted)
  IF NOT memoriesdb_internal.write_access_entry('authenticate', '{}', prefix_hash, 'MDB10', 'durable') THEN
    RAISE LOG 'memoriesdb access log: failed authentication not recorded: login %', session_user;
    RAISE EXCEPTION USING ERRCODE = 'MDB23', MESSAGE = 'a refusal''s entry could not be written',
      DETAIL = 'authenticate was refused (MDB10); the access log''s logger could not record it',
      HINT = 'the refusal is in the server''s log; check the logger''s connections (README: the access log)';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.record_auth_failure(bytea) IS
  'Internal: records a failed authenticate() (sqlstate MDB10, the key prefix''s keyed hash as query_hash) in the access log, autonomously and durably, so that it counts towards auth_throttle after the caller''s rollback.';

-- The slow path: authenticate() found a limit reached and calls this to say which, and when to retry.
CREATE OR REPLACE FUNCTION memoriesdb_internal.check_auth_throttle(prefix_hash bytea) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t jsonb := (SELECT c.value FROM memoriesdb.config AS c WHERE c.key = 'auth_throttle');
  win interval := make_interval(secs => (t->>'window_seconds')::float8);
  max_login integer := (t->>'max_failures_per_login')::integer;
  max_prefix integer := (t->>'max_failures_per_key_prefix')::integer;
  since timestamptz := clock_timestamp() - win;
  n integer;
  mine integer;
  retry timestamptz;
BEGIN
  -- per login: the max_login-th newest failure in the window ages out at retry
  SELECT count(*)::integer INTO n FROM memoriesdb.access_log AS a
   WHERE a.function = 'authenticate' AND a.sqlstate = 'MDB10' AND a.db_role = session_user AND a.at > since;
  IF n >= max_login THEN
    SELECT a.at + win INTO retry FROM memoriesdb.access_log AS a
     WHERE a.function = 'authenticate' AND a.sqlstate = 'MDB10' AND a.db_role = session_user AND a.at > since
     ORDER BY a.at DESC OFFSET max_login - 1 LIMIT 1;
    PERFORM memoriesdb_internal.record_refusal('MDB14', NULL);
    RAISE EXCEPTION USING ERRCODE = 'MDB14', MESSAGE = 'too many failed authentications',
      DETAIL = format('login %s failed %s times in the last %s seconds (auth_throttle allows %s); the key was not checked',
                      session_user, n, t->>'window_seconds', max_login),
      HINT = format('retry after %s (refused attempts while throttled do not count)', to_char(retry AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
  END IF;
  -- per key prefix: only a login that has itself failed on this prefix is refused,
  -- so nobody can lock a key's holder out by failing on its prefix
  SELECT count(*)::integer, count(*) FILTER (WHERE a.db_role = session_user)::integer INTO n, mine FROM memoriesdb.access_log AS a
   WHERE a.function = 'authenticate' AND a.sqlstate = 'MDB10' AND a.query_hash = prefix_hash AND a.at > since;
  IF n >= max_prefix AND mine > 0 THEN
    SELECT a.at + win INTO retry FROM memoriesdb.access_log AS a
     WHERE a.function = 'authenticate' AND a.sqlstate = 'MDB10' AND a.query_hash = prefix_hash AND a.at > since
     ORDER BY a.at DESC OFFSET max_prefix - 1 LIMIT 1;
    PERFORM memoriesdb_internal.record_refusal('MDB14', NULL);
    RAISE EXCEPTION USING ERRCODE = 'MDB14', MESSAGE = 'too many failed authentications',
      DETAIL = format('this key prefix failed %s times in the last %s seconds (auth_throttle allows %s), %s of them by login %s; the key was not checked',
                      n, t->>'window_seconds', max_prefix, mine, session_user),
      HINT = format('retry after %s (refused attempts while throttled do not count)', to_char(retry AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_auth_throttle(bytea) IS
  'Internal: MDB14 (the key unchecked), saying which limit and when to retry, when the login has max_failures_per_login failed authentications in the last window_seconds (config auth_throttle), or when the key prefix has max_failures_per_key_prefix failures in the window and this login is one of those that failed on it. authenticate() counts both in one query and calls this only when a limit is reached.';

CREATE OR REPLACE FUNCTION memoriesdb.authenticate(api_key text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k memoriesdb.api_keys;
  prefix_hash bytea;
  t jsonb;
  n_login integer;
  n_prefix integer;
  mine integer;
BEGIN
  -- the throttle, before the key is checked: both counts in one query (the two
  -- partial indexes on the access log's failed authentications)
  SELECT sha256(s.hash_key || convert_to('authenticate|' || left(coalesce(api_key, ''), 12), 'UTF8')), c.value
    INTO prefix_hash, t
    FROM memoriesdb.access_log_sink AS s, memoriesdb.config AS c WHERE c.key = 'auth_throttle';
  SELECT count(*) FILTER (WHERE a.db_role = session_user)::integer,
         count(*) FILTER (WHERE a.query_hash = prefix_hash)::integer,
         count(*) FILTER (WHERE a.query_hash = prefix_hash AND a.db_role = session_user)::integer
    INTO n_login, n_prefix, mine
    FROM memoriesdb.access_log AS a
   WHERE a.function = 'authenticate' AND a.sqlstate = 'MDB10'
     AND a.at > clock_timestamp() - make_interval(secs => (t->>'window_seconds')::float8)
     AND (a.db_role = session_user OR a.query_hash = prefix_hash);
  IF n_login >= (t->>'max_failures_per_login')::integer
     OR (n_prefix >= (t->>'max_failures_per_key_prefix')::integer AND mine > 0) THEN
    PERFORM memoriesdb_internal.check_auth_throttle(prefix_hash);   -- raises MDB14, saying which and until when
  END IF;
  SELECT * INTO k FROM memoriesdb.api_keys AS a WHERE a.key_hash = sha256(convert_to(coalesce(api_key, ''), 'UTF8'));
  IF k.id IS NULL THEN
    PERFORM memoriesdb_internal.record_auth_failure(prefix_hash);   -- on the record, and counted
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'invalid api key',
      HINT = 'the key is wrong; keys are shown only once, by memoriesdb.create_api_key()';
  END IF;
  IF k.revoked_at IS NOT NULL THEN
    PERFORM memoriesdb_internal.record_auth_failure(prefix_hash);
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'api key revoked',
      DETAIL = format('key %s… was revoked at %s', k.key_prefix, k.revoked_at);
  END IF;
  IF k.expires_at <= statement_timestamp() THEN
    PERFORM memoriesdb_internal.record_auth_failure(prefix_hash);
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'api key expired',
      DETAIL = format('key %s… expired at %s', k.key_prefix, k.expires_at),
      HINT = 'create a new key with memoriesdb.create_api_key()';
  END IF;
  -- transaction-local, and bound to this session and this transaction by the proof:
  -- neither a copy in another session nor a session-level setting carries it further
  PERFORM set_config('app.current_user', k.user_id::text, true);
  PERFORM set_config('app.current_user_proof', memoriesdb_internal.context_proof(k.user_id::text, ck.ipad, ck.opad), true)
     FROM memoriesdb_internal.context_key AS ck;
  RETURN k.user_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.authenticate(text) IS
  'Checks an API key and makes its user the context of the current transaction only: sets app.current_user and app.current_user_proof (an HMAC only the database can compute, bound to this session and this transaction). MDB10 for a wrong, revoked or expired key (each failure recorded durably and counted); MDB14, before the key is checked, when failures exceed config auth_throttle. The only way for a memoriesdb_app login to act as a user. Call it first in every transaction.';

COMMIT;
