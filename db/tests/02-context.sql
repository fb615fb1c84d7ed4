-- The user context, users and API keys.
BEGIN;
SELECT plan(31);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.memory_of(:'alice', 'alice private note') AS a1 \gset

-- current_user_id()
SELECT set_config('app.current_user', :'alice', true);
SELECT is(memoriesdb.current_user_id(), :'alice'::uuid, 'current_user_id reads the context');
SELECT set_config('app.current_user', '', true);
SELECT is(memoriesdb.current_user_id(), NULL, 'empty context is NULL');
SELECT set_config('app.current_user', 'alice''; drop table memoriesdb.memories; --', true);
SELECT is(memoriesdb.current_user_id(), NULL, 'a forged non-uuid context is NULL');
SELECT set_config('app.current_user', '123', true);
SELECT is(memoriesdb.current_user_id(), NULL, 'a number is not a uuid');

-- no context: reads return nothing, writes fail clearly
SELECT tests.act_as(NULL);
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'no context: list_memories() lists nothing');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.users $$, '42501', NULL, 'a client reads no table, users included');
SELECT throws_ok($$ SELECT memoriesdb.remember('x') $$, 'MDB01', 'no user context', 'no context: remember fails');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', 'memory not found', 'no context: recall finds nothing');
SELECT throws_ok(format('SELECT memoriesdb.forget(%L)', :'a1'), 'MDB01', 'no user context', 'no context: forget fails');

-- a forged context: a uuid that is no user
SELECT tests.act_as(gen_random_uuid());
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'forged uuid context reads nothing');
SELECT throws_ok($$ SELECT memoriesdb.remember('x') $$, 'MDB02', 'unknown user', 'forged uuid context cannot write');
SELECT set_config('app.current_user', 'garbage', true);
SELECT throws_ok($$ SELECT memoriesdb.remember('x') $$, 'MDB01', 'no user context', 'garbage context cannot write');

-- users
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT handle FROM memoriesdb.users $$, '42501', NULL, 'a user reads no user row, not even its own, from the table');
SELECT tests.clear_context();
SELECT throws_ok($$ SELECT memoriesdb.create_user('alice') $$, 'MDB12', 'handle already taken', 'handles are unique');
SELECT throws_ok($$ SELECT memoriesdb.create_user('Bad Handle!') $$, 'MDB12', 'invalid handle', 'handles are checked');
SELECT throws_ok($$ SELECT memoriesdb.create_user(NULL) $$, 'MDB12', 'invalid handle', 'a NULL handle is refused');
SELECT is((SELECT created_by FROM memoriesdb.users WHERE handle = 'alice'), :'alice'::uuid,
  'a user created with no context is its own creator');

-- API keys
SELECT tests.act_as(NULL);
SELECT memoriesdb.create_api_key(:'alice') AS akey \gset
SELECT matches(:'akey'::text, '^mdb_[0-9a-f]{48}$', 'create_api_key returns a fresh plaintext key');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.api_keys WHERE key_hash = sha256(convert_to(:'akey', 'UTF8'))), 1::bigint,
  'only the SHA-256 of the key is stored');
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb.api_keys k WHERE position(%L in k::text) > 0 $$, substr(:'akey', 5)),
  'the plaintext key is stored nowhere in api_keys');

SELECT tests.act_as(NULL);
SELECT is(memoriesdb.authenticate(:'akey'), :'alice'::uuid, 'authenticate returns the key''s user');
SELECT is(memoriesdb.current_user_id(), :'alice'::uuid, 'authenticate sets the context');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 1::bigint, 'after authenticate alice lists her memory');
SELECT throws_ok($$ SELECT memoriesdb.authenticate('mdb_wrong') $$, 'MDB10', 'invalid api key', 'a wrong key is refused');
SELECT throws_ok($$ SELECT memoriesdb.authenticate(NULL) $$, 'MDB10', 'invalid api key', 'a NULL key is refused');
SELECT tests.act_as(:'bob');
SELECT throws_ok(format('SELECT memoriesdb.create_api_key(%L)', :'alice'), 'MDB04', 'not allowed',
  'bob cannot create a key for alice');
SELECT throws_ok(format('SELECT memoriesdb.revoke_api_key(%L)', :'akey'), 'MDB10', 'invalid api key',
  'bob cannot revoke alice''s key');
SELECT throws_ok(format('SELECT memoriesdb.create_api_key(%L)', gen_random_uuid()), 'MDB04', 'not allowed',
  'no key for an unknown user (refused as for any other user''s: a refusal tells not whether a uuid is a user)');
SELECT tests.act_as(:'alice');
SELECT lives_ok(format('SELECT memoriesdb.revoke_api_key(%L)', :'akey'), 'alice revokes her key');
SELECT throws_ok(format('SELECT memoriesdb.authenticate(%L)', :'akey'), 'MDB10', 'api key revoked', 'a revoked key is refused');

-- authenticate is transaction-local
SELECT is((SELECT setting FROM pg_settings WHERE name = 'app.current_user'), NULL, 'app.current_user is not a server setting');

SELECT * FROM finish();
ROLLBACK;
