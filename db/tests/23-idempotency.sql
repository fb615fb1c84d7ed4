-- Idempotency keys: remember_once() stores a memory at most once per (user, key), so a client
-- that retries or re-runs (`memoriesdb ingest` of the same file, or after Ctrl-C) stores nothing
-- twice. The keys are each user's own (RLS) and written only through the function.
BEGIN;
SELECT plan(24);

SELECT has_table('memoriesdb', 'idempotency_keys', 'table idempotency_keys exists');
SELECT col_is_pk('memoriesdb', 'idempotency_keys', ARRAY['owner_id', 'key'], 'keyed by (owner, key)');
SELECT policies_are('memoriesdb', 'idempotency_keys', ARRAY['idempotency_keys_owner', 'idempotency_keys_visible'],
  'the owner role writes, the application reads its own');
SELECT is_definer('memoriesdb', 'remember_once', ARRAY['text', 'jsonb', 'text'], 'remember_once is SECURITY DEFINER');
SELECT function_privs_are('memoriesdb', 'remember_once', ARRAY['text', 'jsonb', 'text'], 'memoriesdb_app', ARRAY['EXECUTE'],
  'the application may call remember_once');
SELECT function_privs_are('memoriesdb', 'remember_once', ARRAY['text', 'jsonb', 'text'], 'memoriesdb_worker', ARRAY[]::text[],
  'the worker may not');

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.act_as(:'alice');
SELECT (SELECT count(*) FROM memoriesdb.list_memories()) AS before \gset

SELECT memory_id AS m1, created AS c1 FROM memoriesdb.remember_once('line one', '{"n": 1}', 'k1') \gset
SELECT is(:'c1'::boolean, true, 'the first call stores the memory');
SELECT is((SELECT content FROM memoriesdb.recall(:'m1')), 'line one', 'and returns its id');
SELECT results_eq($$ SELECT memory_id, created FROM memoriesdb.remember_once('line one', '{"n": 1}', 'k1') $$,
  format($$ VALUES (%L::uuid, false) $$, :'m1'), 'the same call again returns the same memory, created = false');
SELECT results_eq($$ SELECT memory_id, created FROM memoriesdb.remember_once('other text', '{}', 'k1') $$,
  format($$ VALUES (%L::uuid, false) $$, :'m1'), 'the key decides, not the content: a different text under k1 stores nothing');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), :before::bigint + 1, 'three calls, one memory');
SELECT is((SELECT revision FROM memoriesdb.recall(:'m1')), 1, 'the memory was not revised either');

-- keys are per user
SELECT tests.act_as(:'bob');
SELECT is((SELECT created FROM memoriesdb.remember_once('line one', '{"n": 1}', 'k1')), true,
  'bob''s k1 is not alice''s: he stores his own memory');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.idempotency_keys $$, '42501', NULL, 'a client reads no key row (no table is selectable by clients)');
SELECT throws_ok($$ INSERT INTO memoriesdb.idempotency_keys (owner_id, key, memory_id) VALUES (memoriesdb.current_user_id(), 'k2', NULL) $$,
  '42501', NULL, 'a client cannot write a key row directly (to block a key, or point it at a memory)');
SELECT throws_ok(format($$ UPDATE memoriesdb.idempotency_keys SET memory_id = %L $$, :'m1'),
  '42501', NULL, 'nor repoint its own key at someone else''s memory');

-- bad keys, bad content
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT * FROM memoriesdb.remember_once('x', '{}', '') $$, 'MDB29', 'invalid idempotency key', 'an empty key is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.remember_once('x', '{}', repeat('k', 201)) $$, 'MDB29', 'invalid idempotency key',
  'a key over 200 characters is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.remember_once('x', '{}', NULL) $$, 'MDB29', 'invalid idempotency key', 'a NULL key is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.remember_once('  ', '{}', 'k-empty') $$, 'MDB05', 'content is empty',
  'remember''s own checks apply');
SELECT tests.clear_context();  -- clients select no table: read it as the test's superuser
SELECT is((SELECT count(*) FROM memoriesdb.idempotency_keys WHERE owner_id = :'alice' AND key = 'k-empty'), 0::bigint,
  'a refused call leaves no key behind: a corrected retry stores');
SELECT tests.act_as(:'alice');

-- a forgotten memory is not brought back by a re-run
SELECT memoriesdb.forget(:'m1');
SELECT results_eq($$ SELECT memory_id, created FROM memoriesdb.remember_once('line one', '{"n": 1}', 'k1') $$,
  $$ VALUES (NULL::uuid, false) $$, 'after forget, the key answers (NULL, false) and stores nothing');

-- the key rows are stamped and audited like every ledger table
SELECT tests.clear_context();
SELECT is((SELECT created_by FROM memoriesdb.idempotency_keys WHERE owner_id = :'alice' AND key = 'k1'), :'alice'::uuid,
  'the key row is stamped with its creator');
SELECT ok((SELECT count(*) FROM memoriesdb.audit_log WHERE table_name = 'idempotency_keys' AND created_by = :'alice') >= 2,
  'its insert and the forget''s SET NULL are in the audit log');

SELECT * FROM finish();
ROLLBACK;
