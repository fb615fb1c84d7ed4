-- transfer: custody changes hands, the old owner keeps nothing, history stays.
BEGIN;
SELECT plan(18);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.create_user('carol') AS carol \gset
-- each takes the other's shares and transfers at once (offers: 22-offers.sql)
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');
SELECT tests.act_as(:'carol');
SELECT memoriesdb.accept_sender(:'alice');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.accept_sender(:'bob');
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'heirloom') AS a1 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'a1', :'carol');
SELECT memoriesdb.share(:'a1', :'bob', 'write');

SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, %L)', :'a1', :'alice'), 'MDB12', 'the new owner must be another user', 'no transfer to oneself');
SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, %L)', :'a1', gen_random_uuid()), 'MDB02', 'unknown user', 'no transfer to an unknown user');
SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, NULL)', :'a1'), 'MDB02', 'unknown user', 'no transfer to NULL');
SELECT isnt(memoriesdb.transfer(:'a1', :'bob', 'for safekeeping'), NULL, 'alice transfers a1 to bob');

SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', 'memory not found', 'the previous owner cannot recall it');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'mine again') $$, :'a1'), 'MDB03', 'memory not found', 'the previous owner cannot revise it');
SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, %L)', :'a1', :'alice'), 'MDB03', 'memory not found', 'the previous owner cannot take it back');
SELECT throws_ok(format('SELECT memoriesdb.forget(%L)', :'a1'), 'MDB03', 'memory not found', 'the previous owner cannot forget it');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories() WHERE id = :'a1'), 0::bigint, 'the previous owner no longer lists it');
SELECT is((SELECT count(*) FROM memoriesdb.list_grants(:'a1')), 0::bigint, 'nor its grants');

SELECT tests.act_as(:'bob');
SELECT results_eq(format('SELECT owner_id, created_by FROM memoriesdb.recall(%L)', :'a1'),
  format('VALUES (%L::uuid, %L::uuid)', :'bob', :'alice'), 'bob owns it; alice stays its creator');
SELECT results_eq(format('SELECT event, actor, from_owner, to_owner, note FROM memoriesdb.provenance(%L)', :'a1'),
  format($$ VALUES ('created'::text, %1$L::uuid, NULL::uuid, NULL::uuid, NULL::text), ('transferred', %1$L, %1$L, %2$L, 'for safekeeping') $$, :'alice', :'bob'),
  'provenance shows creation and the transfer (from, to, by, note)');
SELECT is((SELECT count(*) FROM memoriesdb.list_grants(:'a1') WHERE grantee_id = :'bob'), 0::bigint, 'bob''s own grant is gone: he owns it');
SELECT results_eq(format('SELECT grantee_id, received FROM memoriesdb.list_grants(%L)', :'a1'),
  format('VALUES (%L::uuid, false)', :'carol'), 'carol''s grant now belongs to bob (he lists it as given)');
SELECT cmp_ok((SELECT count(*) FROM memoriesdb.provenance(:'a1')), '>=', 2::bigint, 'the new owner reads the memory''s whole provenance');
SELECT lives_ok(format('SELECT memoriesdb.unshare(%L, %L)', :'a1', :'carol'), 'the new owner can revoke the old owner''s grants');
SELECT lives_ok(format('SELECT memoriesdb.share(%L, %L)', :'a1', :'alice'), 'and share it back with alice');
SELECT tests.act_as(:'alice');
SELECT is((SELECT content FROM memoriesdb.recall(:'a1')), 'heirloom', 'alice reads it again only through the new grant');

SELECT * FROM finish();
ROLLBACK;
