-- Revert memoriesdb:memory_grants from pg
-- Back to the released functions of memory_grants (v0.1.0): their bodies, as memory_grants@v0.1.0.sql
-- wrote them; the helpers they name move back to schema memoriesdb when
-- internal_schema is reverted, so bodies are not checked here.
BEGIN;
SET LOCAL check_function_bodies = off;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.access_level(memory_id uuid, user_id uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN m.owner_id = access_level.user_id THEN 'owner' ELSE g.permission END
    FROM memoriesdb.memories AS m
    LEFT JOIN memoriesdb.memory_grants AS g
           ON g.memory_id = m.id AND g.grantee_id = access_level.user_id
          AND (g.expires_at IS NULL OR g.expires_at > now())
   WHERE m.id = access_level.memory_id
$$;

COMMENT ON FUNCTION memoriesdb_internal.access_level(uuid, uuid) IS
  'What user_id may do with a memory: owner, write, read, or NULL (nothing; also when the memory does not exist). Mirrors the memories_visible policy.';

COMMIT;
