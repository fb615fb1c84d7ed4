-- Deploy memoriesdb:memory_grants to pg
-- Reworked after @v0.3.0 (released version: memory_grants@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: memory_grants@v0.2.0
-- requires: internal_schema
-- Live functions of who may do what with a memory: access_level(): the one definition the SECURITY DEFINER API uses (mirrors the memories_visible policy).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework memory_grants`.
-- Run once, by memory_grants@v0.1.0.sql: table memory_grants, its indexes, policies and triggers; the memories_visible policy. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
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
