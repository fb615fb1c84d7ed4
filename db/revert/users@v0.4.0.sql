-- Revert memoriesdb:users from pg
-- Back to the functions of users as released in v0.3.0 (users@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP FUNCTION memoriesdb.create_api_key(uuid, timestamptz);
DROP FUNCTION memoriesdb.api_keys_list();
DROP FUNCTION memoriesdb.revoke_api_key(uuid);
DROP FUNCTION memoriesdb_internal.issue_api_key(uuid, timestamptz);
DROP FUNCTION memoriesdb_internal.login_is_admin();
DROP FUNCTION memoriesdb_internal.check_auth_throttle(bytea);
DROP FUNCTION memoriesdb_internal.record_auth_failure(bytea);

CREATE OR REPLACE FUNCTION memoriesdb_internal.require_user() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
BEGIN
  IF uid IS NULL THEN
    PERFORM memoriesdb_internal.record_refusal('MDB01', NULL);
    RAISE EXCEPTION USING ERRCODE = 'MDB01', MESSAGE = 'no user context',
      HINT = 'call memoriesdb.authenticate(api_key) or select set_config(''app.current_user'', <user uuid>, true) in this transaction';
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
  'Creates a user and returns its id. created_by is the context user, or the new user itself when there is no context.';

CREATE OR REPLACE FUNCTION memoriesdb.create_api_key(user_id uuid) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ctx uuid := memoriesdb.current_user_id();
  api_key text := 'mdb_' || encode(public.gen_random_bytes(24), 'hex');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = create_api_key.user_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB02', MESSAGE = 'unknown user', DETAIL = format('user %s', create_api_key.user_id);
  END IF;
  IF ctx IS NOT NULL AND ctx <> create_api_key.user_id THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB04', MESSAGE = 'not allowed',
      DETAIL = 'a user may create API keys only for itself',
      HINT = 'clear the context (provisioning by the application) or act as that user';
  END IF;
  INSERT INTO memoriesdb.api_keys (user_id, key_hash, key_prefix)
  VALUES (create_api_key.user_id, sha256(convert_to(api_key, 'UTF8')), left(api_key, 12));
  RETURN api_key;
END
$$;
COMMENT ON FUNCTION memoriesdb.create_api_key(uuid) IS
  'Creates an API key for a user and returns it in plaintext, once; only its SHA-256 is kept. Allowed with no context (provisioning) or for the context user itself.';

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
COMMENT ON FUNCTION memoriesdb.revoke_api_key(text) IS 'Revokes an API key (given in plaintext): authenticate() refuses it from then on.';

CREATE OR REPLACE FUNCTION memoriesdb.authenticate(api_key text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k memoriesdb.api_keys;
BEGIN
  SELECT * INTO k FROM memoriesdb.api_keys AS a WHERE a.key_hash = sha256(convert_to(coalesce(api_key, ''), 'UTF8'));
  IF k.id IS NULL THEN
    PERFORM memoriesdb_internal.record_refusal('MDB10', NULL);   -- failed authentications are on the record too
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'invalid api key',
      HINT = 'the key is wrong; keys are shown only once, by memoriesdb.create_api_key()';
  END IF;
  IF k.revoked_at IS NOT NULL THEN
    PERFORM memoriesdb_internal.record_refusal('MDB10', NULL);
    RAISE EXCEPTION USING ERRCODE = 'MDB10', MESSAGE = 'api key revoked',
      DETAIL = format('key %s… was revoked at %s', k.key_prefix, k.revoked_at);
  END IF;
  -- transaction-local: under PgBouncer transaction pooling nothing outlives the transaction
  PERFORM set_config('app.current_user', k.user_id::text, true);
  RETURN k.user_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.authenticate(text) IS
  'Checks an API key and sets app.current_user to its user for the current transaction only; MDB10 for a wrong or revoked key. Call it first in every transaction.';

COMMIT;
