-- Deploy memoriesdb:api_sharing to pg
-- Reworked after @v0.3.0 (released version: api_sharing@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: api_sharing@v0.2.0
-- requires: internal_schema
-- Live functions of sharing and transfer: share, unshare, transfer.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework api_sharing`.
-- api_sharing@v0.1.0.sql is the released version of this change (history, superseded by this file).
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.require_other_user(user_id uuid, uid uuid, role text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF user_id IS NULL OR NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = user_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB02', MESSAGE = 'unknown user', DETAIL = format('%s %s', role, user_id);
  END IF;
  IF user_id = uid THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = format('the %s must be another user', role);
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.require_other_user(uuid, uuid, text) IS
  'Internal: MDB02 unless user_id names a user, MDB12 when it is the caller itself (role names the argument in the message: grantee, new owner).';

CREATE OR REPLACE FUNCTION memoriesdb.share(memory_id uuid, grantee uuid, permission text DEFAULT 'read',
                                 expires_at timestamptz DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  grant_id uuid;
BEGIN
  PERFORM 1 FROM memoriesdb.memories AS t WHERE t.id = share.memory_id FOR UPDATE;
  PERFORM memoriesdb_internal.require_owner(share.memory_id, uid, 'share');
  PERFORM memoriesdb_internal.require_other_user(share.grantee, uid, 'grantee');
  IF share.permission IS NULL OR share.permission NOT IN ('read', 'write') THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'invalid permission',
      DETAIL = format('permission %L', share.permission), HINT = 'read or write';
  END IF;
  IF share.expires_at <= statement_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'expires_at is in the past',
      DETAIL = format('expires_at %s', share.expires_at);
  END IF;
  INSERT INTO memoriesdb.memory_grants AS g (memory_id, grantee_id, owner_id, permission, expires_at)
  VALUES (share.memory_id, share.grantee, uid, share.permission, share.expires_at)
  ON CONFLICT ON CONSTRAINT memory_grants_memory_id_grantee_id_key DO UPDATE
     SET permission = EXCLUDED.permission, expires_at = EXCLUDED.expires_at
  RETURNING g.id INTO grant_id;
  RETURN grant_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.share(uuid, uuid, text, timestamptz) IS
  'Owner only: lets grantee read (permission read) or also revise (write) the memory until expires_at (NULL: until unshared). Sharing again replaces the grant. Returns the grant id.';

CREATE OR REPLACE FUNCTION memoriesdb.unshare(memory_id uuid, grantee uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  PERFORM memoriesdb_internal.require_owner(unshare.memory_id, uid, 'unshare');
  DELETE FROM memoriesdb.memory_grants AS g WHERE g.memory_id = unshare.memory_id AND g.grantee_id = unshare.grantee;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION memoriesdb.unshare(uuid, uuid) IS 'Owner only: removes grantee''s grant on the memory; returns whether there was one.';

CREATE OR REPLACE FUNCTION memoriesdb.transfer(memory_id uuid, new_owner uuid, note text DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  transfer_id uuid;
BEGIN
  PERFORM 1 FROM memoriesdb.memories AS t WHERE t.id = transfer.memory_id FOR UPDATE;
  PERFORM memoriesdb_internal.require_owner(transfer.memory_id, uid, 'transfer');
  PERFORM memoriesdb_internal.require_other_user(transfer.new_owner, uid, 'new owner');
  IF length(transfer.note) > 2000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'note too long', HINT = 'at most 2000 characters';
  END IF;
  UPDATE memoriesdb.memories AS t SET owner_id = transfer.new_owner WHERE t.id = transfer.memory_id;
  -- the new owner needs no grant; other grants now belong to the new owner, who may unshare them
  DELETE FROM memoriesdb.memory_grants AS g WHERE g.memory_id = transfer.memory_id AND g.grantee_id = transfer.new_owner;
  UPDATE memoriesdb.memory_grants AS g SET owner_id = transfer.new_owner WHERE g.memory_id = transfer.memory_id;
  INSERT INTO memoriesdb.memory_transfers AS x (memory_id, from_owner, to_owner, note)
  VALUES (transfer.memory_id, uid, transfer.new_owner, transfer.note)
  RETURNING x.id INTO transfer_id;
  RETURN transfer_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.transfer(uuid, uuid, text) IS
  'Owner only: makes new_owner the owner and records the transfer (from, to, by, when, note). The previous owner keeps no access unless the new owner shares it back; created_by stays the creator. Existing grants to others stay, now under the new owner.';

RESET ROLE;   -- created as the deploying superuser; ownership set below, in this transaction
-- The grants the caller gave (on memories it owns) or received: what a client used
-- to SELECT from memory_grants. Owned by memoriesdb_reader: row-level security decides.
CREATE OR REPLACE FUNCTION memoriesdb.list_grants(memory_id uuid DEFAULT NULL)
RETURNS TABLE (memory_id uuid, grantee_id uuid, permission text, expires_at timestamptz, received boolean, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT g.memory_id, g.grantee_id, g.permission, g.expires_at, g.grantee_id = memoriesdb.current_user_id(), g.created_at
    FROM memoriesdb.memory_grants AS g
   WHERE list_grants.memory_id IS NULL OR g.memory_id = list_grants.memory_id
   ORDER BY g.created_at, g.memory_id, g.grantee_id
$$;
COMMENT ON FUNCTION memoriesdb.list_grants(uuid) IS
  'The grants the context user gave on the memories it owns and those it received (memory_id: only that memory''s): grantee, permission, expiry (an expired grant is listed but gives nothing), received = a grant to the caller. Row-level security decides.';
ALTER FUNCTION memoriesdb.list_grants(uuid) OWNER TO memoriesdb_reader;

COMMIT;
