-- Revert memoriesdb:context from pg
-- Back to the functions of context as released in v0.3.0 (context@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP FUNCTION memoriesdb_internal.context_vouched_by();
DROP FUNCTION memoriesdb.context_proven(text, text);
DROP FUNCTION memoriesdb_internal.context_proof(text, bytea, bytea);
DROP FUNCTION memoriesdb_internal.disclosed_user(uuid, uuid, uuid);

CREATE OR REPLACE FUNCTION memoriesdb.current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  -- NULL when unset, empty (after a transaction-local set_config the setting
  -- reads '' for the rest of the session) or not a uuid. A regex test rather
  -- than a cast in an exception block: no subtransaction per call. No SET
  -- clause (every name is qualified instead) so that it can be inlined: it runs
  -- in every trigger and policy.
  SELECT CASE WHEN pg_catalog.current_setting('app.current_user', true)
                   OPERATOR(pg_catalog.~) '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$'
              THEN pg_catalog.current_setting('app.current_user', true)::pg_catalog.uuid END
$$;
COMMENT ON FUNCTION memoriesdb.current_user_id() IS
  'The uuid in app.current_user (set with set_config(''app.current_user'', <uuid>, true), transaction-local), or NULL when it is unset, empty or not a uuid. STABLE, never IMMUTABLE: policies call it as (SELECT memoriesdb.current_user_id()) so it is read once per query.';

-- Refusals are recorded where they are raised (and failed authentications with them).
CREATE OR REPLACE FUNCTION memoriesdb_internal.raise_not_found(what text, id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM memoriesdb_internal.record_refusal('MDB03', CASE WHEN what = 'memory' THEN id END);
  RAISE EXCEPTION USING ERRCODE = 'MDB03', MESSAGE = what || ' not found',
    DETAIL = format('%s %s', what, id),
    HINT = 'the id does not exist or is not visible to you';
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.raise_not_found(text, uuid) IS
  'Internal: one error (MDB03) for "does not exist" and "not visible", so existence never leaks.';

COMMIT;
