-- Revert memoriesdb:api_history from pg
-- A new change: its functions go (privileges.sql, deployed after it, is reverted first and takes its grants with it).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP FUNCTION memoriesdb.recall_as_of(uuid, timestamptz);
DROP FUNCTION memoriesdb.who_could_read(uuid, timestamptz);
DROP FUNCTION memoriesdb_internal.require_custodian(uuid, timestamptz);
COMMIT;
