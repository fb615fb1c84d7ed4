-- Revert memoriesdb:grant_expiry_clock from pg
BEGIN;
ALTER POLICY memories_visible ON memoriesdb.memories
  USING (owner_id = (SELECT memoriesdb.current_user_id())
         OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                     WHERE g.memory_id = memories.id
                       AND g.grantee_id = (SELECT memoriesdb.current_user_id())
                       AND (g.expires_at IS NULL OR g.expires_at > now())));
COMMIT;
