-- Isolation between users: bob attacks alice's memories through every door.
BEGIN;
SELECT plan(35);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.memory_of(:'alice', 'alice secret') AS a1 \gset
SELECT tests.memory_of(:'alice', 'alice second') AS a2 \gset
SELECT tests.memory_of(:'bob', 'bob note') AS b1 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.link(:'a1', :'a2', 'related_to') AS e1 \gset
SELECT memoriesdb.revise(:'a1', 'alice secret v2');

SELECT tests.act_as(:'bob');
-- through the API: one error whether the id exists or not
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', 'memory not found', 'bob cannot recall alice''s memory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', gen_random_uuid()), 'MDB03', 'memory not found', 'an unknown id gives the same error');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'pwned') $$, :'a1'), 'MDB03', 'memory not found', 'bob cannot revise alice''s memory');
SELECT throws_ok(format('SELECT memoriesdb.forget(%L)', :'a1'), 'MDB03', 'memory not found', 'bob cannot forget alice''s memory');
SELECT throws_ok(format('SELECT memoriesdb.share(%L, %L)', :'a1', :'bob'), 'MDB03', 'memory not found', 'bob cannot share alice''s memory with himself');
SELECT throws_ok(format('SELECT memoriesdb.unshare(%L, %L)', :'a1', :'alice'), 'MDB03', 'memory not found', 'bob cannot unshare alice''s memory');
SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, %L)', :'a1', :'bob'), 'MDB03', 'memory not found', 'bob cannot transfer alice''s memory to himself');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to') $$, :'b1', :'a1'), 'MDB03', 'memory not found', 'bob cannot link to alice''s memory');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to') $$, :'a1', :'b1'), 'MDB03', 'memory not found', 'bob cannot link from alice''s memory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.provenance(%L)', :'a1'), 'MDB03', 'memory not found', 'bob cannot read alice''s provenance');
SELECT throws_ok(format('SELECT memoriesdb.verify(%L)', :'a1'), 'MDB03', 'memory not found', 'bob cannot verify alice''s memory');
SELECT throws_ok(format('SELECT memoriesdb.unlink(%L)', :'e1'), 'MDB03', 'edge not found', 'bob cannot unlink alice''s edge');

-- through the tables: contents not at all (only through the logged API), rows silently filtered
SELECT throws_ok($$ SELECT content FROM memoriesdb.memories $$, '42501', NULL, 'bob cannot read contents from the table, not even his own');
SELECT throws_ok($$ SELECT metadata FROM memoriesdb.memories $$, '42501', NULL, 'nor metadata');
SELECT throws_ok($$ SELECT embedding FROM memoriesdb.memories $$, '42501', NULL, 'nor embeddings');
SELECT throws_ok($$ SELECT new_row FROM memoriesdb.audit_log $$, '42501', NULL, 'nor the audit log''s row images');
SELECT throws_ok(format('SELECT * FROM memoriesdb_internal.vector_ranking(%L::vector)', tests.axis(1)), '42501', NULL,
  'nor search without the access log (vector_ranking)');
SELECT throws_ok($$ SELECT owner_id FROM memoriesdb.memories $$, '42501', NULL, 'nor ids and owners: no column of the table at all');
SELECT results_eq($$ SELECT owned FROM memoriesdb.list_memories() $$, ARRAY[true], 'bob lists only his memory');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.memory_revisions $$, '42501', NULL, 'nor revisions');
SELECT is((SELECT count(*) FROM memoriesdb.list_edges()), 0::bigint, 'nor alice''s edges');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.audit_log $$, '42501', NULL, 'nor audit rows');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.users $$, '42501', NULL, 'nor user rows');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories() WHERE NOT owned), 0::bigint, 'a WHERE clause does not widen what list_memories() shows');
-- the read functions' own role is bound by the same policies
SELECT tests.act_as(:'bob', 'memoriesdb_reader');
SELECT results_eq($$ SELECT content FROM memoriesdb.memories $$, ARRAY['bob note'], 'memoriesdb_reader, as bob, reads only bob''s memories');
SELECT tests.act_as(NULL, 'memoriesdb_reader');
SELECT is((SELECT count(*) FROM memoriesdb.memories), 0::bigint, 'and with no context, nothing');
SELECT tests.act_as(:'bob');

-- through the tables: writes refused outright
SELECT throws_ok(format($$ UPDATE memoriesdb.memories SET content = 'pwned' WHERE id = %L $$, :'a1'), '42501', NULL, 'bob cannot UPDATE memories');
SELECT throws_ok(format($$ DELETE FROM memoriesdb.memories WHERE id = %L $$, :'a1'), '42501', NULL, 'bob cannot DELETE from memories');
SELECT throws_ok(format($$ INSERT INTO memoriesdb.memories (owner_id, content, content_hash) VALUES (%L, 'x', sha256('x')) $$, :'alice'), '42501', NULL, 'bob cannot INSERT into memories');
SELECT throws_ok(format($$ INSERT INTO memoriesdb.memory_grants (memory_id, grantee_id, owner_id, permission) VALUES (%L, %L, %L, 'write') $$, :'a1', :'bob', :'alice'), '42501', NULL, 'bob cannot grant himself access');
SELECT throws_ok($$ TRUNCATE memoriesdb.memories $$, '42501', NULL, 'bob cannot TRUNCATE memories');
SELECT throws_ok($$ SELECT * FROM memoriesdb.embedding_schedule $$, '42501', NULL, 'the app role cannot read the embedding queue');
SELECT throws_ok($$ SELECT memoriesdb.claim_embedding_jobs() $$, '42501', NULL, 'the app role cannot claim jobs (and read content)');

-- the worker role reads nothing directly
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT throws_ok($$ SELECT * FROM memoriesdb.memories $$, '42501', NULL, 'the worker cannot read memories directly');

SELECT tests.act_as(:'alice');
SELECT is((SELECT content FROM memoriesdb.recall(:'a1')), 'alice secret v2', 'alice''s memory is untouched');

SELECT * FROM finish();
ROLLBACK;
