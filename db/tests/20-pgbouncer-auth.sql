-- PgBouncer's secret lookup (pgbouncer_auth.sql): auth_query runs as the NOLOGIN
-- role memoriesdb_pgbouncer_auth through memoriesdb_pgbouncer.user_lookup(), which
-- answers for the ledger's client logins only. Each refused case below is an
-- attack: a pooler configuration (or whoever holds its password) asking for the
-- secret of a superuser, of a role that bypasses row-level security, or of a
-- login that has nothing to do with the ledger.
BEGIN;
SELECT plan(35);

-- the contract
SELECT has_function('memoriesdb_pgbouncer', 'user_lookup', ARRAY['text'], 'memoriesdb_pgbouncer.user_lookup(text) exists');
SELECT is_definer('memoriesdb_pgbouncer', 'user_lookup', ARRAY['text'], 'it is SECURITY DEFINER');
SELECT ok((SELECT o.rolsuper FROM pg_proc AS p JOIN pg_roles AS o ON o.oid = p.proowner
            WHERE p.oid = 'memoriesdb_pgbouncer.user_lookup(text)'::regprocedure),
  'owned by the deploying superuser (only a superuser can read pg_shadow)');
SELECT ok((SELECT o.rolsuper FROM pg_namespace AS n JOIN pg_roles AS o ON o.oid = n.nspowner
            WHERE n.nspname = 'memoriesdb_pgbouncer'),
  'its schema too: no other role can create or replace anything in it');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'memoriesdb_pgbouncer.user_lookup(text)'::regprocedure),
  ARRAY['search_path=pg_catalog, pg_temp'], 'search_path pinned');
SELECT isnt(obj_description('memoriesdb_pgbouncer.user_lookup(text)'::regprocedure, 'pg_proc'), NULL, 'it has a COMMENT');
SELECT is_empty($$
  SELECT r FROM unnest(ARRAY['public', 'memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor', 'memoriesdb_reader',
                             'memoriesdb_owner']) AS r
   WHERE has_function_privilege(r, 'memoriesdb_pgbouncer.user_lookup(text)', 'EXECUTE')
      OR has_schema_privilege(r, 'memoriesdb_pgbouncer', 'USAGE') $$,
  'no client role (nor PUBLIC) may call the lookup');
SELECT ok(has_function_privilege('memoriesdb_pgbouncer_auth', 'memoriesdb_pgbouncer.user_lookup(text)', 'EXECUTE'),
  'memoriesdb_pgbouncer_auth may');

-- the lookup role can do nothing else
SELECT is((SELECT format('%s %s %s %s %s %s', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls)
             FROM pg_roles WHERE rolname = 'memoriesdb_pgbouncer_auth'),
  'f f f f f f', 'memoriesdb_pgbouncer_auth: no superuser, inherits nothing, creates nothing, bypasses nothing');
SELECT is_empty($$ SELECT roleid::regrole FROM pg_auth_members WHERE member = 'memoriesdb_pgbouncer_auth'::regrole $$,
  'it is a member of no role');
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal', 'memoriesdb_dblink', 'memoriesdb_pgbouncer')
     AND has_function_privilege('memoriesdb_pgbouncer_auth', p.oid, 'EXECUTE')
     AND p.oid <> 'memoriesdb_pgbouncer.user_lookup(text)'::regprocedure $$,
  'it executes no other MemoriesDB function');
SELECT is_empty($$
  SELECT c.oid::regclass FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal', 'memoriesdb_pgbouncer')
     AND has_any_column_privilege('memoriesdb_pgbouncer_auth', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES') $$,
  'it reads or writes no table');
SELECT is_empty($$
  SELECT n FROM unnest(ARRAY['memoriesdb', 'memoriesdb_internal', 'memoriesdb_dblink', 'public']) AS n
   WHERE has_schema_privilege('memoriesdb_pgbouncer_auth', n, 'CREATE')
      OR (n <> 'public' AND has_schema_privilege('memoriesdb_pgbouncer_auth', n, 'USAGE'))
   UNION ALL
  SELECT 'memoriesdb_pgbouncer' WHERE has_schema_privilege('memoriesdb_pgbouncer_auth', 'memoriesdb_pgbouncer', 'CREATE') $$,
  'it uses no ledger schema and creates in none');

-- the logins the tests ask about
CREATE ROLE t_pgb_client LOGIN PASSWORD 'client-secret' IN ROLE memoriesdb_app;
CREATE ROLE t_pgb_worker LOGIN PASSWORD 'worker-secret' IN ROLE memoriesdb_worker;
CREATE ROLE t_pgb_auditor LOGIN PASSWORD 'auditor-secret' IN ROLE memoriesdb_auditor;
CREATE ROLE t_pgb_group NOLOGIN IN ROLE memoriesdb_app;
CREATE ROLE t_pgb_nested LOGIN PASSWORD 'nested-secret' IN ROLE t_pgb_group;
CREATE ROLE t_pgb_super LOGIN SUPERUSER PASSWORD 'super-secret' IN ROLE memoriesdb_app;
CREATE ROLE t_pgb_bypass LOGIN BYPASSRLS PASSWORD 'bypass-secret' IN ROLE memoriesdb_app;
CREATE ROLE t_pgb_createrole LOGIN CREATEROLE PASSWORD 'createrole-secret' IN ROLE memoriesdb_app;
CREATE ROLE t_pgb_replication LOGIN REPLICATION PASSWORD 'replication-secret' IN ROLE memoriesdb_worker;
CREATE ROLE t_pgb_owner LOGIN PASSWORD 'owner-secret' IN ROLE memoriesdb_app, memoriesdb_owner;
CREATE ROLE t_pgb_files LOGIN PASSWORD 'files-secret' IN ROLE memoriesdb_app, pg_read_server_files;
CREATE ROLE t_pgb_outsider LOGIN PASSWORD 'outsider-secret';
CREATE ROLE t_pgb_expired LOGIN PASSWORD 'expired-secret' VALID UNTIL '2000-01-01' IN ROLE memoriesdb_app;
CREATE ROLE t_pgb_nologin NOLOGIN PASSWORD 'nologin-secret' IN ROLE memoriesdb_app;
CREATE ROLE t_pgb_nopassword LOGIN IN ROLE memoriesdb_app;
-- memoriesdb_backend (the trusted backend role) exists from v0.4 on: its logins are clients too
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'memoriesdb_backend') THEN
    CREATE ROLE t_pgb_backend LOGIN PASSWORD 'backend-secret' IN ROLE memoriesdb_backend;
  END IF;
END $$;
CREATE TEMP TABLE logger AS SELECT logger_role FROM memoriesdb.access_log_sink;
GRANT SELECT ON logger TO memoriesdb_pgbouncer_auth;

-- asked as PgBouncer asks: as the lookup role
SET LOCAL ROLE memoriesdb_pgbouncer_auth;

SELECT is(ARRAY(SELECT format('%s %s', usename, passwd LIKE 'SCRAM-SHA-256$%') FROM memoriesdb_pgbouncer.user_lookup('t_pgb_client')),
  ARRAY['t_pgb_client t'], 'an application login: its name and SCRAM secret');
SELECT is(ARRAY(SELECT usename::text FROM memoriesdb_pgbouncer.user_lookup('t_pgb_worker')
                UNION ALL SELECT usename::text FROM memoriesdb_pgbouncer.user_lookup('t_pgb_auditor')),
  ARRAY['t_pgb_worker', 't_pgb_auditor'], 'a worker login and an auditor login');
SELECT is(ARRAY(SELECT usename::text FROM memoriesdb_pgbouncer.user_lookup('t_pgb_nested')),
  ARRAY['t_pgb_nested'], 'a login that is a client through a group');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_pgb_backend')
          OR EXISTS (SELECT 1 FROM memoriesdb_pgbouncer.user_lookup('t_pgb_backend')),
  'a trusted-backend login (when memoriesdb_backend exists)');

SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('postgres') $$, 'refused: postgres, the superuser');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_super') $$,
  'refused: a superuser, even one granted memoriesdb_app');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_bypass') $$, 'refused: a client login with BYPASSRLS');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_createrole') $$, 'refused: a client login with CREATEROLE');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_replication') $$, 'refused: a worker login with REPLICATION');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_owner') $$, 'refused: a member of memoriesdb_owner');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_files') $$,
  'refused: a member of a predefined role (pg_read_server_files)');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_outsider') $$, 'refused: a login that is not the ledger''s');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_expired') $$, 'refused: an expired password');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_nologin') $$, 'refused: a NOLOGIN role');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_nopassword') $$, 'refused: a login without a password');
SELECT is_empty($$ SELECT u.* FROM pg_temp.logger AS l, memoriesdb_pgbouncer.user_lookup(l.logger_role) AS u $$,
  'refused: the access log''s logger login');
SELECT is_empty($$ SELECT * FROM memoriesdb_pgbouncer.user_lookup('memoriesdb_pgbouncer_auth') $$, 'refused: the lookup role itself');

SELECT throws_ok($$ SELECT passwd FROM pg_catalog.pg_shadow $$, '42501', NULL, 'the lookup role cannot read pg_shadow itself');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.memories $$, '42501', NULL, 'nor any ledger table');
SELECT throws_ok($$ SELECT memoriesdb.current_user_id() $$, '42501', NULL, 'nor call the API');
SELECT throws_ok($$ CREATE FUNCTION memoriesdb_pgbouncer.user_lookup(login name) RETURNS text LANGUAGE sql AS 'SELECT 1' $$,
  '42501', NULL, 'nor add a function next to the lookup');
RESET ROLE;

SELECT throws_ok($$ SET LOCAL ROLE memoriesdb_app; SELECT * FROM memoriesdb_pgbouncer.user_lookup('t_pgb_client') $$,
  '42501', NULL, 'an application login cannot call the lookup');

SELECT * FROM finish();
ROLLBACK;
