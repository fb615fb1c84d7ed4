-- Deploy memoriesdb:users to pg
-- requires: audit_log
-- requires: row_stamps
-- requires: config
-- Users, API keys and how a transaction becomes a user.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.users (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  handle       text NOT NULL UNIQUE CHECK (handle ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  display_name text CHECK (length(display_name) <= 200),
  created_at   timestamptz NOT NULL,
  created_by   uuid NOT NULL,
  updated_at   timestamptz NOT NULL,
  updated_by   uuid
);
COMMENT ON TABLE memoriesdb.users IS
  'The owners of memories. A user sees only its own row. Create with memoriesdb.create_user().';

CREATE TABLE memoriesdb.api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES memoriesdb.users ON DELETE CASCADE,
  key_hash     bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
  key_prefix   text NOT NULL,
  revoked_at   timestamptz,
  created_at   timestamptz NOT NULL,
  created_by   uuid,
  updated_at   timestamptz NOT NULL,
  updated_by   uuid
);
COMMENT ON TABLE memoriesdb.api_keys IS
  'API keys: only the SHA-256 of a key is stored; the plaintext is returned once by create_api_key(). key_prefix (the first 12 characters) lets a user tell keys apart. created_by is NULL for a key the application provisioned with no user context.';
CREATE INDEX api_keys_user_id ON memoriesdb.api_keys (user_id);

ALTER TABLE memoriesdb.users ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE memoriesdb.api_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY users_owner ON memoriesdb.users TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY users_self ON memoriesdb.users FOR SELECT TO memoriesdb_app
  USING (id = (SELECT memoriesdb.current_user_id()));
CREATE POLICY api_keys_owner ON memoriesdb.api_keys TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY api_keys_self ON memoriesdb.api_keys FOR SELECT TO memoriesdb_app
  USING (user_id = (SELECT memoriesdb.current_user_id()));
GRANT SELECT ON memoriesdb.users, memoriesdb.api_keys TO memoriesdb_app;

CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.users FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.users FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row();
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.api_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.api_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row();

CREATE FUNCTION memoriesdb.require_user() RETURNS uuid
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
COMMENT ON FUNCTION memoriesdb.require_user() IS
  'The context user, checked to exist; MDB01 when there is no context, MDB02 when the context names no user. Every write calls it first.';
GRANT EXECUTE ON FUNCTION memoriesdb.require_user() TO memoriesdb_app;

CREATE FUNCTION memoriesdb.create_user(handle text, display_name text DEFAULT NULL) RETURNS uuid
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
GRANT EXECUTE ON FUNCTION memoriesdb.create_user(text, text) TO memoriesdb_app;

CREATE FUNCTION memoriesdb.create_api_key(user_id uuid) RETURNS text
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
GRANT EXECUTE ON FUNCTION memoriesdb.create_api_key(uuid) TO memoriesdb_app;

CREATE FUNCTION memoriesdb.revoke_api_key(api_key text) RETURNS void
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
GRANT EXECUTE ON FUNCTION memoriesdb.revoke_api_key(text) TO memoriesdb_app;

CREATE FUNCTION memoriesdb.authenticate(api_key text) RETURNS uuid
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
COMMENT ON FUNCTION memoriesdb.authenticate(text) IS
  'Checks an API key and sets app.current_user to its user for the current transaction only; MDB10 for a wrong or revoked key. Call it first in every transaction.';
GRANT EXECUTE ON FUNCTION memoriesdb.authenticate(text) TO memoriesdb_app;

COMMIT;
