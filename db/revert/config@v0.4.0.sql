-- Revert memoriesdb:config from pg
-- Back to the released functions of config (v0.1.0): their bodies, as config@v0.1.0.sql
-- wrote them; the helpers they name move back to schema memoriesdb when
-- internal_schema is reverted, so bodies are not checked here.
BEGIN;
SET LOCAL check_function_bodies = off;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb.setting(key text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT c.value FROM memoriesdb.config AS c WHERE c.key = setting.key $$;

COMMENT ON FUNCTION memoriesdb.setting(text) IS 'The value of one ledger setting (memoriesdb.config), or NULL.';

COMMIT;
