-- share / unshare: grants give exactly what they say, until they expire.
BEGIN;
SELECT plan(31);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.create_user('carol') AS carol \gset
-- carol takes alice's shares at once; bob accepts each offer (offers: 22-offers.sql)
SELECT tests.act_as(:'carol');
SELECT memoriesdb.accept_sender(:'alice');
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'shared note') AS a1 \gset
SELECT tests.memory_of(:'alice', 'writable note') AS a2 \gset
SELECT tests.memory_of(:'alice', 'private note') AS a3 \gset

SELECT tests.act_as(:'alice');
SELECT isnt(memoriesdb.share(:'a1', :'bob'), NULL, 'alice shares a1 with bob (read)');
SELECT memoriesdb.share(:'a2', :'bob', 'write');
SELECT throws_ok(format('SELECT memoriesdb.share(%L, %L)', :'a1', :'alice'), 'MDB12', 'the grantee must be another user', 'no grant to oneself');
SELECT throws_ok(format('SELECT memoriesdb.share(%L, %L)', :'a1', gen_random_uuid()), 'MDB02', 'unknown user', 'no grant to an unknown user');
SELECT throws_ok(format($$ SELECT memoriesdb.share(%L, %L, 'admin') $$, :'a1', :'carol'), 'MDB12', 'invalid permission', 'only read or write');
SELECT throws_ok(format($$ SELECT memoriesdb.share(%L, %L, 'read', now() - interval '1 hour') $$, :'a1', :'carol'), 'MDB12', 'expires_at is in the past', 'no grant that has already expired');

SELECT tests.act_as(:'bob');
SELECT set_eq($$ SELECT memoriesdb.accept_offer(o.id) FROM memoriesdb.offers() AS o $$, ARRAY[:'a1'::uuid, :'a2'::uuid],
  'bob accepts the two offers');
SELECT set_eq($$ SELECT id FROM memoriesdb.list_memories() $$, ARRAY[:'a1'::uuid, :'a2'::uuid], 'bob sees exactly the two shared memories');
SELECT is((SELECT content FROM memoriesdb.recall(:'a1')), 'shared note', 'bob recalls the shared memory');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'bob was here') $$, :'a1'), 'MDB04', 'not allowed to revise this memory', 'a read grant does not allow revise');
SELECT is(memoriesdb.revise(:'a2', 'bob improved it'), 2, 'a write grant allows revise');
SELECT is((SELECT actor FROM memoriesdb.provenance(:'a2') WHERE revision = 2 AND event = 'revised'), :'bob'::uuid, 'the revision is bob''s');
SELECT throws_ok(format('SELECT memoriesdb.forget(%L)', :'a2'), 'MDB04', 'only the owner may forget a memory', 'a write grant does not allow forget');
SELECT throws_ok(format('SELECT memoriesdb.share(%L, %L)', :'a2', :'carol'), 'MDB04', 'only the owner may share a memory', 'a grantee cannot re-share');
SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, %L)', :'a2', :'bob'), 'MDB04', 'only the owner may transfer a memory', 'a grantee cannot take ownership');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a3'), 'MDB03', 'memory not found', 'an unshared memory stays hidden');
SELECT is((SELECT count(*) FROM memoriesdb.list_grants() WHERE received), 2::bigint, 'bob sees his own grants');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.audit_log $$, '42501', NULL, 'a grantee reads no audit rows');

SELECT tests.act_as(:'carol');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'carol sees nothing');
SELECT is((SELECT count(*) FROM memoriesdb.list_grants()), 0::bigint, 'carol sees no grants');

-- expiry
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'a3', :'carol', 'read', now() + interval '1 hour');
SELECT tests.act_as(:'carol');
SELECT is((SELECT content FROM memoriesdb.recall(:'a3')), 'private note', 'carol reads a3 while the grant is valid');
SELECT tests.clear_context();
UPDATE memoriesdb.memory_grants SET expires_at = now() - interval '1 second' WHERE memory_id = :'a3' AND grantee_id = :'carol';
SELECT tests.act_as(:'carol');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a3'), 'MDB03', 'memory not found', 'an expired grant gives nothing (recall)');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'an expired grant gives nothing (list_memories)');

-- unshare
SELECT tests.act_as(:'alice');
SELECT is(memoriesdb.unshare(:'a1', :'bob'), true, 'alice unshares a1');
SELECT is(memoriesdb.unshare(:'a1', :'bob'), false, 'unsharing again reports there was no grant');
SELECT tests.act_as(:'bob');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', 'memory not found', 'after unshare bob cannot recall');

-- a grant ends when it says, even for a transaction that began before: the
-- statement's clock decides, not the transaction's start
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'short-lived note') AS a4 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'a4', :'carol', 'write', clock_timestamp() + interval '300 milliseconds');
SELECT tests.act_as(:'carol');
SELECT is((SELECT content FROM memoriesdb.recall(:'a4')), 'short-lived note', 'carol reads a4 while the grant is valid');
SELECT pg_sleep(0.4);
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a4'), 'MDB03', 'memory not found',
  'the grant expired during this transaction: recall is refused');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories() WHERE id = :'a4'), 0::bigint, 'nor does list_memories() show it');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'carol, too late') $$, :'a4'), 'MDB03', NULL,
  'nor may carol revise it with her expired write grant');
SELECT is_empty(format($$ SELECT * FROM memoriesdb.search_text('short-lived') WHERE id = %L $$, :'a4'),
  'nor does search_text find it');
SELECT throws_ok(format('SELECT * FROM memoriesdb.neighbors(%L)', :'a4'), 'MDB03', NULL, 'nor may carol walk the graph from it');

SELECT * FROM finish();
ROLLBACK;
