-- Revert memoriesdb:config from pg
BEGIN;
DROP FUNCTION memoriesdb.setting(text);
DROP TABLE memoriesdb.config;
COMMIT;
