-- Revert memoriesdb:logins from pg
-- Back to the functions of logins as released in v0.3.0 (logins@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- the ledger role whose bounds a login gets: the most restricted it holds
CREATE OR REPLACE FUNCTION memoriesdb_internal.login_kind(login name) RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.role FROM unnest(ARRAY['memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor']::name[]) WITH ORDINALITY AS r(role, o)
   WHERE pg_has_role(login, r.role, 'MEMBER')
   ORDER BY r.o LIMIT 1
$$;
COMMENT ON FUNCTION memoriesdb_internal.login_kind(name) IS
  'Internal: the ledger role whose time bounds a login gets (memoriesdb_app before memoriesdb_worker before memoriesdb_auditor), NULL for none.';

CREATE OR REPLACE FUNCTION memoriesdb.configure_login(login name) RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- VOLATILE although plpgsql_check cannot see why: its ALTER ROLE is dynamic SQL
-- @plpgsql_check_options: performance_warnings = false
DECLARE
  kind name;
  bounds jsonb;
  s record;
  applied text[] := '{}'::text[];
BEGIN
  IF login IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles AS r WHERE r.rolname = login AND r.rolcanlogin) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'unknown login', DETAIL = format('login %L', login),
      HINT = 'create it first: CREATE ROLE … LOGIN IN ROLE memoriesdb_app (or memoriesdb_worker, memoriesdb_auditor)';
  END IF;
  kind := memoriesdb_internal.login_kind(login);
  IF kind IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'not a MemoriesDB login',
      DETAIL = format('login %L holds none of memoriesdb_app, memoriesdb_worker, memoriesdb_auditor', login),
      HINT = format('GRANT memoriesdb_app TO %I (or the worker or auditor role) first', login);
  END IF;
  bounds := memoriesdb.setting('login_bounds') -> kind;
  FOR s IN SELECT b.key, b.value FROM jsonb_each_text(bounds) AS b
            WHERE b.key IN ('statement_timeout', 'idle_in_transaction_session_timeout', 'lock_timeout') ORDER BY b.key
  LOOP
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET %I = %L', login, current_database(), s.key, s.value);
    applied := applied || format('%s=%s', s.key, s.value);
  END LOOP;
  RETURN applied;
END
$$;
COMMENT ON FUNCTION memoriesdb.configure_login(name) IS
  'Administrators: gives a client login, in this database, the statement_timeout, idle_in_transaction_session_timeout and lock_timeout of its ledger role (config login_bounds); returns what it set. Run it for every login you create, and again after changing login_bounds. MDB12 for a login that holds no ledger role.';

CREATE OR REPLACE FUNCTION memoriesdb.unbounded_logins()
RETURNS TABLE (login name, kind name, missing text[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.rolname, k.kind, array_agg(format('%s=%s', b.key, b.value) ORDER BY b.key)
    FROM pg_roles AS r
   CROSS JOIN LATERAL (SELECT memoriesdb_internal.login_kind(r.rolname) AS kind) AS k
   CROSS JOIN LATERAL jsonb_each_text(memoriesdb.setting('login_bounds') -> k.kind) AS b
   WHERE r.rolcanlogin AND NOT r.rolsuper AND k.kind IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM pg_db_role_setting AS s
                      WHERE s.setrole = r.oid
                        AND s.setdatabase = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
                        AND format('%s=%s', b.key, b.value) = ANY (s.setconfig))
   GROUP BY r.rolname, k.kind
$$;
COMMENT ON FUNCTION memoriesdb.unbounded_logins() IS
  'Administrators: the client logins (members of memoriesdb_app, memoriesdb_worker or memoriesdb_auditor; superusers aside) whose settings in this database differ from config login_bounds, with the settings missing. Empty when every login is bounded; fix with configure_login().';

COMMIT;
