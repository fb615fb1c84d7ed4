-- Identity: nobody acts as a user without proof (issue 12).
-- The attacks run as real non-superuser logins (SET SESSION AUTHORIZATION): a
-- superuser counts as a member of every role, memoriesdb_backend included.
-- Replay across transactions and sessions: runner/tests/test_identity.py.
BEGIN;
SELECT plan(67);
-- function calls counted from the start: an expression's call is tracked or not as it is first compiled in the
-- transaction (plpgsql keeps it), so the level must be set before the first call (3b, 3d count them)
SET LOCAL track_functions = 'all';

-- pgTAP keeps its state in temporary tables of this session: let the logins write them
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS n FROM pg_class c WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'S') LOOP
    EXECUTE format('GRANT ALL ON %s TO PUBLIC', r.n);
  END LOOP;
END $$;

-- the internal helper, for the logins (session_user is still theirs inside)
CREATE FUNCTION tests.vouched_by() RETURNS name LANGUAGE sql SECURITY DEFINER AS $$ SELECT memoriesdb_internal.context_vouched_by() $$;

-- fresh login names each run: failed authentications are counted durably, by login
SELECT 'mdb_id_app_' || substr(md5(random()::text), 1, 8) AS app, 'mdb_id_be_' || substr(md5(random()::text), 1, 8) AS be \gset
CREATE ROLE :"app" LOGIN IN ROLE memoriesdb_app;
CREATE ROLE :"be" LOGIN IN ROLE memoriesdb_backend;
-- SET SESSION AUTHORIZATION keeps this session's settings, not the login's bounds (configure_login()):
-- the app login's bounds, or authenticate() refuses the context (MDB15)
SET LOCAL statement_timeout = '30s';
SET LOCAL idle_in_transaction_session_timeout = '60s';
SET LOCAL lock_timeout = '10s';

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.memory_of(:'alice', 'alice private note') AS a1 \gset
SELECT tests.memory_of(:'bob', 'bob private note') AS b1 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.create_api_key(:'alice') AS akey \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.create_api_key(:'bob') AS bkey \gset
SELECT tests.clear_context();

-- the roles
SELECT has_role('memoriesdb_backend');
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = 'memoriesdb_backend'), false, 'memoriesdb_backend is NOLOGIN');
SELECT isnt(shobj_description('memoriesdb_backend'::regrole, 'pg_authid'), NULL, 'memoriesdb_backend has a COMMENT');
SELECT ok(pg_has_role('memoriesdb_backend', 'memoriesdb_app', 'USAGE'), 'a backend may do what the app may');
SELECT ok(NOT pg_has_role('memoriesdb_app', 'memoriesdb_backend', 'MEMBER'), 'the app is no backend');
SELECT volatility_is('memoriesdb', 'current_user_id', ARRAY[]::text[], 'stable', 'current_user_id() is STABLE');
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'memoriesdb.current_user_id()'::regprocedure), 'r',
  'current_user_id() is PARALLEL RESTRICTED (the proof names the backend process)');
SELECT is_empty($$ SELECT 1 FROM pg_class c WHERE c.oid = 'memoriesdb_internal.context_key'::regclass
                    AND (has_table_privilege('memoriesdb_app', c.oid, 'SELECT') OR has_table_privilege('memoriesdb_backend', c.oid, 'SELECT')
                         OR has_table_privilege('memoriesdb_worker', c.oid, 'SELECT') OR has_table_privilege('memoriesdb_auditor', c.oid, 'SELECT')) $$,
  'no client reads the context key');

-- 1. an untrusted login: a bare uuid is nobody
SET SESSION AUTHORIZATION :"app";
SELECT set_config('app.current_user', :'alice', true);
SELECT is(memoriesdb.current_user_id(), NULL, 'app login: a uuid written with set_config is nobody');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'app login: a bare uuid reads nothing');
SELECT throws_ok($$ SELECT memoriesdb.remember('planted') $$, 'MDB01', 'no user context', 'app login: a bare uuid cannot write');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', 'memory not found', 'app login: a bare uuid cannot recall');
SELECT throws_ok(format('SELECT memoriesdb.forget(%L)', :'a1'), 'MDB01', 'no user context', 'app login: a bare uuid cannot forget');
SELECT set_config('app.current_user_proof', repeat('0', 64), true);
SELECT is(memoriesdb.current_user_id(), NULL, 'app login: a forged proof is nobody');
SELECT is(tests.vouched_by(), NULL, 'app login: nobody vouches');

-- 2. no context: no key for another user, no new users
SELECT set_config('app.current_user', '', true);
SELECT throws_ok(format('SELECT memoriesdb.create_api_key(%L)', :'alice'), 'MDB01', 'no user context',
  'app login, no context: no key minted for a victim');
SELECT throws_ok($$ SELECT memoriesdb.create_user('mallory') $$, '42501', NULL, 'app login: cannot create users');

-- 3. proof: authenticate(), and nothing else
SELECT is(memoriesdb.authenticate(:'akey'), :'alice'::uuid, 'app login: authenticate returns the key''s user');
SELECT is(memoriesdb.current_user_id(), :'alice'::uuid, 'app login: the proven context is alice');
SELECT is(tests.vouched_by(), NULL, 'a proven context is vouched by nobody');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 1::bigint, 'app login: alice reads her memory');
SELECT memoriesdb.remember('proven write') AS proven \gset
SELECT set_config('app.current_user', :'bob', true);
SELECT is(memoriesdb.current_user_id(), NULL, 'app login: alice''s proof does not make bob');
SELECT throws_ok($$ SELECT memoriesdb.remember('as bob') $$, 'MDB01', 'no user context', 'app login: a proof for alice cannot write as bob');

-- 3b. a proof is verified once per API call, which notes it (memoriesdb.context_checked) for its
--     policies, row stamps and audit rows; a note the client writes itself is nobody's
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION :"app";
SELECT memoriesdb.authenticate(:'akey');
SELECT coalesce(pg_stat_get_xact_function_calls('memoriesdb.context_proven(text, text)'::regprocedure), 0) AS proofs \gset
SELECT memoriesdb.remember('checked once') AS once \gset
SELECT is(pg_stat_get_xact_function_calls('memoriesdb.context_proven(text, text)'::regprocedure) - :proofs, 1::bigint,
  'remember() verifies the proof once: its row stamps and audit rows believe the call''s note');
SELECT coalesce(pg_stat_get_xact_function_calls('memoriesdb.context_proven(text, text)'::regprocedure), 0) AS proofs \gset
SELECT * FROM memoriesdb.recall(:'once');
SELECT is(pg_stat_get_xact_function_calls('memoriesdb.context_proven(text, text)'::regprocedure) - :proofs, 1::bigint,
  'recall() verifies the proof once');
SELECT set_config('memoriesdb.context_checked', 'the client''s', true);
SELECT memoriesdb.remember('note restored');
SELECT is(current_setting('memoriesdb.context_checked'), 'the client''s', 'the call''s note ends with the call (the value before it is back)');
-- the attack: bob's uuid, any proof, and a note saying that pair was checked
SELECT set_config('app.current_user', :'bob', true), set_config('app.current_user_proof', repeat('0', 64), true),
       set_config('memoriesdb.context_checked', :'bob' || '|' || repeat('0', 64), true);
SELECT throws_ok($$ SELECT memoriesdb.remember('as bob') $$, 'MDB01', 'no user context',
  'app login: a note of its own (bob|forged proof) is reset on entry: no write as bob');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'b1'), 'MDB03', 'memory not found',
  'app login: its own note recalls nothing of bob''s');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'app login: its own note lists nothing');
SELECT is(memoriesdb.current_user_id(), NULL, 'app login: its own note is not read outside the ledger''s functions either');
SELECT set_config('memoriesdb.context_checked', :'bob' || '|' || repeat('0', 64), false);   -- session-level, the same
SELECT throws_ok($$ SELECT memoriesdb.remember('as bob') $$, 'MDB01', 'no user context', 'app login: a session-level note is reset too');
-- alice's genuine proof, bob's uuid, and a note pairing them
SELECT memoriesdb.authenticate(:'akey');
SELECT set_config('app.current_user', :'bob', true),
       set_config('memoriesdb.context_checked', :'bob' || '|' || current_setting('app.current_user_proof'), true);
SELECT throws_ok($$ SELECT memoriesdb.remember('as bob') $$, 'MDB01', 'no user context',
  'app login: alice''s real proof noted for bob is nobody');
SELECT set_config('memoriesdb.context_checked', '', false);
SELECT memoriesdb.authenticate(:'akey');
SELECT throws_ok(format('SELECT memoriesdb.create_api_key(%L)', :'bob'), 'MDB04', 'not allowed', 'alice cannot mint a key for bob');
SELECT memoriesdb.create_api_key(:'alice', now() + interval '1 hour') AS akey2 \gset
SELECT is((SELECT count(*) FROM memoriesdb.api_keys_list()), 2::bigint, 'alice lists her own keys only');
SELECT is((SELECT count(*) FROM memoriesdb.api_keys_list() WHERE expires_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'),
  1::bigint, 'a key carries the expiry asked for');
SELECT is((SELECT count(*) FROM memoriesdb.api_keys_list() WHERE expires_at IS NOT NULL AND expires_at > now() + interval '80 days'),
  1::bigint, 'by default a key expires after api_key_lifetime (90 days)');
SELECT throws_ok($$ SELECT memoriesdb.create_api_key(memoriesdb.current_user_id(), now() - interval '1 second') $$, 'MDB12', NULL,
  'an expiry in the past is refused');
SELECT lives_ok(format('SELECT memoriesdb.revoke_api_key(%L::uuid)', (SELECT id FROM memoriesdb.api_keys_list() WHERE key_prefix = left(:'akey2', 12))),
  'alice revokes a key by its id');
SELECT isnt((SELECT revoked_at FROM memoriesdb.api_keys_list() WHERE key_prefix = left(:'akey2', 12)), NULL, 'the list shows it revoked');
SELECT throws_ok(format('SELECT memoriesdb.authenticate(%L)', :'akey2'), 'MDB10', 'api key revoked', 'a key revoked by id is refused');
RESET SESSION AUTHORIZATION;   -- the test reads alice's key id from the table (no client can)
SELECT id AS akey_id FROM memoriesdb.api_keys WHERE key_prefix = left(:'akey', 12) \gset
SET SESSION AUTHORIZATION :"app";
-- a session that lifted one of its time bounds gets no context (MDB15), whichever bound and however
SET LOCAL statement_timeout = 0;
SELECT throws_ok(format('SELECT memoriesdb.authenticate(%L)', :'bkey'), 'MDB15', 'session time bounds lifted',
  'app login: statement_timeout off, no context');
SET LOCAL statement_timeout = '30s';
SET LOCAL lock_timeout = '1h';
SELECT throws_ok(format('SELECT memoriesdb.authenticate(%L)', :'bkey'), 'MDB15', 'session time bounds lifted',
  'app login: lock_timeout above its bound (10s), no context');
SET LOCAL lock_timeout = '10000';   -- milliseconds: 10 s, the bound itself
SET LOCAL idle_in_transaction_session_timeout = '59s';
SELECT lives_ok(format('SELECT memoriesdb.authenticate(%L)', :'bkey'), 'app login: bounds at or below the configured ones are fine');
SELECT memoriesdb.authenticate(:'bkey');
SELECT throws_ok(format('SELECT memoriesdb.revoke_api_key(%L::uuid)', :'akey_id'),
  'MDB10', 'api key not found', 'bob cannot revoke alice''s key by id');
RESET SESSION AUTHORIZATION;

-- 3d. the common path is one query: a login with no failure in the window and its bounds kept computes no key
--     prefix hash (auth_prefix_hash(): a failure's, to count or record it) and calls no lifted_bounds() (the rule
--     is bounds_kept(), inlined); and bounds_kept() is exactly lifted_bounds() IS NULL
SELECT 'mdb_id_new_' || substr(md5(random()::text), 1, 8) AS fresh \gset
CREATE ROLE :"fresh" LOGIN IN ROLE memoriesdb_app;
SELECT coalesce(pg_stat_get_xact_function_calls('memoriesdb_internal.auth_prefix_hash(text)'::regprocedure), 0) AS hashes,
       coalesce(pg_stat_get_xact_function_calls('memoriesdb_internal.lifted_bounds(jsonb)'::regprocedure), 0) AS lifted \gset
SET SESSION AUTHORIZATION :"fresh";
SELECT memoriesdb.authenticate(:'bkey');
SELECT set_config('app.current_user', '', true), set_config('app.current_user_proof', '', true);
RESET SESSION AUTHORIZATION;
SELECT is(ARRAY[coalesce(pg_stat_get_xact_function_calls('memoriesdb_internal.auth_prefix_hash(text)'::regprocedure), 0) - :hashes,
                coalesce(pg_stat_get_xact_function_calls('memoriesdb_internal.lifted_bounds(jsonb)'::regprocedure), 0) - :lifted],
          ARRAY[0, 0]::bigint[], 'authenticate(): no prefix hash and no lifted_bounds() on the common path');
CREATE FUNCTION pg_temp.bounds_disagree() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  b jsonb;
  st text;
  lt text;
  it text;
BEGIN
  FOREACH b IN ARRAY ARRAY['{"statement_timeout": "30s", "lock_timeout": "10s", "idle_in_transaction_session_timeout": "60s"}',
                           '{"lock_timeout": "10000ms"}', '{}', NULL]::jsonb[] LOOP
    FOREACH st IN ARRAY ARRAY['0', '2s', '30s', '30001ms', '1min'] LOOP
      FOREACH lt IN ARRAY ARRAY['0', '5s', '10s', '10001'] LOOP
        FOREACH it IN ARRAY ARRAY['0', '59s', '1min', '61s'] LOOP
          PERFORM set_config('statement_timeout', st, true), set_config('lock_timeout', lt, true),
                  set_config('idle_in_transaction_session_timeout', it, true);
          IF memoriesdb_internal.bounds_kept(b) IS DISTINCT FROM (memoriesdb_internal.lifted_bounds(b) IS NULL) THEN
            RETURN NEXT format('%s: %s %s %s', b, st, lt, it);
          END IF;
        END LOOP;
      END LOOP;
    END LOOP;
  END LOOP;
  PERFORM set_config('statement_timeout', '30s', true), set_config('lock_timeout', '10s', true),
          set_config('idle_in_transaction_session_timeout', '60s', true);
END
$$;
SELECT is_empty('SELECT * FROM pg_temp.bounds_disagree()', 'bounds_kept() agrees with lifted_bounds() for every setting and bound');

-- an expired key
UPDATE memoriesdb.api_keys SET expires_at = now() - interval '1 minute' WHERE key_prefix = left(:'bkey', 12);
SET SESSION AUTHORIZATION :"app";
SELECT throws_ok(format('SELECT memoriesdb.authenticate(%L)', :'bkey'), 'MDB10', 'api key expired', 'an expired key is refused');

-- 4. throttling: after the failures allowed, refused before the key is checked
--    (this login failed twice already: the revoked key and the expired key)
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = '{"window_seconds": 300, "max_failures_per_login": 5, "max_failures_per_key_prefix": 100}'
 WHERE key = 'auth_throttle';
SET SESSION AUTHORIZATION :"app";
SELECT throws_ok($$ SELECT memoriesdb.authenticate('mdb_00000000wrong1') $$, 'MDB10', 'invalid api key', 'failure 1');
SELECT throws_ok($$ SELECT memoriesdb.authenticate('mdb_00000000wrong2') $$, 'MDB10', 'invalid api key', 'failure 2');
SELECT throws_ok($$ SELECT memoriesdb.authenticate('mdb_00000000wrong3') $$, 'MDB10', 'invalid api key', 'failure 3');
SELECT throws_ok(format('SELECT memoriesdb.authenticate(%L)', :'akey'), 'MDB14', 'too many failed authentications',
  'after max_failures_per_login failures even the right key is refused, unchecked');
RESET SESSION AUTHORIZATION;

-- 4b. the throttle's probe reads the newest failure of the login, not its history:
--     2,000 failures of the backend login from before the window (a probe that counted or scanned them would
--     grow with them, and every tenant of that login would pay it at every authenticate())
INSERT INTO memoriesdb.access_log (at, db_role, function, memory_ids, sqlstate, entry_id, mac, query_hash)
SELECT now() - interval '1 hour', :'be', 'authenticate', '{}', 'MDB10', gen_random_uuid(), '\x00'::bytea, '\x01'::bytea
  FROM generate_series(1, 2000);
ANALYZE memoriesdb.access_log;
SELECT pg_stat_get_xact_tuples_returned('memoriesdb.access_log'::regclass)
     + pg_stat_get_xact_tuples_fetched('memoriesdb.access_log'::regclass) AS log_reads \gset
SET SESSION AUTHORIZATION :"be";
SELECT is(memoriesdb.authenticate(:'akey'), :'alice'::uuid, 'a login with 2,000 failures before the window authenticates');
SELECT set_config('app.current_user', '', true), set_config('app.current_user_proof', '', true);   -- (5. vouches, unproven)
RESET SESSION AUTHORIZATION;
SELECT cmp_ok(pg_stat_get_xact_tuples_returned('memoriesdb.access_log'::regclass)
            + pg_stat_get_xact_tuples_fetched('memoriesdb.access_log'::regclass) - :log_reads, '<', 10::bigint,
  'authenticate() reads the newest failure, not the 2,000 before the window');

-- 5. a trusted backend vouches with set_config, as before, and the audit log says so
SET SESSION AUTHORIZATION :"be";
SELECT set_config('app.current_user', :'alice', true);
SELECT is(memoriesdb.current_user_id(), :'alice'::uuid, 'backend login: set_config acts as alice');
SELECT is(tests.vouched_by(), :'be'::name, 'backend login: it vouches for the context');
SELECT memoriesdb.remember('vouched write') AS vouched \gset
SELECT memoriesdb.create_user('carol-' || substr(md5(random()::text), 1, 6)) AS carol \gset
SELECT set_config('app.current_user', :'carol', true);
SELECT matches(memoriesdb.create_api_key(:'carol'), '^mdb_', 'a backend provisions a user and, vouching for it, its first key');
SET LOCAL ROLE memoriesdb_app;   -- the role in force hides the login no more
SELECT set_config('app.current_user', :'alice', true);
SELECT memoriesdb.revise(:'vouched', 'vouched revision');
RESET ROLE;
RESET SESSION AUTHORIZATION;

SELECT results_eq(format($$ SELECT login, vouched_by, db_role FROM memoriesdb.audit_log
                             WHERE table_name = 'memories' AND row_id = %L ORDER BY id $$, :'vouched'),
  format($$ VALUES (%L::name, %L::name, %L::text), (%L::name, %L::name, 'memoriesdb_app') $$, :'be', :'be', :'be', :'be', :'be'),
  'audit rows record the login and the backend that vouched, whatever role is in force');
SELECT results_eq(format($$ SELECT login, vouched_by FROM memoriesdb.audit_log WHERE table_name = 'memories' AND row_id = %L $$, :'proven'),
  format($$ VALUES (%L::name, NULL::name) $$, :'app'),
  'an audit row of a proven context records the login and no voucher');
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb.audit_log a WHERE table_name = 'memories' AND row_id IN (%L, %L)
                            AND row_hash IS DISTINCT FROM sha256(memoriesdb_internal.audit_canonical(a)) $$, :'vouched', :'proven'),
  'the row hash covers the new fields');

-- 6. no tenant reads the id of a user it does not deal with
SELECT tests.create_user('carol2') AS carol2 \gset
SELECT tests.create_user('dave') AS dave \gset
SELECT tests.create_user('mallory') AS mallory \gset
SELECT tests.memory_of(:'alice', 'the zebra quagga migrates north') AS zm \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');   -- transfers and shares take effect at once (no offers to accept)
SELECT tests.act_as(:'carol2');
SELECT memoriesdb.accept_sender(:'bob');
SELECT tests.act_as(:'dave');
SELECT memoriesdb.accept_sender(:'bob');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.transfer(:'zm', :'bob', 'yours');
SELECT tests.act_as(:'bob');
SELECT memoriesdb.share(:'zm', :'carol2', 'read', NULL), memoriesdb.share(:'zm', :'dave', 'read', NULL);
SELECT tests.act_as(:'carol2');
SELECT created_by AS carol_sees_creator, owner_id AS carol_sees_owner FROM memoriesdb.search_text('zebra quagga') WHERE id = :'zm' \gset
SELECT isnt(:'carol_sees_creator'::uuid, :'alice'::uuid, 'search: the creator of a memory that changed hands is not shown by id to a third party');
SELECT is(:'carol_sees_owner'::uuid, :'bob'::uuid, 'search: the owner who shared it is shown');
SELECT is((SELECT count(*) FROM memoriesdb.provenance(:'zm') WHERE :'alice'::uuid IN (actor, from_owner, to_owner)), 0::bigint,
  'provenance: the former owner is a pseudonym to a third party');
SELECT is((SELECT actor FROM memoriesdb.provenance(:'zm') WHERE event = 'created'), :'carol_sees_creator'::uuid,
  'the pseudonym is the same in every function for one viewer');
SELECT tests.act_as(:'dave');
SELECT isnt((SELECT actor FROM memoriesdb.provenance(:'zm') WHERE event = 'created'), :'carol_sees_creator'::uuid,
  'another viewer gets another pseudonym (they cannot be matched)');
SELECT tests.act_as(:'bob');
SELECT is((SELECT from_owner FROM memoriesdb.provenance(:'zm') WHERE event = 'transferred'), :'alice'::uuid,
  'the recipient of a transfer sees the sender by id');
SELECT tests.act_as(:'mallory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'zm'), 'MDB03', 'memory not found', 'a stranger is refused');
SELECT tests.act_as(:'bob');
SELECT is((SELECT count(*) FROM memoriesdb.access_history(:'zm') WHERE actor = :'mallory'::uuid), 0::bigint,
  'access_history: a stranger''s refused attempt is on record under a pseudonym, not the stranger''s id');
SELECT tests.clear_context();

SELECT * FROM finish();
ROLLBACK;
