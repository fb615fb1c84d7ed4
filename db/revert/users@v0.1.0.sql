-- Revert memoriesdb:users from pg
BEGIN;
DROP FUNCTION memoriesdb.authenticate(text);
DROP FUNCTION memoriesdb.revoke_api_key(text);
DROP FUNCTION memoriesdb.create_api_key(uuid);
DROP FUNCTION memoriesdb.create_user(text, text);
DROP FUNCTION memoriesdb.require_user();
DROP TABLE memoriesdb.api_keys;
DROP TABLE memoriesdb.users;
COMMIT;
