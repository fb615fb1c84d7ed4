-- Deploy memoriesdb:api_memories to pg
-- Reworked after @v0.4.0 (released version: api_memories@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: api_memories@v0.2.0
-- requires: input_limits
-- Live functions of the memory API: remember, revise, forget (writes, as the owner role) and recall, verify, provenance (reads, as memoriesdb_reader).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework api_memories`.
-- api_memories@v0.1.0.sql and api_memories@v0.2.0.sql are released versions of this change (history, superseded by this file).
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_content(content text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  max_bytes integer := memoriesdb.setting('max_content_bytes')::int;
BEGIN
  IF content IS NULL OR btrim(content, E' \t\r\n') = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB05', MESSAGE = 'content is empty', HINT = 'a memory needs some text';
  END IF;
  IF octet_length(content) > max_bytes THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB05', MESSAGE = 'content too large',
      DETAIL = format('%s bytes; the limit is %s', octet_length(content), max_bytes),
      HINT = 'split it into several memories linked with part_of, or raise config max_content_bytes';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_content(text) IS
  'Internal: MDB05 for empty content or content over config max_content_bytes (UTF-8 bytes).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_metadata(metadata jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF metadata IS NULL OR jsonb_typeof(metadata) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB06', MESSAGE = 'metadata must be a JSON object',
      DETAIL = format('got %s', coalesce(jsonb_typeof(metadata), 'NULL')), HINT = 'pass ''{}'' for none';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_metadata(jsonb) IS
  'Internal: MDB06 unless metadata is a JSON object.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_json_size(value jsonb, limit_key text, message text, hint text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  max_bytes bigint := memoriesdb.setting(limit_key)::bigint;
  size integer := octet_length(value::text);
BEGIN
  IF size > max_bytes THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB05', MESSAGE = message,
      DETAIL = format('%s bytes of JSON; the limit is %s', size, max_bytes),
      HINT = format('%s, or raise config %s', hint, limit_key);
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_json_size(jsonb, text, text, text) IS
  'Internal: MDB05 (message, DETAIL with the size and the limit, HINT naming the setting) when the JSON text of value (UTF-8 bytes, as PostgreSQL prints it) is longer than the setting limit_key.';

CREATE OR REPLACE FUNCTION memoriesdb.remember(content text, metadata jsonb DEFAULT '{}') RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.context_user();   -- the proof verified once: row stamps and audit rows believe it
  new_id uuid := gen_random_uuid();
  h bytea;
BEGIN
  -- The normal path checks the context and the input here, in two expressions whose plans
  -- the session keeps: each helper below is a SECURITY DEFINER or SET search_path call,
  -- and each setting() another (together about a tenth of a remember()). Only when a check
  -- fails do the helpers run, in the order they always ran, so they raise (and record)
  -- exactly what they always raised.
  IF uid IS NULL OR NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = uid) THEN
    uid := memoriesdb_internal.require_user();   -- MDB01 or MDB02, recorded
  END IF;
  IF content IS NULL OR btrim(content, E' \t\r\n') = ''
     OR octet_length(content) > (SELECT c.value FROM memoriesdb.config AS c WHERE c.key = 'max_content_bytes')::int
     OR metadata IS NULL OR jsonb_typeof(metadata) <> 'object'
     OR octet_length(metadata::text) > (SELECT c.value FROM memoriesdb.config AS c WHERE c.key = 'max_metadata_bytes')::bigint THEN
    PERFORM memoriesdb_internal.check_content(content);
    PERFORM memoriesdb_internal.check_metadata(metadata);
    PERFORM memoriesdb_internal.check_json_size(metadata, 'max_metadata_bytes', 'metadata too large',
                                                'keep large data in the content or in another memory');
  END IF;
  h := sha256(convert_to(content, 'UTF8'));
  INSERT INTO memoriesdb.memories (id, owner_id, content, metadata, content_hash)
  VALUES (new_id, uid, content, metadata, h);
  INSERT INTO memoriesdb.memory_revisions (memory_id, revision, content_hash, metadata, content_changed, metadata_changed)
  VALUES (new_id, 1, h, metadata, true, true);
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.remember(text, jsonb) IS
  'Stores a new memory owned and created by the context user and returns its id. Its SHA-256 is computed here; an embedding job is queued. MDB01/MDB02 without a valid context, MDB05 for empty or oversized content (max_content_bytes) or metadata (max_metadata_bytes), MDB06 for metadata that is not an object.';

CREATE OR REPLACE FUNCTION memoriesdb.revise(memory_id uuid, content text DEFAULT NULL, metadata jsonb DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  m memoriesdb.memories;
  access text;
  new_hash bytea;
  new_meta jsonb;
BEGIN
  SELECT * INTO m FROM memoriesdb.memories AS t WHERE t.id = revise.memory_id FOR UPDATE;
  access := memoriesdb_internal.access_level(revise.memory_id, uid);
  IF access IS NULL THEN PERFORM memoriesdb_internal.raise_not_found('memory', revise.memory_id); END IF;
  IF access = 'read' THEN
    PERFORM memoriesdb_internal.record_refusal('MDB04', revise.memory_id);
    RAISE EXCEPTION USING ERRCODE = 'MDB04', MESSAGE = 'not allowed to revise this memory',
      HINT = 'the owner can share it with permission ''write''';
  END IF;
  IF revise.content IS NULL AND revise.metadata IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'nothing to revise', HINT = 'pass content, metadata or both';
  END IF;
  IF revise.content IS NOT NULL THEN PERFORM memoriesdb_internal.check_content(revise.content); END IF;
  IF revise.metadata IS NOT NULL THEN
    PERFORM memoriesdb_internal.check_metadata(revise.metadata);
    PERFORM memoriesdb_internal.check_json_size(revise.metadata, 'max_metadata_bytes', 'metadata too large',
                                                'keep large data in the content or in another memory');
  END IF;
  new_hash := CASE WHEN revise.content IS NULL THEN m.content_hash ELSE sha256(convert_to(revise.content, 'UTF8')) END;
  new_meta := coalesce(revise.metadata, m.metadata);
  IF new_hash = m.content_hash AND new_meta = m.metadata THEN
    RETURN m.revision;   -- nothing changed: no new revision
  END IF;
  UPDATE memoriesdb.memories AS t
     SET content = coalesce(revise.content, t.content), content_hash = new_hash,
         metadata = new_meta, revision = t.revision + 1
   WHERE t.id = m.id;
  INSERT INTO memoriesdb.memory_revisions (memory_id, revision, content_hash, metadata, content_changed, metadata_changed)
  VALUES (m.id, m.revision + 1, new_hash, new_meta, new_hash <> m.content_hash, new_meta <> m.metadata);
  RETURN m.revision + 1;
END
$$;
COMMENT ON FUNCTION memoriesdb.revise(uuid, text, jsonb) IS
  'Changes a memory''s content and/or metadata (NULL: unchanged) and returns the new revision number; a call that changes nothing returns the current one. For the owner or a holder of an unexpired write grant. New content re-queues its embedding. MDB03 when the memory is not visible, MDB04 for a read-only grantee, MDB05/MDB06 for content or metadata refused as by remember().';

CREATE OR REPLACE FUNCTION memoriesdb_internal.require_owner(memory_id uuid, uid uuid, verb text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  access text := memoriesdb_internal.access_level(memory_id, uid);
BEGIN
  IF access IS NULL THEN PERFORM memoriesdb_internal.raise_not_found('memory', memory_id); END IF;
  IF access <> 'owner' THEN
    PERFORM memoriesdb_internal.record_refusal('MDB04', memory_id);
    RAISE EXCEPTION USING ERRCODE = 'MDB04', MESSAGE = format('only the owner may %s a memory', verb);
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.require_owner(uuid, uuid, text) IS 'Internal: MDB03 unless the memory is visible to uid, MDB04 unless uid owns it.';

CREATE OR REPLACE FUNCTION memoriesdb.forget(memory_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  PERFORM 1 FROM memoriesdb.memories AS t WHERE t.id = forget.memory_id FOR UPDATE;
  PERFORM memoriesdb_internal.require_owner(forget.memory_id, uid, 'forget');
  -- grants, edges, revisions, transfers and the queued job go with it; every
  -- row removed is written to the audit log with its last state
  DELETE FROM memoriesdb.memories AS t WHERE t.id = forget.memory_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.forget(uuid) IS
  'Removes a memory (owner only) from every read, search and traversal, with its grants, edges and history rows. The audit log keeps the record of everything removed.';

RESET ROLE;   -- replaced as the deploying superuser; ownership set below, in this transaction

CREATE OR REPLACE FUNCTION memoriesdb.recall(memory_id uuid)
RETURNS TABLE (id uuid, owner_id uuid, content text, metadata jsonb, content_hash bytea, revision integer,
               embedding_model text, embedded_at timestamptz,
               created_at timestamptz, created_by uuid, updated_at timestamptz, updated_by uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  log_ids uuid[] := ARRAY[recall.memory_id];
  log_query bytea;   -- none: not a search
BEGIN
  PERFORM memoriesdb_internal.context_user();   -- the proof verified once, before the policies below ask
  RETURN QUERY
    SELECT m.id, m.owner_id, m.content, m.metadata, m.content_hash, m.revision, m.embedding_model, m.embedded_at,
           m.created_at, m.created_by, m.updated_at, m.updated_by
      FROM memoriesdb.memories AS m WHERE m.id = recall.memory_id;
  IF NOT FOUND THEN PERFORM memoriesdb_internal.raise_not_found('memory', recall.memory_id); END IF;
  PERFORM memoriesdb_internal.record_read('recall', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.recall(uuid) IS
  'One memory with its metadata and content hash, if the caller may see it (row-level security decides: it runs as memoriesdb_reader, which the same policies bind); MDB03 otherwise, the same for a missing id. One access log entry per call; a refusal is logged too.';
ALTER FUNCTION memoriesdb.recall(uuid) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.verify(memory_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  ok boolean;
  log_ids uuid[] := ARRAY[verify.memory_id];
  log_query bytea;   -- none: not a search
BEGIN
  SELECT m.content_hash = sha256(convert_to(m.content, 'UTF8')) INTO ok
    FROM memoriesdb.memories AS m WHERE m.id = verify.memory_id;
  IF NOT FOUND THEN PERFORM memoriesdb_internal.raise_not_found('memory', verify.memory_id); END IF;
  PERFORM memoriesdb_internal.record_read('verify', log_ids, log_query);
  RETURN ok;
END
$$;
COMMENT ON FUNCTION memoriesdb.verify(uuid) IS
  'Recomputes the SHA-256 of a visible memory''s content and compares it with the stored content_hash: false means the content was changed behind the API. One access log entry per call; a refusal is logged too.';
ALTER FUNCTION memoriesdb.verify(uuid) OWNER TO memoriesdb_reader;

CREATE OR REPLACE FUNCTION memoriesdb.provenance(memory_id uuid)
RETURNS TABLE (event text, at timestamptz, actor uuid, revision integer, content_hash bytea,
               from_owner uuid, to_owner uuid, note text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  log_ids uuid[] := ARRAY[provenance.memory_id];
  log_query bytea;   -- none: not a search
  viewer uuid := memoriesdb.current_user_id();
  owner uuid;
BEGIN
  SELECT m.owner_id INTO owner FROM memoriesdb.memories AS m WHERE m.id = provenance.memory_id;
  IF NOT FOUND THEN PERFORM memoriesdb_internal.raise_not_found('memory', provenance.memory_id); END IF;
  RETURN QUERY   -- user ids the caller does not deal with are shown as pseudonyms (disclosed_user())
    SELECT e.event, e.at, memoriesdb_internal.disclosed_user(e.actor, viewer, owner), e.revision, e.content_hash,
           memoriesdb_internal.disclosed_user(e.from_owner, viewer, owner),
           memoriesdb_internal.disclosed_user(e.to_owner, viewer, owner), e.note
      FROM (SELECT CASE WHEN r.revision = 1 THEN 'created' ELSE 'revised' END AS event,
                   r.created_at AS at, r.created_by AS actor, r.revision, r.content_hash,
                   NULL::uuid AS from_owner, NULL::uuid AS to_owner, NULL::text AS note
              FROM memoriesdb.memory_revisions AS r WHERE r.memory_id = provenance.memory_id
            UNION ALL
            SELECT 'transferred', x.created_at, x.created_by, NULL, NULL, x.from_owner, x.to_owner, x.note
              FROM memoriesdb.memory_transfers AS x WHERE x.memory_id = provenance.memory_id) AS e
     ORDER BY e.at, e.event = 'transferred', e.revision;
  PERFORM memoriesdb_internal.record_read('provenance', log_ids, log_query);
END
$$;
COMMENT ON FUNCTION memoriesdb.provenance(uuid) IS
  'The chain of custody of a visible memory, oldest first: its creation (creator, hash), every revision (who, revision number, new hash) and every transfer (from, to, by, note). A user the caller does not deal with (not itself, the owner, or someone it shared or transferred with) appears as a pseudonym (stable per caller), never by id. One access log entry per call; a refusal is logged too.';
ALTER FUNCTION memoriesdb.provenance(uuid) OWNER TO memoriesdb_reader;

-- What exists and whose it is, without contents: the list a client used to
-- SELECT from the table. Owned by memoriesdb_reader, so row-level security
-- decides what it lists, exactly as for recall(). No hash (a hash lets a grantee
-- test guesses of a text offline, unlogged; recall() and verify() return it, logged).
CREATE OR REPLACE FUNCTION memoriesdb.list_memories()
RETURNS TABLE (id uuid, owned boolean, permission text, revision integer, embedded boolean,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
  SELECT m.id, m.owner_id = u.uid,
         CASE WHEN m.owner_id = u.uid THEN 'owner'
              ELSE (SELECT max(g.permission) FROM memoriesdb.memory_grants AS g
                     WHERE g.memory_id = m.id AND g.grantee_id = u.uid
                       AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())) END,
         m.revision, m.embedding IS NOT NULL, m.created_at, m.updated_at
    FROM memoriesdb.memories AS m, (SELECT memoriesdb.current_user_id() AS uid) AS u
   ORDER BY m.created_at, m.id
$$;
COMMENT ON FUNCTION memoriesdb.list_memories() IS
  'The memories the context user may see (owned, or shared and not expired): id, whether the caller owns it, permission (owner, write or read), revision, whether it has an embedding, timestamps. No content, metadata or hash: those only through the logged reads (recall, verify, search…). Not logged itself (it returns no content). Row-level security decides, as for recall().';
ALTER FUNCTION memoriesdb.list_memories() OWNER TO memoriesdb_reader;
-- Idempotent remember (issue 18): a retried or repeated call with the same key stores nothing twice.
SET LOCAL ROLE memoriesdb_owner;
CREATE OR REPLACE FUNCTION memoriesdb.remember_once(content text, metadata jsonb, idempotency_key text)
RETURNS TABLE (memory_id uuid, created boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  new_id uuid;
BEGIN
  IF idempotency_key IS NULL OR char_length(idempotency_key) NOT BETWEEN 1 AND 200 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB29', MESSAGE = 'invalid idempotency key',
      DETAIL = format('%s characters', coalesce(char_length(idempotency_key)::text, 'NULL')),
      HINT = 'use 1 to 200 characters, e.g. a hex SHA-256 of what identifies the call';
  END IF;
  SELECT k.memory_id INTO memory_id FROM memoriesdb.idempotency_keys AS k
   WHERE k.owner_id = uid AND k.key = remember_once.idempotency_key;
  IF FOUND THEN
    created := false;  -- memory_id NULL: stored once, forgotten since
    RETURN NEXT;
    RETURN;
  END IF;
  new_id := memoriesdb.remember(content, metadata);
  INSERT INTO memoriesdb.idempotency_keys (owner_id, key, memory_id)
  VALUES (uid, remember_once.idempotency_key, new_id)
  ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO NOTHING;
  IF NOT FOUND THEN  -- a concurrent call with the same key committed first: this call's memory must not stay
    RAISE EXCEPTION USING ERRCODE = 'MDB28', MESSAGE = 'idempotency key used by a concurrent call',
      DETAIL = 'another transaction stored a memory under the same key while this one was running',
      HINT = 'call again: the retry returns the memory the other call stored (created = false)';
  END IF;
  memory_id := new_id;
  created := true;
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION memoriesdb.remember_once(text, jsonb, text) IS
  'remember() at most once per (context user, idempotency_key): the first call stores the memory and returns (its id, true); every later call with the same key returns (that id, false) and stores nothing, whatever content it passes (memory_id NULL if the memory was forgotten since: it is not brought back). For clients that retry or re-run, e.g. `memoriesdb ingest`. MDB29 for a key that is NULL, empty or over 200 characters; MDB28 when a concurrent transaction stored the same key first (this call stores nothing; calling again returns its memory); otherwise the errors of remember().';

COMMIT;
