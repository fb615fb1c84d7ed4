-- Revert memoriesdb:memory_grants from pg
BEGIN;
DROP FUNCTION memoriesdb.access_level(uuid, uuid);
ALTER POLICY memories_visible ON memoriesdb.memories USING (owner_id = (SELECT memoriesdb.current_user_id()));
DROP TABLE memoriesdb.memory_grants;
COMMIT;
