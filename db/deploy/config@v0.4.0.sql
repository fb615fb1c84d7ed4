-- Deploy memoriesdb:config to pg
-- requires: config@v0.1.0
-- requires: internal_schema
-- Live functions of ledger settings: setting(key): one value of memoriesdb.config.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework config`.
-- Run once, by config@v0.1.0.sql: table config, its policy, triggers and first settings. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb.setting(key text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT c.value FROM memoriesdb.config AS c WHERE c.key = setting.key $$;
COMMENT ON FUNCTION memoriesdb.setting(text) IS 'The value of one ledger setting (memoriesdb.config), or NULL.';

COMMIT;
