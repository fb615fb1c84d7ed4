-- Test helpers (schema tests), loaded by scripts/test.sh into the test database
-- only; never part of a deployment. Modelled on supabase-test-helpers.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
DROP SCHEMA IF EXISTS tests CASCADE;
CREATE SCHEMA tests;
GRANT USAGE ON SCHEMA tests TO PUBLIC;

-- a new user; called as the superuser before acting as anyone
CREATE FUNCTION tests.create_user(handle text) RETURNS uuid
LANGUAGE sql AS $$ SELECT memoriesdb.create_user(handle) $$;

-- act as a user through the application role; transaction-local like the real thing
CREATE FUNCTION tests.act_as(user_id uuid, as_role text DEFAULT 'memoriesdb_app') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('role', as_role, true);
  PERFORM set_config('app.current_user', coalesce(user_id::text, ''), true);
END $$;

-- back to the test's superuser with no context
CREATE FUNCTION tests.clear_context() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('role', 'none', true);
  PERFORM set_config('app.current_user', '', true);
END $$;

-- a memory of user_id's, made through the API
CREATE FUNCTION tests.memory_of(user_id uuid, content text, metadata jsonb DEFAULT '{}') RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  prev_role text := current_setting('role');
  prev_ctx text := current_setting('app.current_user', true);
  id uuid;
BEGIN
  PERFORM tests.act_as(user_id);
  id := memoriesdb.remember(content, metadata);
  PERFORM set_config('role', prev_role, true);
  PERFORM set_config('app.current_user', coalesce(prev_ctx, ''), true);
  RETURN id;
END $$;

-- tables of a schema without row-level security enabled AND forced
CREATE FUNCTION tests.rls_not_forced(schema_name text) RETURNS SETOF text
LANGUAGE sql AS $$
  SELECT c.relname::text FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
   WHERE n.nspname = schema_name AND c.relkind IN ('r', 'p')
     AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
   ORDER BY 1
$$;

-- a unit vector of the deployed dimension pointing along axis i (1-based)
CREATE FUNCTION tests.axis(i integer, scale real DEFAULT 1) RETURNS vector
LANGUAGE sql AS $$
  SELECT array_agg(CASE WHEN g = i THEN scale ELSE 0 END ORDER BY g)::real[]::vector
    FROM generate_series(1, memoriesdb.setting('embedding_dim')::int) AS g
$$;

-- the SQLSTATE, message, detail and hint a statement fails with (NULL if it does not)
CREATE FUNCTION tests.error_of(stmt text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hin text;
BEGIN
  EXECUTE stmt;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
  RETURN ARRAY[st, msg, det, hin];
END $$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tests TO PUBLIC;
COMMIT;
