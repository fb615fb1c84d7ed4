-- Citus (issue 17, first slice): two tenants whose shards live on different workers, through the coordinator.
-- Run by scripts/test.sh --citus against a ledger made by scripts/citus.sh deploy (never on a single node).
\ir ../test_setup.psql
SELECT plan(24);

-- alice, and a bob whose shard is on the other worker
SELECT memoriesdb.create_user('alice' || (random() * 1e9)::bigint) AS alice \gset
SELECT pg_temp.user_apart('bob', :'alice') AS bob \gset
SELECT memoriesdb.create_api_key(:'alice') AS ka \gset
SELECT memoriesdb.create_api_key(:'bob') AS kb \gset
SELECT isnt((SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'alice'::uuid)),
            (SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'bob'::uuid)),
            'alice''s and bob''s shards are on different workers');

-- (not SET LOCAL: citus.propagate_set_commands would send that to the workers, where the connection may not)
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql

-- the context reaches the workers
BEGIN;
SELECT is(memoriesdb.authenticate(:'ka'), :'alice'::uuid, 'alice authenticates');
SELECT memoriesdb.remember('alice private note', '{"k": 1}') AS a1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka');
SELECT is((SELECT r.content FROM memoriesdb.recall(:'a1') AS r), 'alice private note', 'alice recalls her memory from her shard');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 1::bigint, 'alice lists one memory');
SELECT ok((SELECT l.owned FROM memoriesdb.list_memories() AS l), 'she owns it');
COMMIT;

BEGIN;
SELECT is(memoriesdb.authenticate(:'kb'), :'bob'::uuid, 'bob authenticates');
SELECT memoriesdb.remember('bob private note') AS b1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb');
SELECT is((SELECT r.content FROM memoriesdb.recall(:'b1') AS r), 'bob private note', 'bob recalls his memory from his shard');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 1::bigint, 'bob lists only his own memory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', 'memory not found',
                 'bob cannot recall alice''s memory: the policy on her shard, on the other worker, refuses');
COMMIT;

-- a bare context without its proof is nobody, on the coordinator and on the workers
BEGIN;
SELECT memoriesdb.authenticate(:'kb');
-- (SET LOCAL: propagated to the workers; a set_config() here would change the coordinator's view only, while the
-- workers keep the context authenticate() set: docs/citus.md)
SET LOCAL app.current_user_proof = 'x';
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'b1'), 'MDB03', 'memory not found',
                 'a context whose proof is wrong sees nothing');
COMMIT;
-- a proof minted for bob does not make him alice
BEGIN;
SELECT memoriesdb.authenticate(:'kb');
SELECT set_config('app.current_user', :'alice', true);
SELECT format('SET LOCAL app."current_user" = %L', :'alice') \gexec
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', 'memory not found',
                 'bob''s proof with alice''s uuid sees nothing of alice''s');
COMMIT;

-- sharing across workers: a grant on alice's shard, read from bob's context
BEGIN;
SELECT memoriesdb.authenticate(:'kb');
SELECT ok(memoriesdb.accept_sender(:'alice'), 'bob accepts alice as a sender (a reference table)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka');
SELECT isnt(memoriesdb.share(:'a1', :'bob'), NULL, 'alice shares her memory with bob (locked on her shard, then granted)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb');
SELECT is((SELECT r.content FROM memoriesdb.recall(:'a1') AS r), 'alice private note',
          'bob recalls alice''s shared memory from her shard on the other worker');
SELECT is((SELECT array_agg(l.permission ORDER BY l.permission) FROM memoriesdb.list_memories() AS l), ARRAY['owner', 'read'],
          'bob lists his own memory and the shared one');
COMMIT;

-- what the workers did is on the coordinator's record
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a WHERE a.function = 'recall' AND a.actor = :'alice' AND a.sqlstate IS NULL),
          1::bigint, 'alice''s recall is in the access log');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a WHERE a.function = 'recall' AND a.actor = :'bob' AND a.sqlstate IS NULL
                                                              AND a.memory_ids = ARRAY[:'a1']::uuid[]),
          1::bigint, 'bob''s recall of the shared memory is in the access log');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a WHERE a.function = 'recall' AND a.sqlstate = 'MDB03'
                                           AND a.memory_ids && ARRAY[:'a1', :'b1']::uuid[]),
          3::bigint, 'the three refused recalls are in the access log');
SELECT is((SELECT array_agg(a.table_name ORDER BY a.id) FROM memoriesdb.audit_log AS a WHERE a.chain = :'alice'),
          ARRAY['api_keys', 'memories', 'memory_revisions', 'memory_grants'],
          'alice''s chain: her key, memory, revision and grant, under the tables'' names (not the shards'')');
SELECT is((SELECT count(*) FROM memoriesdb.audit_log AS a WHERE a.table_name = 'users' AND a.new_row->>'id' IN (:'alice', :'bob')),
          2::bigint, 'a user is audited once, not once per replica of the users reference table');
SELECT is((SELECT count(DISTINCT u.created_at) FROM memoriesdb.users AS u WHERE u.id = :'alice'), 1::bigint,
          'the users replicas agree on created_at');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id IN (:'a1', :'b1')), 2::bigint,
          'one embedding job per memory, on its owner''s shard');

-- sealing: the chains wait on the shards, the coordinator seals them
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'audit_seal_pending() seals the waiting chains');
SELECT is((SELECT array_agg(s.table_name ORDER BY s.table_name) FROM (
            SELECT DISTINCT a.table_name FROM memoriesdb.audit_log AS a
              JOIN memoriesdb.audit_seals AS q ON q.chain_key = a.chain_key AND q.txid = a.txid AND a.id BETWEEN q.first_id AND q.last_id
             WHERE a.chain = :'bob') AS s),
          ARRAY['accepted_senders', 'api_keys', 'memories', 'memory_revisions'], 'bob''s rows are sealed in his chain');

SELECT * FROM finish();
