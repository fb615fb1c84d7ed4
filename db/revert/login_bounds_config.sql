-- Revert memoriesdb:login_bounds_config from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.config WHERE key = 'login_bounds';
COMMIT;
