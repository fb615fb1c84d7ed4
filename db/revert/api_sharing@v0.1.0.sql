-- Revert memoriesdb:api_sharing from pg
BEGIN;
DROP FUNCTION memoriesdb.transfer(uuid, uuid, text);
DROP FUNCTION memoriesdb.unshare(uuid, uuid);
DROP FUNCTION memoriesdb.share(uuid, uuid, text, timestamptz);
DROP FUNCTION memoriesdb.require_other_user(uuid, uuid, text);
COMMIT;
