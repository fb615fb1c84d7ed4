-- Time bounds of the logins: a role's settings do not reach the logins it is
-- granted to (PostgreSQL applies only the login's own settings), so each
-- client login gets them from configure_login(), per database.
BEGIN;
SELECT plan(10);

CREATE ROLE t_bounds_app LOGIN IN ROLE memoriesdb_app;
CREATE ROLE t_bounds_worker LOGIN IN ROLE memoriesdb_worker;
CREATE ROLE t_bounds_nobody LOGIN;

CREATE FUNCTION pg_temp.settings_of(login name) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT unnest(s.setconfig) FROM pg_db_role_setting AS s
   WHERE s.setrole = login::regrole AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) $$;

SELECT ok((SELECT bool_or(login = 't_bounds_app') FROM memoriesdb.unbounded_logins()),
  'a new application login has no time bounds: unbounded_logins() lists it');
SELECT is_empty($$ SELECT * FROM pg_temp.settings_of('t_bounds_app') $$, '(it has no settings of its own)');

SELECT lives_ok($$ SELECT memoriesdb.configure_login('t_bounds_app') $$, 'configure_login() bounds it');
SELECT set_eq($$ SELECT * FROM pg_temp.settings_of('t_bounds_app') $$,
  $$ SELECT format('%s=%s', k, v) FROM jsonb_each_text(memoriesdb.setting('login_bounds')->'memoriesdb_app') AS e(k, v) $$,
  'with the application role''s bounds from config login_bounds, for this database');
SELECT ok((SELECT v.setting <> '0' FROM unnest(ARRAY['statement_timeout', 'idle_in_transaction_session_timeout', 'lock_timeout']) AS n
             CROSS JOIN LATERAL (SELECT split_part(x, '=', 2) AS setting FROM pg_temp.settings_of('t_bounds_app') AS x
                                  WHERE split_part(x, '=', 1) = n) AS v LIMIT 1),
  'statement, idle-in-transaction and lock waits are all bounded');
SELECT ok(NOT coalesce((SELECT bool_or(login = 't_bounds_app') FROM memoriesdb.unbounded_logins()), false),
  'unbounded_logins() lists it no more');

SELECT lives_ok($$ SELECT memoriesdb.configure_login('t_bounds_worker') $$, 'a worker login');
SELECT set_eq($$ SELECT * FROM pg_temp.settings_of('t_bounds_worker') $$,
  $$ SELECT format('%s=%s', k, v) FROM jsonb_each_text(memoriesdb.setting('login_bounds')->'memoriesdb_worker') AS e(k, v) $$,
  'gets the worker''s bounds');

SELECT throws_ok($$ SELECT memoriesdb.configure_login('t_bounds_nobody') $$, 'MDB12', NULL,
  'a login in no MemoriesDB role is refused');
SELECT is((SELECT has_function_privilege('memoriesdb_app', 'memoriesdb.configure_login(name)', 'EXECUTE')), false,
  'no client may configure logins');

SELECT * FROM finish();
ROLLBACK;
