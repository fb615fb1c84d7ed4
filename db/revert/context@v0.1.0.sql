-- Revert memoriesdb:context from pg
BEGIN;
DROP FUNCTION memoriesdb.raise_not_found(text, uuid);
DROP FUNCTION memoriesdb.current_user_id();
COMMIT;
