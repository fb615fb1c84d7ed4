-- Revert memoriesdb:access_log from pg
-- The access log goes with its entries, and dblink with it.
BEGIN;
DELETE FROM memoriesdb.config WHERE key = 'access_log_reads';
DROP TABLE memoriesdb.access_log_sink;
DROP TABLE memoriesdb.access_log;
DROP EXTENSION IF EXISTS dblink;
DROP SCHEMA IF EXISTS memoriesdb_dblink;
COMMIT;
