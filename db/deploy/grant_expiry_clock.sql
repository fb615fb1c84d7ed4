-- Deploy memoriesdb:grant_expiry_clock to pg
-- requires: memory_grants
-- requires: reader_policies
-- Run once. A grant ends when it says: its expiry is compared with the
-- statement's clock, not with now() (the transaction's start), so a grantee who
-- opened a transaction before the expiry reads nothing after it. statement_timestamp()
-- is STABLE: read once per statement, like the context.
BEGIN;
ALTER POLICY memories_visible ON memoriesdb.memories
  USING (owner_id = (SELECT memoriesdb.current_user_id())
         OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                     WHERE g.memory_id = memories.id
                       AND g.grantee_id = (SELECT memoriesdb.current_user_id())
                       AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())));
COMMIT;
