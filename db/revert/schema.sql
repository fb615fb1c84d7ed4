-- Revert memoriesdb:schema from pg
BEGIN;
ALTER DEFAULT PRIVILEGES FOR ROLE memoriesdb_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
DROP SCHEMA memoriesdb;
COMMIT;
