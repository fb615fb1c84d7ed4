-- Revert memoriesdb:logins from pg
BEGIN;
DROP FUNCTION memoriesdb.unbounded_logins();
DROP FUNCTION memoriesdb.configure_login(name);
DROP FUNCTION memoriesdb_internal.login_kind(name);
COMMIT;
