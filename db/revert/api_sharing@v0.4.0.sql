-- Revert memoriesdb:api_sharing from pg
-- Back to the functions of api_sharing as released in v0.3.0 (api_sharing@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP FUNCTION memoriesdb.list_grants(uuid);

-- added after v0.3.0: offers
DROP FUNCTION memoriesdb.accept_offer(uuid);
DROP FUNCTION memoriesdb.decline_offer(uuid);
DROP FUNCTION memoriesdb.withdraw_offer(uuid);
DROP FUNCTION memoriesdb.offers();
DROP FUNCTION memoriesdb.offers_sent();
DROP FUNCTION memoriesdb.accept_sender(uuid);
DROP FUNCTION memoriesdb.forget_sender(uuid);
DROP FUNCTION memoriesdb.trusted_senders();
DROP FUNCTION memoriesdb_internal.offer(text, uuid, uuid, uuid, text, timestamptz, text);
DROP FUNCTION memoriesdb_internal.effect_share(uuid, uuid, uuid, uuid, text, timestamptz);
DROP FUNCTION memoriesdb_internal.effect_transfer(uuid, uuid, uuid, uuid, text);
DROP FUNCTION memoriesdb_internal.accepts_from(uuid, uuid);

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

COMMIT;
