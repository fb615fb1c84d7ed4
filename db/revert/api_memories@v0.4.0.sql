-- Revert memoriesdb:api_memories from pg
-- Back to the functions of api_memories as released in v0.3.0 (api_memories@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP FUNCTION memoriesdb.list_memories();

DROP FUNCTION IF EXISTS memoriesdb.remember_once(text, jsonb, text);

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
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  new_id uuid := gen_random_uuid();
  h bytea;
BEGIN
  PERFORM memoriesdb_internal.check_content(content);
  PERFORM memoriesdb_internal.check_metadata(metadata);
  PERFORM memoriesdb_internal.check_json_size(metadata, 'max_metadata_bytes', 'metadata too large',
                                              'keep large data in the content or in another memory');
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
AS $$
DECLARE
  log_ids uuid[] := ARRAY[recall.memory_id];
  log_query bytea;   -- none: not a search
BEGIN
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
AS $$
DECLARE
  log_ids uuid[] := ARRAY[provenance.memory_id];
  log_query bytea;   -- none: not a search
BEGIN
  PERFORM 1 FROM memoriesdb.memories AS m WHERE m.id = provenance.memory_id;
  IF NOT FOUND THEN PERFORM memoriesdb_internal.raise_not_found('memory', provenance.memory_id); END IF;
  RETURN QUERY
    SELECT e.event, e.at, e.actor, e.revision, e.content_hash, e.from_owner, e.to_owner, e.note
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
  'The chain of custody of a visible memory, oldest first: its creation (creator, hash), every revision (who, revision number, new hash) and every transfer (from, to, by, note). One access log entry per call; a refusal is logged too.';
ALTER FUNCTION memoriesdb.provenance(uuid) OWNER TO memoriesdb_reader;

COMMIT;
