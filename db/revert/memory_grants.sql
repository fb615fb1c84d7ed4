-- Revert memoriesdb:memory_grants from pg
-- Back to the functions of memory_grants as released in v0.3.0 (memory_grants@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- the one definition of "who may do what" used by the SECURITY DEFINER API
CREATE OR REPLACE FUNCTION memoriesdb_internal.access_level(memory_id uuid, user_id uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN m.owner_id = access_level.user_id THEN 'owner' ELSE g.permission END
    FROM memoriesdb.memories AS m
    LEFT JOIN memoriesdb.memory_grants AS g
           ON g.memory_id = m.id AND g.grantee_id = access_level.user_id
          AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())
   WHERE m.id = access_level.memory_id
$$;
COMMENT ON FUNCTION memoriesdb_internal.access_level(uuid, uuid) IS
  'What user_id may do with a memory: owner, write, read, or NULL (nothing; also when the memory does not exist). Mirrors the memories_visible policy.';

COMMIT;
