-- Deploy memoriesdb:schema to pg
-- requires: roles
BEGIN;
CREATE SCHEMA memoriesdb AUTHORIZATION memoriesdb_owner;
COMMENT ON SCHEMA memoriesdb IS
  'MemoriesDB: the private tables of the memory ledger and its public API of functions. Clients use the functions; tables are readable only under row-level security.';
REVOKE ALL ON SCHEMA memoriesdb FROM PUBLIC;
GRANT USAGE ON SCHEMA memoriesdb TO memoriesdb_app, memoriesdb_worker, memoriesdb_auditor;
-- functions are not executable by PUBLIC unless granted one by one (per-schema
-- default privileges can only add, so this is set for the role in this database)
ALTER DEFAULT PRIVILEGES FOR ROLE memoriesdb_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
COMMIT;
