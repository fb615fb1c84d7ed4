-- Deploy memoriesdb:users to pg
-- Reworked after @v0.4.0 (released version: users@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: users@v0.4.0
-- requires: internal_schema
-- Live functions of users, API keys and authentication: create_user(), create_api_key(), revoke_api_key(), authenticate(); require_user() for every write;
-- context_user(): the context user, its proof checked once per API call.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework users`.
-- Run once, by users@v0.1.0.sql: tables users and api_keys, their index, policies and triggers. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- The proof of an app login's context is an HMAC over the private context key: about
-- 9 µs a check, and a remember() checked it 6 times (the call, 3 row stamps, 2 audit
-- rows), a search() 8. This checks it once per API call and notes the uuid and proof
-- it verified in memoriesdb.context_checked (transaction-local), which
-- current_user_id() then believes. The note never outlives the call: every
-- SECURITY DEFINER function a client may call has SET memoriesdb.context_checked = ''
-- (db/tests/01-schema.sql checks each), so it reads '' on entry, whatever the client
-- set, and its old value is restored on exit. PARALLEL UNSAFE: set_config() is refused
-- in a parallel query, and the planner keeps every query that calls this serial.
CREATE OR REPLACE FUNCTION memoriesdb_internal.context_user() RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
-- No SET clause (it would cost more than the check it saves): every name is qualified,
-- and only the ledger's own functions, whose search_path is pinned, call it.
DECLARE
  uid uuid := memoriesdb.current_user_id();
  checked text;
BEGIN
  IF uid IS NOT NULL AND NOT pg_catalog.pg_has_role(SESSION_USER, 'memoriesdb_backend', 'MEMBER') THEN
    -- not a backend's: current_user_id() believed it because the proof verified, or was noted so
    checked := pg_catalog.current_setting('app.current_user', true) OPERATOR(pg_catalog.||) '|'
               OPERATOR(pg_catalog.||) pg_catalog.current_setting('app.current_user_proof', true);
    IF pg_catalog.current_setting('memoriesdb.context_checked', true) IS DISTINCT FROM checked THEN
      PERFORM pg_catalog.set_config('memoriesdb.context_checked', checked, true);
    END IF;
  END IF;
  RETURN uid;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.context_user() IS
  'Internal: memoriesdb.current_user_id(), and when that context was proven by authenticate() (not vouched for by a backend login), notes the uuid and proof as checked (memoriesdb.context_checked) so that the rest of the API call (its policies, row stamps and audit rows) does not verify the proof again. Every client-callable SECURITY DEFINER function resets the note on entry and restores it on exit. Called first by remember(), require_user() (every other write), recall() and the searches; the rest of the call reads current_user_id(), which believes the note.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.require_user() RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.context_user();
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
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
AS $$ SELECT memoriesdb_internal.issue_api_key(create_api_key.user_id, NULL) $$;
COMMENT ON FUNCTION memoriesdb.create_api_key(uuid) IS
  'Creates an API key for the context user itself (proven or vouched for; or any user, for an administrator with no context) and returns it in plaintext, once; only its SHA-256 is kept. It expires after config api_key_lifetime (90 days).';

CREATE OR REPLACE FUNCTION memoriesdb.create_api_key(user_id uuid, expires_at timestamptz) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$ SELECT memoriesdb_internal.issue_api_key(create_api_key.user_id, create_api_key.expires_at) $$;
COMMENT ON FUNCTION memoriesdb.create_api_key(uuid, timestamptz) IS
  'As create_api_key(user_id), with the key''s expiry: a time to come (MDB12 otherwise), ''infinity'' for never, NULL for config api_key_lifetime.';

CREATE OR REPLACE FUNCTION memoriesdb.api_keys_list()
RETURNS TABLE (id uuid, key_prefix text, created_at timestamptz, expires_at timestamptz, revoked_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
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
SET memoriesdb.context_checked = ''
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

-- The slow path: authenticate() found failures in the window; this counts them and, when a limit is
-- reached, says which and when to retry.
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
  'Internal: MDB14 (the key unchecked), saying which limit and when to retry, when the login has max_failures_per_login failed authentications in the last window_seconds (config auth_throttle), or when the key prefix has max_failures_per_key_prefix failures in the window and this login is one of those that failed on it. authenticate() calls it only when the login has a failure in the window (one index probe: without one neither limit can refuse it); it returns quietly when no limit is reached.';

DROP FUNCTION IF EXISTS memoriesdb_internal.lifted_bounds();   -- read the config itself (v0.5 before this change)
CREATE OR REPLACE FUNCTION memoriesdb_internal.lifted_bounds(bounds jsonb) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
-- No SET clause (called at every authenticate(), whose search_path is pinned): names qualified.
DECLARE
  name text;
  lifted text[];
BEGIN
  -- an app login's time bounds as configure_login() set them (config login_bounds -> memoriesdb_app):
  -- each must still be on, and no longer than its bound, in this session
  FOREACH name IN ARRAY ARRAY['idle_in_transaction_session_timeout', 'lock_timeout', 'statement_timeout'] LOOP
    IF bounds OPERATOR(pg_catalog.?) name
       AND (pg_catalog.current_setting(name)::pg_catalog.interval OPERATOR(pg_catalog.=) pg_catalog.interval '0'
            OR pg_catalog.current_setting(name)::pg_catalog.interval OPERATOR(pg_catalog.>) (bounds OPERATOR(pg_catalog.->>) name)::pg_catalog.interval) THEN
      lifted := lifted OPERATOR(pg_catalog.||) pg_catalog.format('%s = %s (its bound: %s)', name, pg_catalog.current_setting(name), bounds OPERATOR(pg_catalog.->>) name);
    END IF;
  END LOOP;
  RETURN pg_catalog.array_to_string(lifted, ', ');
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.lifted_bounds(jsonb) IS
  'Internal: which of the time bounds in bounds (config login_bounds -> memoriesdb_app: statement_timeout, idle_in_transaction_session_timeout, lock_timeout) this session has off or above its bound, as text; NULL when all are in force.';

-- Does this session keep an app login's time bounds (bounds: config login_bounds -> memoriesdb_app)? The same
-- rule as lifted_bounds(), as one expression (SQL, no SET clause: inlined into authenticate()'s query), so the
-- common case costs no function call; lifted_bounds() says which bound is off only when this is not true.
CREATE OR REPLACE FUNCTION memoriesdb_internal.bounds_kept(bounds jsonb) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT bounds IS NULL
      OR (    (NOT bounds OPERATOR(pg_catalog.?) 'idle_in_transaction_session_timeout'
               OR (pg_catalog.current_setting('idle_in_transaction_session_timeout')::pg_catalog.interval OPERATOR(pg_catalog.<>) pg_catalog.interval '0'
                   AND pg_catalog.current_setting('idle_in_transaction_session_timeout')::pg_catalog.interval
                       OPERATOR(pg_catalog.<=) (bounds OPERATOR(pg_catalog.->>) 'idle_in_transaction_session_timeout')::pg_catalog.interval))
          AND (NOT bounds OPERATOR(pg_catalog.?) 'lock_timeout'
               OR (pg_catalog.current_setting('lock_timeout')::pg_catalog.interval OPERATOR(pg_catalog.<>) pg_catalog.interval '0'
                   AND pg_catalog.current_setting('lock_timeout')::pg_catalog.interval
                       OPERATOR(pg_catalog.<=) (bounds OPERATOR(pg_catalog.->>) 'lock_timeout')::pg_catalog.interval))
          AND (NOT bounds OPERATOR(pg_catalog.?) 'statement_timeout'
               OR (pg_catalog.current_setting('statement_timeout')::pg_catalog.interval OPERATOR(pg_catalog.<>) pg_catalog.interval '0'
                   AND pg_catalog.current_setting('statement_timeout')::pg_catalog.interval
                       OPERATOR(pg_catalog.<=) (bounds OPERATOR(pg_catalog.->>) 'statement_timeout')::pg_catalog.interval)))
$$;
COMMENT ON FUNCTION memoriesdb_internal.bounds_kept(jsonb) IS
  'Internal: true when this session has each time bound in bounds (config login_bounds -> memoriesdb_app) on and no longer than its bound, or there are none; the negation of lifted_bounds() (which names what is lifted), as one expression authenticate() inlines. NULL (a bound that is not an interval) counts as not kept.';

-- The key prefix's keyed hash under the access log's key: what a failed authentication records as its
-- query_hash and the prefix throttle counts by (the prefix itself never reaches the log).
CREATE OR REPLACE FUNCTION memoriesdb_internal.auth_prefix_hash(api_key text) RETURNS bytea
LANGUAGE sql STABLE
AS $$
  SELECT pg_catalog.sha256(s.hash_key OPERATOR(pg_catalog.||)
           pg_catalog.convert_to('authenticate|' OPERATOR(pg_catalog.||) pg_catalog.left(coalesce(api_key, ''), 12), 'UTF8'))
    FROM memoriesdb.access_log_sink AS s
$$;
COMMENT ON FUNCTION memoriesdb_internal.auth_prefix_hash(text) IS
  'Internal: the keyed SHA-256 (access_log_sink.hash_key) of api_key''s first 12 characters: the query_hash of a failed authenticate() in the access log, by which check_auth_throttle() counts failures per key prefix. authenticate() computes it only when it counts or records a failure.';

-- An API key's row and, for its user, the proof of a context in this transaction (context_proof()).
-- SQL, no SET clause, not SECURITY DEFINER: PostgreSQL inlines it into authenticate()'s query.
CREATE OR REPLACE FUNCTION memoriesdb_internal.api_key_proven(api_key text)
RETURNS TABLE (id uuid, user_id uuid, key_prefix text, revoked_at timestamptz, expires_at timestamptz, proof text)
LANGUAGE sql STABLE
AS $$
  SELECT a.id, a.user_id, a.key_prefix, a.revoked_at, a.expires_at,
         memoriesdb_internal.context_proof(a.user_id::text, ck.ipad, ck.opad)
    FROM memoriesdb.api_keys AS a, memoriesdb_internal.context_key AS ck
   WHERE a.key_hash OPERATOR(pg_catalog.=) pg_catalog.sha256(pg_catalog.convert_to(coalesce(api_key, ''), 'UTF8'))
$$;
COMMENT ON FUNCTION memoriesdb_internal.api_key_proven(text) IS
  'Internal: the api_keys row whose key_hash is the SHA-256 of api_key (none for a wrong key), with the proof of a context for its user in this transaction of this session. authenticate() reads it only once the throttle lets the key be checked.';

CREATE OR REPLACE FUNCTION memoriesdb.authenticate(api_key text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  r record;
  lifted text;
  prefix_hash bytea;   -- the key prefix's keyed hash (auth_prefix_hash()): only when a failure is counted or recorded
  first_check boolean;   -- the transaction's first key check (NULL: a failure could not be recorded)
BEGIN
  -- The common path is one query (a proven context's cost in every transaction, issue 12: ≤ 5% of a
  -- remember()): the config, whether this session keeps its time bounds, whether this login has a failure
  -- in the throttle's window and, only when it has none, the key and the proof. The login's failures gate
  -- both limits: the key prefix's limit refuses only a login that has failed on that prefix itself
  -- (check_auth_throttle()), so a login with no failure in the window can reach neither, and the prefix's
  -- keyed hash is computed only on the slow path.
  SELECT f.bounds, f.bounds_kept, f.failed, k.id, k.user_id, k.key_prefix, k.revoked_at, k.expires_at, k.proof
    INTO r
    FROM (SELECT b.value->'memoriesdb_app' AS bounds,
                 memoriesdb_internal.bounds_kept(b.value->'memoriesdb_app') AS bounds_kept,
                 -- the newest failure of this login: one descent of a partial index (max() reads the last
                 -- entry of (db_role, at)), however many failures it has had before the window (a count, or
                 -- an EXISTS the planner may answer with a scan of the whole access log, would grow with them)
                 coalesce((SELECT max(a.at) FROM memoriesdb.access_log AS a   -- access_log_auth_failures_by_login
                            WHERE a.function = 'authenticate' AND a.sqlstate = 'MDB10' AND a.db_role = session_user)
                          > statement_timestamp() - make_interval(secs => (t.value->>'window_seconds')::float8), false) AS failed
            FROM (SELECT) AS x
            LEFT JOIN memoriesdb.config AS t ON t.key = 'auth_throttle'
            LEFT JOIN memoriesdb.config AS b ON b.key = 'login_bounds'
          OFFSET 0) AS f
    -- OFFSET 0 keeps this a subquery of its own: NOT f.failed gates it (a one-time filter), so a throttled
    -- login's key is not looked up at all
    LEFT JOIN LATERAL (SELECT * FROM memoriesdb_internal.api_key_proven(api_key) WHERE NOT f.failed OFFSET 0) AS k ON true;
  -- an app login whose session SET its time bounds off (or longer) gets no context: no API work runs
  -- unbounded (a backend's, or a superuser's, sessions are trusted with their own)
  IF NOT coalesce(r.bounds_kept, false) AND NOT pg_has_role(session_user, 'memoriesdb_backend', 'MEMBER') THEN
    lifted := memoriesdb_internal.lifted_bounds(r.bounds);   -- which, and by how much
    IF lifted IS NOT NULL THEN
      PERFORM memoriesdb_internal.record_refusal('MDB15', NULL);
      RAISE EXCEPTION USING ERRCODE = 'MDB15', MESSAGE = 'session time bounds lifted',
        DETAIL = lifted,
        HINT = 'RESET them (the login''s bounds come from memoriesdb.configure_login(); an unconfigured login has none: an administrator runs configure_login(login))';
    END IF;
  END IF;
  -- No key is answered unless a wrong one would be recorded: a session whose logger connection cannot be
  -- opened (the logger's slots taken) gets MDB23 for every key, right or wrong, before either is checked
  -- (else a wrong key's unrecorded MDB23 against a right key's context answered every guess, uncounted).
  -- One C call while the session's connection is open; it is opened at the session's first authenticate().
  -- And in REPEATABLE READ or SERIALIZABLE one key check per transaction (note_key_check(), a round trip to
  -- the logger's session): the throttle reads the access log in the transaction's snapshot, where the
  -- failures recorded during the transaction never appear.
  first_check := CASE WHEN NOT coalesce('memoriesdb_access_log' = ANY (memoriesdb_dblink.dblink_get_connections()), false)
                           AND NOT memoriesdb_internal.append_access_entry_autonomously(NULL, NULL, NULL, NULL, NULL, NULL,
                                                                                        NULL, NULL, NULL, NULL, NULL, 'connect')
                        THEN NULL
                      WHEN current_setting('transaction_isolation') = 'read committed' THEN true
                      ELSE memoriesdb_internal.note_key_check(format('%s|%s', pg_backend_pid(),
                             (extract(epoch FROM transaction_timestamp()) * 1000000)::bigint)) END;
  IF first_check IS NULL THEN
    RAISE LOG 'memoriesdb access log: authenticate() refused unchecked, the logger cannot be reached: login %', session_user;
    RAISE EXCEPTION USING ERRCODE = 'MDB23', MESSAGE = 'a failed authentication could not be recorded',
      DETAIL = 'the key was not checked: the access log''s logger cannot be reached from this session, so a wrong key could be neither recorded nor counted',
      HINT = 'retry later; check the logger''s connections (README: sizing the logger''s connections)';
  END IF;
  IF NOT first_check THEN
    PERFORM memoriesdb_internal.record_refusal('MDB14', NULL);
    RAISE EXCEPTION USING ERRCODE = 'MDB14', MESSAGE = 'one key check per REPEATABLE READ or SERIALIZABLE transaction',
      DETAIL = format('this %s transaction has checked a key already; the failures recorded since are outside its snapshot, so the throttle could not count them; the key was not checked', current_setting('transaction_isolation')),
      HINT = 'call memoriesdb.authenticate() once, first, in each transaction, or use READ COMMITTED';
  END IF;
  IF r.failed THEN
    -- the throttle before the key is checked: count the failures, MDB14 when a limit is reached
    prefix_hash := memoriesdb_internal.auth_prefix_hash(api_key);
    PERFORM memoriesdb_internal.check_auth_throttle(prefix_hash);
    SELECT r.bounds, r.bounds_kept, r.failed, k.id, k.user_id, k.key_prefix, k.revoked_at, k.expires_at, k.proof
      INTO r FROM (SELECT) AS x LEFT JOIN memoriesdb_internal.api_key_proven(api_key) AS k ON true;
  END IF;
  IF r.id IS NULL THEN
    PERFORM memoriesdb_internal.record_auth_failure(coalesce(prefix_hash, memoriesdb_internal.auth_prefix_hash(api_key)));   -- on the record, and counted
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'invalid api key',
      HINT = 'the key is wrong; keys are shown only once, by memoriesdb.create_api_key()';
  END IF;
  IF r.revoked_at IS NOT NULL THEN
    PERFORM memoriesdb_internal.record_auth_failure(coalesce(prefix_hash, memoriesdb_internal.auth_prefix_hash(api_key)));
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'api key revoked',
      DETAIL = format('key %s… was revoked at %s', r.key_prefix, r.revoked_at);
  END IF;
  IF r.expires_at <= statement_timestamp() THEN
    PERFORM memoriesdb_internal.record_auth_failure(coalesce(prefix_hash, memoriesdb_internal.auth_prefix_hash(api_key)));
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'api key expired',
      DETAIL = format('key %s… expired at %s', r.key_prefix, r.expires_at),
      HINT = 'create a new key with memoriesdb.create_api_key()';
  END IF;
  -- transaction-local, and bound to this session and this transaction by the proof:
  -- neither a copy in another session nor a session-level setting carries it further
  PERFORM set_config('app.current_user', r.user_id::text, true), set_config('app.current_user_proof', r.proof, true);
  RETURN r.user_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.authenticate(text) IS
  'Checks an API key and makes its user the context of the current transaction only: sets app.current_user and app.current_user_proof (an HMAC only the database can compute, bound to this session and this transaction). MDB10 for a wrong, revoked or expired key (each failure recorded durably and counted); MDB14, before the key is checked, when failures exceed config auth_throttle. MDB15 for an app login whose session has a time bound (statement_timeout, idle_in_transaction_session_timeout, lock_timeout) off or above config login_bounds. The only way for a memoriesdb_app login to act as a user. Call it first in every transaction.';

COMMIT;
