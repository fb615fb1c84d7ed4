-- Deploy memoriesdb:api_history to pg
-- requires: context
-- requires: users
-- requires: access_log_fn
-- requires: api_sharing
-- requires: identity
-- Live functions of "as of a time" (issue 14, part 4): who_could_read(memory_id, at) and
-- recall_as_of(memory_id, at), for the memory's current owner.
-- Both read the audit log only (memoriesdb.audit_log: the rows of memories, memory_revisions
-- and memory_grants about the memory, with the state after each change), never the current
-- tables' state, so they answer for times before a revision, an unshare, an expiry or a
-- transfer. A change counts from its audit row's created_at: the start of the transaction
-- that made it (now(), the time every row of that transaction is stamped with).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework api_history`
-- after a tag. Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- Who may ask, and about when: the memory's owner now (custody moves with a transfer:
-- the new owner asks about times before it, the former owner no longer asks at all),
-- about a time that is not in the future.
CREATE OR REPLACE FUNCTION memoriesdb_internal.require_custodian(memory_id uuid, at timestamptz) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  -- one answer (MDB03, logged as a refusal) for a missing, forgotten, invisible or not-owned
  -- memory: a grantee, a former owner and a stranger learn nothing of its history
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.memories AS m
                  WHERE m.id = require_custodian.memory_id AND m.owner_id = uid) THEN
    PERFORM memoriesdb_internal.raise_not_found('memory', require_custodian.memory_id);
  END IF;
  IF require_custodian.at IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'a time is required',
      HINT = 'pass the time to look at, e.g. now() - interval ''1 day''';
  END IF;
  IF require_custodian.at > statement_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB27', MESSAGE = 'cannot look at a time in the future',
      DETAIL = format('asked about %s; it is now %s', require_custodian.at, statement_timestamp()),
      HINT = 'the history answers for times up to now; for the present use recall() and list_grants()';
  END IF;
  RETURN uid;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.require_custodian(uuid, timestamptz) IS
  'Internal: the context user when it owns the memory now (MDB01/MDB02 without a valid context; MDB03, logged, for anyone else, the same as for a missing id), and at is given (MDB12) and not in the future (MDB27). For who_could_read() and recall_as_of().';

CREATE OR REPLACE FUNCTION memoriesdb.who_could_read(memory_id uuid, at timestamptz)
RETURNS TABLE (user_id uuid, level text, since timestamptz, expires_at timestamptz, given_by uuid, vouched_by name)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  viewer uuid := memoriesdb_internal.require_custodian(who_could_read.memory_id, who_could_read.at);
BEGIN
  RETURN QUERY
    WITH hist AS MATERIALIZED (   -- what the audit log holds about the memory up to at
      SELECT a.id, a.created_at, a.created_by, a.table_name, a.row_id, a.op, a.old_row, a.new_row, a.vouched_by
        FROM memoriesdb.audit_log AS a
       WHERE a.memory_id = who_could_read.memory_id AND a.created_at <= who_could_read.at
         AND a.table_name IN ('memories', 'memory_grants')
    ), memory_state AS (          -- the memory's row as it was at `at` (none: it did not exist yet)
      SELECT h.op, h.new_row FROM hist AS h WHERE h.table_name = 'memories' ORDER BY h.id DESC LIMIT 1
    ), owner_write AS (           -- the write that made its owner at `at` the owner: creation, or a transfer
                                  -- (given by the owner before it: the caller of transfer(), or the sender of
                                  -- the offer that the new owner's accept_offer() took)
      SELECT h.created_at, h.created_by, h.vouched_by,
             coalesce(h.old_row->>'owner_id', h.new_row->>'owner_id')::uuid AS giver FROM hist AS h
       WHERE h.table_name = 'memories'
         AND (h.op = 'INSERT' OR (h.op = 'UPDATE' AND h.old_row->'owner_id' IS DISTINCT FROM h.new_row->'owner_id'))
       ORDER BY h.id DESC LIMIT 1
    ), grant_state AS (           -- each grant as it was at `at` (deleted: unshared, or its grantee became the owner)
      SELECT DISTINCT ON (h.row_id) h.row_id, h.op, h.new_row FROM hist AS h
       WHERE h.table_name = 'memory_grants' ORDER BY h.row_id, h.id DESC
    ), grant_write AS (           -- the write that gave each grant the terms it had at `at`: share(), a new share(), or
                                  -- the grantee's accept_offer() of a share offer (given by the owner then: the grant's owner_id)
      SELECT DISTINCT ON (h.row_id) h.row_id, h.created_at, h.created_by, h.vouched_by,
             (h.new_row->>'owner_id')::uuid AS giver FROM hist AS h
       WHERE h.table_name = 'memory_grants'
         AND (h.op = 'INSERT' OR (h.op = 'UPDATE'
              AND (h.old_row->'permission', h.old_row->'expires_at') IS DISTINCT FROM (h.new_row->'permission', h.new_row->'expires_at')))
       ORDER BY h.row_id, h.id DESC
    ), readers AS (
      SELECT (s.new_row->>'owner_id')::uuid AS reader, 'owner'::text AS lvl, w.created_at AS since_at, NULL::timestamptz AS until,
             w.giver, w.created_by AS actor, w.vouched_by AS voucher, 0 AS rank
        FROM memory_state AS s, owner_write AS w
       WHERE s.op <> 'DELETE'
      UNION ALL
      SELECT (g.new_row->>'grantee_id')::uuid, g.new_row->>'permission', w.created_at, (g.new_row->>'expires_at')::timestamptz,
             w.giver, w.created_by, w.vouched_by, 1
        FROM grant_state AS g JOIN grant_write AS w ON w.row_id = g.row_id
       WHERE g.op <> 'DELETE'
         AND (g.new_row->>'expires_at' IS NULL OR (g.new_row->>'expires_at')::timestamptz > who_could_read.at)
         AND EXISTS (SELECT 1 FROM memory_state AS s WHERE s.op <> 'DELETE')
    )
    -- user ids the owner does not deal with as pseudonyms (disclosed_user()), except a user the caller
    -- gave the access to herself (she passed the id; disclosed_user() knows only the grants that still
    -- exist); the login that vouched for a write only when its author is shown by id (the login names
    -- the author's service), as access_history() does
    SELECT CASE WHEN r.giver = viewer THEN r.reader ELSE memoriesdb_internal.disclosed_user(r.reader, viewer, viewer) END,
           r.lvl, r.since_at, r.until, memoriesdb_internal.disclosed_user(r.giver, viewer, viewer),
           CASE WHEN memoriesdb_internal.disclosed_user(r.actor, viewer, viewer) IS NOT DISTINCT FROM r.actor THEN r.voucher END
      FROM readers AS r
     ORDER BY r.rank, r.since_at, 1;
  PERFORM memoriesdb_internal.log_read('who_could_read', ARRAY[who_could_read.memory_id], NULL);
END
$$;
COMMENT ON FUNCTION memoriesdb.who_could_read(uuid, timestamptz) IS
  'For the memory''s current owner: who could read it at time at, from the audit log (not the current tables, so it holds for times before a transfer, an unshare, an expiry or a revision): its owner then (level owner) and every grantee whose grant existed and had not expired at that time (level read or write, expires_at). For each, the write that gave that access (the creation or the transfer; the share, or re-share, that set the grant''s terms, or the recipient''s accept_offer() of an offered one): since: when it was made; given_by: the owner who gave the access (the creator, the former owner, the owner who shared); vouched_by: the memoriesdb_backend login that vouched for that write''s context (NULL when an API key proved it, for writes before v0.4, or when the write''s author is shown as a pseudonym). A change counts from the start of its transaction. No rows for a time before the memory existed. Users the owner does not deal with appear as pseudonyms (as in provenance()); a user the caller gave the access to is shown by id even after an unshare. One access log entry per call. MDB03 (logged) for anyone but the current owner, a former owner or a grantee included; MDB27 for a time in the future; MDB12 for a NULL time.';

CREATE OR REPLACE FUNCTION memoriesdb.recall_as_of(memory_id uuid, at timestamptz)
RETURNS TABLE (revision integer, content text, metadata jsonb, content_hash bytea, revised_at timestamptz, revised_by uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  viewer uuid := memoriesdb_internal.require_custodian(recall_as_of.memory_id, recall_as_of.at);
BEGIN
  RETURN QUERY
    WITH rev AS (                 -- the revision current at `at`: the newest one recorded by then
      SELECT (a.new_row->>'revision')::integer AS n, a.new_row->'metadata' AS meta,
             decode(substr(a.new_row->>'content_hash', 3), 'hex') AS hash, a.created_at, a.created_by
        FROM memoriesdb.audit_log AS a
       WHERE a.memory_id = recall_as_of.memory_id AND a.table_name = 'memory_revisions' AND a.op = 'INSERT'
         AND a.created_at <= recall_as_of.at
       ORDER BY (a.new_row->>'revision')::integer DESC, a.id DESC LIMIT 1
    )
    SELECT r.n,
           -- its content: the memory's row as that revision wrote it (revisions keep only the hash)
           (SELECT a.new_row->>'content' FROM memoriesdb.audit_log AS a
             WHERE a.memory_id = recall_as_of.memory_id AND a.table_name = 'memories' AND a.op IN ('INSERT', 'UPDATE')
               AND (a.new_row->>'revision')::integer = r.n
             ORDER BY a.id LIMIT 1),
           r.meta, r.hash, r.created_at, memoriesdb_internal.disclosed_user(r.created_by, viewer, viewer)
      FROM rev AS r;
  PERFORM memoriesdb_internal.log_read('recall_as_of', ARRAY[recall_as_of.memory_id], NULL);
END
$$;
COMMENT ON FUNCTION memoriesdb.recall_as_of(uuid, timestamptz) IS
  'For the memory''s current owner: the revision that was current at time at, from the audit log: its number, content, metadata, content hash (SHA-256 of the content), when it was made and by whom (a user the owner does not deal with as a pseudonym, as in provenance()). A change counts from the start of its transaction. No row for a time before the memory existed. One access log entry per call. MDB03 (logged) for anyone but the current owner, a former owner included; MDB27 for a time in the future; MDB12 for a NULL time.';

COMMIT;
