-- Deploy memoriesdb:context to pg
-- Reworked after @v0.4.0 (released version: context@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: context@v0.1.0
-- requires: internal_schema
-- requires: identity
-- Live functions of the user context: current_user_id(): who the transaction acts for (proven or vouched for); context_proof(),
-- context_vouched_by(); raise_not_found(): the one "not found" error.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework context`.
-- context@v0.1.0.sql is the released version of this change (history, superseded by this file).
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- The proof authenticate() mints for a user: HMAC-SHA-256 under the private
-- context key of the user, this backend process and this transaction's start
-- (integer microseconds: independent of TimeZone and DateStyle). Another session
-- has another pid, another transaction another start: a proof is good for the
-- transaction that minted it only. A plain expression of the key's pads (no FROM,
-- no SET, not SECURITY DEFINER), so PostgreSQL inlines it where it is used; only
-- the owner can read the pads it is given (memoriesdb_internal.context_key).
CREATE OR REPLACE FUNCTION memoriesdb_internal.context_proof(user_id text, ipad bytea, opad bytea) RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  SELECT pg_catalog.encode(pg_catalog.sha256(opad OPERATOR(pg_catalog.||) pg_catalog.sha256(ipad OPERATOR(pg_catalog.||)
           pg_catalog.convert_to(user_id OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid()::text
             OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||)
             (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) OPERATOR(pg_catalog.*) 1000000)::bigint::text,
           'UTF8'))), 'hex')
$$;
COMMENT ON FUNCTION memoriesdb_internal.context_proof(text, bytea, bytea) IS
  'Internal: the proof of a context for user_id in this backend process and this transaction: hex HMAC-SHA-256 (RFC 2104, from the key''s pads ipad/opad in memoriesdb_internal.context_key) of user_id|pid|transaction start in microseconds. PARALLEL RESTRICTED: a parallel worker has another pid.';

-- The one step that needs the key: SECURITY DEFINER, so it is a function of its
-- own, and current_user_id() stays a plain expression PostgreSQL inlines (a
-- backend's context costs no function call at all). A yes/no on a proof the caller
-- already holds: it mints nothing and reveals nothing about the key.
CREATE OR REPLACE FUNCTION memoriesdb.context_proven(user_id text, proof text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN proof IS NOT NULL AND proof <> '' AND proof = (
    SELECT memoriesdb_internal.context_proof(user_id, k.ipad, k.opad) FROM memoriesdb_internal.context_key AS k);
END
$$;
COMMENT ON FUNCTION memoriesdb.context_proven(text, text) IS
  'Is proof the one authenticate() minted for user_id in this transaction of this session? What current_user_id() asks for a login that is not a memoriesdb_backend. Answers yes or no about a proof the caller holds: it mints none.';

CREATE OR REPLACE FUNCTION memoriesdb.current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  -- NULL when unset, empty (after a transaction-local set_config the setting
  -- reads '' for the rest of the session) or not a uuid (a regex test, not a cast
  -- that could fail). Then: a backend login vouches; anyone else needs the proof.
  -- CASE fixes the order: the proof is checked only when the login is no backend,
  -- and only when this API call has not checked the same uuid and proof already.
  -- memoriesdb.context_checked is trusted because every SECURITY DEFINER function a
  -- client may call resets it on entry (SET memoriesdb.context_checked = '') and
  -- restores it on exit: inside a call, only the ledger's own code has written it
  -- (memoriesdb_internal.context_user(), after a proof verified); outside any call
  -- a client may write what it likes, and it is not even read: the note counts only
  -- while the ledger's owner or reader role is in force (db/tests/01-schema.sql).
  -- No SET clause, not SECURITY DEFINER, one expression: PostgreSQL inlines it.
  SELECT CASE
    WHEN pg_catalog.current_setting('app.current_user', true) IS NULL
      OR pg_catalog.current_setting('app.current_user', true) OPERATOR(pg_catalog.!~)
         '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' THEN NULL
    WHEN pg_catalog.pg_has_role(SESSION_USER, 'memoriesdb_backend', 'MEMBER') THEN pg_catalog.current_setting('app.current_user', true)::pg_catalog.uuid
    -- proven once in this API call (memoriesdb_internal.context_user()): the same uuid and proof, and
    -- inside the ledger's own functions (no client is, or may SET ROLE to, their owners)
    WHEN CURRENT_USER OPERATOR(pg_catalog.=) ANY (ARRAY['memoriesdb_owner', 'memoriesdb_reader']::pg_catalog.name[])
     AND pg_catalog.current_setting('memoriesdb.context_checked', true) OPERATOR(pg_catalog.=)
         (pg_catalog.current_setting('app.current_user', true) OPERATOR(pg_catalog.||) '|'
          OPERATOR(pg_catalog.||) pg_catalog.current_setting('app.current_user_proof', true))
      THEN pg_catalog.current_setting('app.current_user', true)::pg_catalog.uuid
    WHEN memoriesdb.context_proven(pg_catalog.current_setting('app.current_user', true),
                                   pg_catalog.current_setting('app.current_user_proof', true))
      THEN pg_catalog.current_setting('app.current_user', true)::pg_catalog.uuid
  END
$$;
COMMENT ON FUNCTION memoriesdb.current_user_id() IS
  'The context user, or NULL. app.current_user (transaction-local) counts only when the login (session_user) is a member of memoriesdb_backend, trusted to have authenticated its users itself, or when app.current_user_proof is the proof authenticate() minted for it in this transaction of this session (context_proven(), or once per API call: memoriesdb.context_checked, see memoriesdb_internal.context_user()). A bare uuid from any other login is nobody. STABLE (never IMMUTABLE) and PARALLEL RESTRICTED: policies call it as (SELECT memoriesdb.current_user_id()), once per query, in the leader.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.context_vouched_by() RETURNS name
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  -- a context believed because the login is a backend, not because it was proven
  SELECT CASE
    WHEN memoriesdb.current_user_id() IS NULL
      OR NOT pg_catalog.pg_has_role(SESSION_USER, 'memoriesdb_backend', 'MEMBER') THEN NULL
    WHEN memoriesdb.context_proven(pg_catalog.current_setting('app.current_user', true),
                                   pg_catalog.current_setting('app.current_user_proof', true)) THEN NULL
    ELSE SESSION_USER END
$$;
COMMENT ON FUNCTION memoriesdb_internal.context_vouched_by() IS
  'Internal: the login (session_user) that vouches for the context when the context is believed because that login is a member of memoriesdb_backend; NULL when the context was proven by an API key (authenticate()), or there is none.';

-- Which user ids a function may show its caller. A tenant learns the ids of users it
-- already deals with: itself, the owner of a memory it may see, and whoever it has
-- shared or transferred with (either way: it passed their id, or they passed its).
-- Every other id (the creator of a memory that changed hands before reaching it, a
-- write grantee of the same owner who revised it, a stranger's refused attempt) is
-- shown as a pseudonym: stable for this viewer (the same unknown user is recognisable
-- across rows and calls), different for every viewer, never the id, no user's id.
CREATE OR REPLACE FUNCTION memoriesdb_internal.disclosed_user(user_id uuid, viewer uuid, owner_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  h text;
BEGIN
  IF user_id IS NULL OR user_id = viewer OR user_id = owner_id
     OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                 WHERE (g.grantee_id = viewer AND g.owner_id = user_id) OR (g.grantee_id = user_id AND g.owner_id = viewer))
     OR EXISTS (SELECT 1 FROM memoriesdb.memory_transfers AS x
                 WHERE (x.to_owner = viewer AND x.from_owner = user_id) OR (x.to_owner = user_id AND x.from_owner = viewer)) THEN
    RETURN user_id;
  END IF;
  SELECT encode(sha256(k.opad || sha256(k.ipad || convert_to(format('pseudonym|%s|%s', viewer, user_id), 'UTF8'))), 'hex') INTO h
    FROM memoriesdb_internal.context_key AS k;   -- HMAC-SHA-256 under the context key (see context_proof())
  -- an RFC 9562 version 8 (custom) uuid: never one gen_random_uuid() makes (version 4)
  RETURN overlay(overlay(left(h, 32) PLACING '8' FROM 13 FOR 1) PLACING '8' FROM 17 FOR 1)::uuid;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.disclosed_user(uuid, uuid, uuid) IS
  'Internal: user_id as the functions show it to viewer: itself when it is the viewer, the memory''s owner (owner_id), or a user the viewer has shared or transferred with in either direction; otherwise a pseudonym (a version 8 uuid from an HMAC under the context key, stable per viewer, different for each). No tenant reads the id of a user it does not deal with.';

-- Refusals are recorded where they are raised (and failed authentications with them).
CREATE OR REPLACE FUNCTION memoriesdb_internal.raise_not_found(what text, id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM memoriesdb_internal.record_refusal('MDB03', CASE WHEN what = 'memory' THEN id END);
  RAISE EXCEPTION USING ERRCODE = 'MDB03', MESSAGE = what || ' not found',
    DETAIL = format('%s %s', what, id),
    HINT = 'the id does not exist or is not visible to you';
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.raise_not_found(text, uuid) IS
  'Internal: one error (MDB03) for "does not exist" and "not visible", so existence never leaks.';

COMMIT;
