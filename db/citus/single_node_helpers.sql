-- The single-node suite's helpers (db/test_helpers.sql) on a Citus ledger (scripts/citus_single_node_suite.py; issue 17).
-- On a single node tests.act_as() sets a bare uuid with set_config(), believed because the test's session user is a
-- superuser (a member of memoriesdb_backend). On Citus a bare uuid is nobody on every node (docs/citus.md, section 1):
-- a backend vouches with memoriesdb.vouch(), so these helpers do. Load after db/test_helpers.sql, in the ledger
-- scripts/citus_single_node_suite.py copies for each file.
BEGIN;
-- act as a user through a role; transaction-local like the real thing (a NULL user: no context, the role only)
CREATE OR REPLACE FUNCTION tests.act_as(user_id uuid, as_role text DEFAULT 'memoriesdb_app') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('role', 'none', true);
  IF user_id IS NULL THEN
    SET LOCAL app."current_user" = '';
    SET LOCAL app.current_user_proof = '';
    SET LOCAL app.current_user_vouched_by = '';
    SET LOCAL app.current_login = '';
  ELSIF NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = user_id) THEN
    -- a forged context (no such user): vouch() refuses it; a bare uuid is nobody, as a forged uuid is on a single node
    EXECUTE format('SET LOCAL app."current_user" = %L', user_id);
    SET LOCAL app.current_user_proof = '';
    SET LOCAL app.current_user_vouched_by = '';
    SET LOCAL app.current_login = '';
  ELSE
    PERFORM memoriesdb.vouch(user_id);
  END IF;
  PERFORM set_config('role', as_role, true);
END $$;

CREATE OR REPLACE FUNCTION tests.clear_context() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('role', 'none', true);
  SET LOCAL app."current_user" = '';
  SET LOCAL app.current_user_proof = '';
  SET LOCAL app.current_user_vouched_by = '';
  SET LOCAL app.current_login = '';
END $$;

CREATE OR REPLACE FUNCTION tests.memory_of(user_id uuid, content text, metadata jsonb DEFAULT '{}') RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  prev_role text := current_setting('role');
  prev_ctx uuid := nullif(current_setting('app.current_user', true), '')::uuid;
  id uuid;
BEGIN
  PERFORM tests.act_as(user_id);
  id := memoriesdb.remember(content, metadata);
  IF prev_ctx IS NULL THEN
    PERFORM tests.clear_context();
    PERFORM set_config('role', prev_role, true);
  ELSE
    PERFORM tests.act_as(prev_ctx, prev_role);
  END IF;
  RETURN id;
END $$;
-- a unit vector (as db/test_helpers.sql), STABLE: Citus refuses a VOLATILE function in an UPDATE of a distributed table,
-- and the single-node files place embeddings by hand with it
ALTER FUNCTION tests.axis(integer, real) STABLE;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tests TO PUBLIC;
COMMIT;
