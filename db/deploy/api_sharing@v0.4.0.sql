-- Deploy memoriesdb:api_sharing to pg
-- Reworked after @v0.3.0 (released version: api_sharing@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: api_sharing@v0.2.0
-- requires: internal_schema
-- Live functions of sharing and transfer: share, unshare, transfer, and the offers they make when the
-- recipient has not accepted the sender (accept_offer, decline_offer, offers, offers_sent, withdraw_offer,
-- accept_sender, forget_sender, trusted_senders). The tables: offers.sql.
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

-- Does recipient take what sender sends without an offer? (accept_sender() said so)
CREATE OR REPLACE FUNCTION memoriesdb_internal.accepts_from(recipient uuid, sender uuid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM memoriesdb.accepted_senders AS a
                  WHERE a.user_id = accepts_from.recipient AND a.sender_id = accepts_from.sender)
$$;
COMMENT ON FUNCTION memoriesdb_internal.accepts_from(uuid, uuid) IS
  'Internal: whether recipient accepted sender once for all (accept_sender()), so that sender''s shares and transfers take effect at once instead of waiting as offers.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.effect_share(grant_id uuid, memory_id uuid, owner_id uuid, grantee uuid,
                                                            permission text, expires_at timestamptz) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  gid uuid;
BEGIN
  INSERT INTO memoriesdb.memory_grants AS g (id, memory_id, grantee_id, owner_id, permission, expires_at)
  VALUES (effect_share.grant_id, effect_share.memory_id, effect_share.grantee, effect_share.owner_id,
          effect_share.permission, effect_share.expires_at)
  ON CONFLICT ON CONSTRAINT memory_grants_memory_id_grantee_id_key DO UPDATE
     SET permission = EXCLUDED.permission, expires_at = EXCLUDED.expires_at
  RETURNING g.id INTO gid;
  RETURN gid;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.effect_share(uuid, uuid, uuid, uuid, text, timestamptz) IS
  'Internal: the grant itself (a new one gets grant_id; an existing one keeps its id and takes the new permission and expiry). Called by share() for a recipient who accepted the sender or already holds an unexpired grant, and by accept_offer().';

CREATE OR REPLACE FUNCTION memoriesdb_internal.effect_transfer(transfer_id uuid, memory_id uuid, from_owner uuid, to_owner uuid,
                                                               note text) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  tid uuid;
BEGIN
  UPDATE memoriesdb.memories AS t SET owner_id = effect_transfer.to_owner WHERE t.id = effect_transfer.memory_id;
  -- the new owner needs no grant; other grants now belong to the new owner, who may unshare them
  DELETE FROM memoriesdb.memory_grants AS g
   WHERE g.memory_id = effect_transfer.memory_id AND g.grantee_id = effect_transfer.to_owner;
  UPDATE memoriesdb.memory_grants AS g SET owner_id = effect_transfer.to_owner WHERE g.memory_id = effect_transfer.memory_id;
  -- the former owner's pending offers of this memory are void: it can give nothing of it any more
  DELETE FROM memoriesdb.memory_offers AS o
   WHERE o.memory_id = effect_transfer.memory_id AND o.sender_id = effect_transfer.from_owner;
  INSERT INTO memoriesdb.memory_transfers AS x (id, memory_id, from_owner, to_owner, note)
  VALUES (effect_transfer.transfer_id, effect_transfer.memory_id, effect_transfer.from_owner, effect_transfer.to_owner,
          effect_transfer.note)
  RETURNING x.id INTO tid;
  RETURN tid;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.effect_transfer(uuid, uuid, uuid, uuid, text) IS
  'Internal: the change of owner itself (grants follow the memory, the former owner''s pending offers of it are dropped, the custody row gets transfer_id). Called by transfer() for a recipient who accepted the sender, and by accept_offer().';

CREATE OR REPLACE FUNCTION memoriesdb_internal.offer(kind text, memory_id uuid, sender uuid, recipient uuid, level text,
                                                     grant_expires_at timestamptz, note text) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  lifetime numeric := coalesce(memoriesdb.setting('offer_lifetime_seconds')::numeric, 604800);
  max_pending integer := coalesce(memoriesdb.setting('offer_max_pending')::integer, 1000);
  until timestamptz := statement_timestamp() + make_interval(secs => lifetime::double precision);
  pending bigint;
  offer_id uuid;
BEGIN
  -- an offer of a grant that ends earlier ends with it
  IF offer.grant_expires_at IS NOT NULL AND offer.grant_expires_at < until THEN
    until := offer.grant_expires_at;
  END IF;
  -- this sender's expired offers to this recipient can never be accepted: drop them (the audit log keeps them)
  DELETE FROM memoriesdb.memory_offers AS o
   WHERE o.sender_id = offer.sender AND o.recipient_id = offer.recipient AND o.expires_at <= statement_timestamp();
  SELECT count(*) INTO pending
    FROM (SELECT 1 FROM memoriesdb.memory_offers AS o
           WHERE o.sender_id = offer.sender AND o.recipient_id = offer.recipient
             AND NOT (o.memory_id = offer.memory_id AND o.kind = offer.kind)
           LIMIT max_pending) AS x;
  IF pending >= max_pending THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'too many pending offers to this recipient',
      DETAIL = format('%s unexpired offers from you to %s', pending, offer.recipient),
      HINT = 'wait until the recipient accepts or declines some, or withdraw_offer() them (config offer_max_pending)';
  END IF;
  INSERT INTO memoriesdb.memory_offers AS o (kind, memory_id, sender_id, recipient_id, level, grant_expires_at, note,
                                             offered_at, expires_at)
  VALUES (offer.kind, offer.memory_id, offer.sender, offer.recipient, offer.level, offer.grant_expires_at, offer.note,
          statement_timestamp(), until)
  ON CONFLICT ON CONSTRAINT memory_offers_one_per_kind DO UPDATE
     SET sender_id = EXCLUDED.sender_id, level = EXCLUDED.level, grant_expires_at = EXCLUDED.grant_expires_at,
         note = EXCLUDED.note, offered_at = EXCLUDED.offered_at, expires_at = EXCLUDED.expires_at
  RETURNING o.id INTO offer_id;
  RETURN offer_id;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.offer(text, uuid, uuid, uuid, text, timestamptz, text) IS
  'Internal: records a pending offer (a share or a transfer the recipient has not accepted) and returns its id; offering the same memory to the same recipient again replaces the pending offer (same id, new terms, new expiry). It expires offer_lifetime_seconds from now, or with the grant it offers if that ends sooner. MDB12 past offer_max_pending unexpired offers from one sender to one recipient.';

CREATE OR REPLACE FUNCTION memoriesdb.share(memory_id uuid, grantee uuid, permission text DEFAULT 'read',
                                 expires_at timestamptz DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
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
  -- at once only for a grantee who accepted this sender, or who already holds (so accepted) an unexpired grant on it
  IF memoriesdb_internal.accepts_from(share.grantee, uid)
     OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                 WHERE g.memory_id = share.memory_id AND g.grantee_id = share.grantee
                   AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())) THEN
    DELETE FROM memoriesdb.memory_offers AS o
     WHERE o.memory_id = share.memory_id AND o.recipient_id = share.grantee AND o.kind = 'share';
    RETURN memoriesdb_internal.effect_share(gen_random_uuid(), share.memory_id, uid, share.grantee,
                                            share.permission, share.expires_at);
  END IF;
  RETURN memoriesdb_internal.offer('share', share.memory_id, uid, share.grantee, share.permission, share.expires_at, NULL);
END
$$;
COMMENT ON FUNCTION memoriesdb.share(uuid, uuid, text, timestamptz) IS
  'Owner only: lets grantee read (permission read) or also revise (write) the memory until expires_at (NULL: until unshared). Takes effect at once only when the grantee accepted the caller as a sender (accept_sender()) or already holds an unexpired grant on it (sharing again replaces the grant); otherwise it waits as an offer, invisible to the grantee until accept_offer(), for at most config offer_lifetime_seconds. Returns the grant id, or the offer id (which becomes the grant''s id on acceptance).';

CREATE OR REPLACE FUNCTION memoriesdb.unshare(memory_id uuid, grantee uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  had_grant boolean;
BEGIN
  PERFORM memoriesdb_internal.require_owner(unshare.memory_id, uid, 'unshare');
  DELETE FROM memoriesdb.memory_grants AS g WHERE g.memory_id = unshare.memory_id AND g.grantee_id = unshare.grantee;
  had_grant := FOUND;
  DELETE FROM memoriesdb.memory_offers AS o
   WHERE o.memory_id = unshare.memory_id AND o.recipient_id = unshare.grantee AND o.kind = 'share';
  RETURN had_grant OR FOUND;
END
$$;
COMMENT ON FUNCTION memoriesdb.unshare(uuid, uuid) IS
  'Owner only: removes grantee''s grant on the memory, and a pending share offer of it to grantee; returns whether there was either.';

CREATE OR REPLACE FUNCTION memoriesdb.transfer(memory_id uuid, new_owner uuid, note text DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  PERFORM 1 FROM memoriesdb.memories AS t WHERE t.id = transfer.memory_id FOR UPDATE;
  PERFORM memoriesdb_internal.require_owner(transfer.memory_id, uid, 'transfer');
  PERFORM memoriesdb_internal.require_other_user(transfer.new_owner, uid, 'new owner');
  IF length(transfer.note) > 2000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'note too long', HINT = 'at most 2000 characters';
  END IF;
  IF memoriesdb_internal.accepts_from(transfer.new_owner, uid) THEN
    RETURN memoriesdb_internal.effect_transfer(gen_random_uuid(), transfer.memory_id, uid, transfer.new_owner, transfer.note);
  END IF;
  RETURN memoriesdb_internal.offer('transfer', transfer.memory_id, uid, transfer.new_owner, 'owner', NULL, transfer.note);
END
$$;
COMMENT ON FUNCTION memoriesdb.transfer(uuid, uuid, text) IS
  'Owner only: makes new_owner the owner and records the transfer (from, to, by, when, note). Takes effect at once only when new_owner accepted the caller as a sender (accept_sender()); otherwise it waits as an offer (the memory stays the caller''s) until new_owner''s accept_offer(), for at most config offer_lifetime_seconds. Returns the transfer id, or the offer id (which becomes the transfer''s id on acceptance). The previous owner keeps no access unless the new owner shares it back; created_by stays the creator. Existing grants to others stay, now under the new owner.';

CREATE OR REPLACE FUNCTION memoriesdb.accept_offer(offer_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  mid uuid;
  o memoriesdb.memory_offers;
BEGIN
  -- lock the memory before the offer, in the order share() and transfer() take them
  SELECT x.memory_id INTO mid FROM memoriesdb.memory_offers AS x WHERE x.id = accept_offer.offer_id AND x.recipient_id = uid;
  IF FOUND THEN
    PERFORM 1 FROM memoriesdb.memories AS t WHERE t.id = mid FOR UPDATE;
    SELECT * INTO o FROM memoriesdb.memory_offers AS x WHERE x.id = accept_offer.offer_id AND x.recipient_id = uid FOR UPDATE;
  END IF;
  IF o.id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB17', MESSAGE = 'offer not found', DETAIL = format('offer %s', accept_offer.offer_id),
      HINT = 'the id is unknown, not an offer to you, or already accepted, declined or withdrawn: memoriesdb.offers() lists yours';
  END IF;
  IF o.expires_at <= statement_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB18', MESSAGE = 'offer expired',
      DETAIL = format('offer %s expired at %s', o.id, o.expires_at),
      HINT = 'an expired offer is never accepted: ask the sender to offer it again (decline_offer() removes it)';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.memories AS m WHERE m.id = o.memory_id AND m.owner_id = o.sender_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB19', MESSAGE = 'offer can no longer be accepted',
      DETAIL = format('offer %s: the memory is no longer the sender''s', o.id),
      HINT = 'decline_offer() removes it';
  END IF;
  DELETE FROM memoriesdb.memory_offers AS x WHERE x.id = o.id;
  IF o.kind = 'share' THEN
    PERFORM memoriesdb_internal.effect_share(o.id, o.memory_id, o.sender_id, uid, o.level, o.grant_expires_at);
  ELSE
    PERFORM memoriesdb_internal.effect_transfer(o.id, o.memory_id, o.sender_id, uid, o.note);
  END IF;
  RETURN o.memory_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.accept_offer(uuid) IS
  'Recipient only: accepts a pending offer (from offers()): a share becomes a grant (its id the offer''s id), a transfer makes the caller the owner (the custody row''s id the offer''s id). Returns the memory id, readable from now on. MDB17 when the offer is unknown, not to the caller or already settled; MDB18 when it has expired (never accepted then); MDB19 when the memory is no longer the sender''s.';

CREATE OR REPLACE FUNCTION memoriesdb.decline_offer(offer_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  DELETE FROM memoriesdb.memory_offers AS x WHERE x.id = decline_offer.offer_id AND x.recipient_id = uid;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB17', MESSAGE = 'offer not found', DETAIL = format('offer %s', decline_offer.offer_id),
      HINT = 'the id is unknown, not an offer to you, or already accepted, declined or withdrawn: memoriesdb.offers() lists yours';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb.decline_offer(uuid) IS
  'Recipient only: refuses a pending offer (expired ones too); nothing of the memory ever reaches the caller. MDB17 when the offer is unknown, not to the caller or already settled.';

CREATE OR REPLACE FUNCTION memoriesdb.withdraw_offer(offer_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  DELETE FROM memoriesdb.memory_offers AS x WHERE x.id = withdraw_offer.offer_id AND x.sender_id = uid;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB17', MESSAGE = 'offer not found', DETAIL = format('offer %s', withdraw_offer.offer_id),
      HINT = 'the id is unknown, not an offer of yours, or already accepted, declined or withdrawn: memoriesdb.offers_sent() lists yours';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb.withdraw_offer(uuid) IS
  'Sender only: takes back a pending offer (expired ones too) before the recipient accepts it. MDB17 when the offer is unknown, not the caller''s or already settled.';

CREATE OR REPLACE FUNCTION memoriesdb.offers()
RETURNS TABLE (id uuid, kind text, sender uuid, memory_id uuid, level text, offered_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  RETURN QUERY
    SELECT o.id, o.kind, o.sender_id, o.memory_id, o.level, o.offered_at, o.expires_at
      FROM memoriesdb.memory_offers AS o
     WHERE o.recipient_id = uid AND o.expires_at > statement_timestamp()
     ORDER BY o.offered_at, o.id;
END
$$;
COMMENT ON FUNCTION memoriesdb.offers() IS
  'The caller''s pending (unexpired) offers: id, kind (share or transfer), sender, memory id, level (read, write, owner), when offered, when it expires. Never the content, metadata or a transfer''s note: those are readable only after accept_offer().';

CREATE OR REPLACE FUNCTION memoriesdb.offers_sent()
RETURNS TABLE (id uuid, kind text, recipient uuid, memory_id uuid, level text, offered_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  RETURN QUERY
    SELECT o.id, o.kind, o.recipient_id, o.memory_id, o.level, o.offered_at, o.expires_at
      FROM memoriesdb.memory_offers AS o
     WHERE o.sender_id = uid
     ORDER BY o.offered_at, o.id;
END
$$;
COMMENT ON FUNCTION memoriesdb.offers_sent() IS
  'The caller''s outgoing offers not yet accepted, declined or withdrawn, expired ones included (expires_at says): withdraw_offer() takes one back.';

CREATE OR REPLACE FUNCTION memoriesdb.accept_sender(sender uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  PERFORM memoriesdb_internal.require_other_user(accept_sender.sender, uid, 'sender');
  INSERT INTO memoriesdb.accepted_senders AS a (user_id, sender_id) VALUES (uid, accept_sender.sender)
  ON CONFLICT ON CONSTRAINT accepted_senders_once DO NOTHING;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION memoriesdb.accept_sender(uuid) IS
  'Accepts a sender once for all: from now on its shares and transfers to the caller take effect at once, as before offers existed (offers already pending stay pending: accept_offer() them). Returns whether the sender was new. forget_sender() undoes it.';

CREATE OR REPLACE FUNCTION memoriesdb.forget_sender(sender uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  DELETE FROM memoriesdb.accepted_senders AS a WHERE a.user_id = uid AND a.sender_id = forget_sender.sender;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION memoriesdb.forget_sender(uuid) IS
  'Revokes accept_sender(): the sender''s next shares and transfers to the caller wait as offers again. What was already accepted stays (unshare or decline is the owner''s and the caller''s own business). Returns whether the sender was accepted.';

CREATE OR REPLACE FUNCTION memoriesdb.trusted_senders() RETURNS TABLE (sender uuid, accepted_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  RETURN QUERY
    SELECT a.sender_id, a.created_at FROM memoriesdb.accepted_senders AS a WHERE a.user_id = uid ORDER BY a.created_at, a.sender_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.trusted_senders() IS
  'The senders the caller accepted once for all (accept_sender()), and since when.';

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
