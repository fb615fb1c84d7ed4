-- Revert memoriesdb:api_memories from pg
BEGIN;
DROP FUNCTION memoriesdb.provenance(uuid);
DROP FUNCTION memoriesdb.verify(uuid);
DROP FUNCTION memoriesdb.recall(uuid);
DROP FUNCTION memoriesdb.forget(uuid);
DROP FUNCTION memoriesdb.require_owner(uuid, uuid, text);
DROP FUNCTION memoriesdb.revise(uuid, text, jsonb);
DROP FUNCTION memoriesdb.remember(text, jsonb);
DROP FUNCTION memoriesdb.check_metadata(jsonb);
DROP FUNCTION memoriesdb.check_content(text);
COMMIT;
