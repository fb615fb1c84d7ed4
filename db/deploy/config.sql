-- Deploy memoriesdb:config to pg
-- Reworked after @v0.4.0 (released version: config@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: config@v0.1.0
-- requires: internal_schema
-- Live functions of ledger settings: setting(key): one value of memoriesdb.config.
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework config`.
-- Run once, by config@v0.1.0.sql: table config, its policy, triggers and first settings. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- PL/pgSQL, not SQL: a SECURITY DEFINER SQL function is never inlined, and PostgreSQL
-- parses and plans its body again in every statement that calls it (about 40 µs, three
-- times in every remember()); PL/pgSQL keeps the plan of its query for the session.
CREATE OR REPLACE FUNCTION memoriesdb.setting(key text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT c.value FROM memoriesdb.config AS c WHERE c.key = setting.key);
END
$$;
COMMENT ON FUNCTION memoriesdb.setting(text) IS 'The value of one ledger setting (memoriesdb.config), or NULL.';

COMMIT;
