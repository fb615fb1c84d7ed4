-- Citus (issue 17, second slice): audit verification and checkpoints over chains on both workers, forget() across
-- owners' shards (edges, transfer rows, idempotency keys), transfer() moving a memory to the receiver's shard.
-- Run by scripts/test.sh --citus after 01-tenancy.sql, against the same throwaway ledger (each call commits:
-- docs/citus.md, several roles in one transaction). The last tests edit an audit row on a worker and put it back.
\ir ../test_setup.psql
SELECT plan(32);

-- carol, and a dave whose shard is on the other worker
SELECT memoriesdb.create_user('carol' || (random() * 1e9)::bigint) AS carol \gset
SELECT pg_temp.user_apart('dave', :'carol') AS dave \gset
SELECT memoriesdb.create_api_key(:'carol') AS kc \gset
SELECT memoriesdb.create_api_key(:'dave') AS kd \gset
SELECT isnt((SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'carol'::uuid)),
            (SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'dave'::uuid)),
            'carol''s and dave''s shards are on different workers');

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kd') AS _ \gset
SELECT memoriesdb.accept_sender(:'carol') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.remember('carol keeps this', '{"v": 1}') AS c1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memory_id AS c2 FROM memoriesdb.remember_once('carol forgets this', '{}', 'c2-key') \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.revise(:'c1', 'carol keeps this, revised') AS _ \gset
SELECT memoriesdb.link(:'c1', :'c2', 'related_to') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.share(:'c2', :'dave') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.share(:'c1', :'dave') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kd') AS _ \gset
SELECT memoriesdb.remember('dave''s own') AS d1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kd') AS _ \gset
SELECT isnt(memoriesdb.link(:'d1', :'c2', 'related_to'), NULL,
            'dave links his memory to carol''s shared one (an edge on his shard pointing at her shard)');
COMMIT;
RESET SESSION AUTHORIZATION;

-- 1. verification and checkpoints over chains on both workers
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 8, 'the coordinator seals the waiting chains');
SELECT is((SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement AS p
            WHERE p.shardid IN (get_shard_id_for_distribution_column('memoriesdb.audit_seals', :'carol'::uuid),
                                get_shard_id_for_distribution_column('memoriesdb.audit_seals', :'dave'::uuid))),
          2::bigint, 'carol''s and dave''s chains are on different workers');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain() AS v), '(t,)',
          'verify_audit_chain() verifies every row, seal and chain across the workers');
SELECT cmp_ok((SELECT v.seals_checked FROM memoriesdb.verify_audit_chain() AS v), '>=', 10::bigint, 'it checked the seals of both workers');
SELECT memoriesdb.audit_checkpoint() AS cp \gset
SELECT is((SELECT array_agg(e->>'chain' ORDER BY e->>'chain') FROM jsonb_array_elements(:'cp'::jsonb->'chains') AS e
            WHERE e->>'chain' IN (:'carol', :'dave')),
          (SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[:'carol', :'dave']) AS x),
          'audit_checkpoint() holds the heads of chains on both workers');
SELECT is((SELECT (e->>'seq')::bigint FROM jsonb_array_elements(:'cp'::jsonb->'chains') AS e WHERE e->>'chain' = :'carol'),
          (SELECT max(s.chain_seq) FROM memoriesdb.audit_seals AS s WHERE s.chain = :'carol'), 'carol''s head is her newest seal');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain(:'cp') AS v), '(t,)', 'the ledger verifies against its checkpoint');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_checkpoint(:'cp') AS v), '(t,)', 'verify_checkpoint() finds every head');
SELECT jsonb_set(:'cp'::jsonb, '{chains}', (SELECT jsonb_agg(CASE WHEN e->>'chain' = :'dave' THEN jsonb_set(e, '{seq}', to_jsonb((e->>'seq')::bigint + 5)) ELSE e END)
                                              FROM jsonb_array_elements(:'cp'::jsonb->'chains') AS e)) AS cp_bad \gset
SELECT ok(NOT (SELECT v.ok FROM memoriesdb.verify_checkpoint(:'cp_bad') AS v)
          AND EXISTS (SELECT 1 FROM memoriesdb.audit_problems(:'cp_bad') AS p WHERE p.problem LIKE '%root does not match%')
          AND EXISTS (SELECT 1 FROM memoriesdb.audit_problems(:'cp_bad') AS p WHERE p.problem LIKE format('chain %s: ends at seal %%', :'dave')),
          'a checkpoint claiming a longer chain of dave''s is refused (altered root, and the chain ends earlier)');

-- 2. forget() across shards: carol's c2 is the target of her own edge and of dave's (on the other worker)
SET SESSION AUTHORIZATION mdb_citus_test_app;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT lives_ok(format('SELECT memoriesdb.forget(%L)', :'c2'), 'carol forgets c2');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM memoriesdb.memory_edges AS e WHERE e.target_id = :'c2' OR e.source_id = :'c2'), 0::bigint,
          'every edge to it is gone: carol''s, and dave''s on the other worker');
SELECT is((SELECT count(*) FROM memoriesdb.memory_grants AS g WHERE g.memory_id = :'c2'), 0::bigint, 'its grant is gone');
-- (into a variable first: a statement whose only table is one owner's shard goes to that worker whole, pgTAP and all)
SELECT count(*) AS c2_keys FROM memoriesdb.idempotency_keys AS k WHERE k.owner_id = :'carol' AND k.key = 'c2-key' AND k.memory_id IS NULL \gset
SELECT is(:'c2_keys'::bigint, 1::bigint, 'its idempotency key stays, naming no memory');
SET SESSION AUTHORIZATION mdb_citus_test_app;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT is((SELECT row(r.memory_id, r.created)::text FROM memoriesdb.remember_once('again', '{}', 'c2-key') AS r), '(,f)',
          'remember_once() with its key stores nothing again');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'the forget is sealed');
SELECT count(*) AS dave_edge_seals FROM memoriesdb.audit_seals AS s
 WHERE s.chain_key = :'dave' AND s.peers @> jsonb_build_array(jsonb_build_object('chain', :'carol'))
   AND EXISTS (SELECT 1 FROM memoriesdb.audit_log AS a WHERE a.chain_key = s.chain_key AND a.txid = s.txid
                  AND a.table_name = 'memory_edges' AND a.op = 'DELETE') \gset
SELECT is(:'dave_edge_seals'::bigint, 1::bigint, 'dave''s edge removal is sealed in his chain, naming carol''s seal of the same transaction');

-- 3. transfer() to an owner on the other worker: the memory moves to dave's shard
SELECT (SELECT m.created_at FROM memoriesdb.memories AS m WHERE m.id = :'c1') AS c1_created \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.transfer(:'c1', :'dave', 'yours now') AS t1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kd') AS _ \gset
SELECT is((SELECT row(r.owner_id, r.content, r.revision)::text FROM memoriesdb.recall(:'c1') AS r),
          row(:'dave'::uuid, 'carol keeps this, revised', 2)::text, 'dave recalls the memory he received, as its owner');
SELECT is((SELECT array_agg(l.permission) FROM memoriesdb.list_memories() AS l WHERE l.id = :'c1'), ARRAY['owner'],
          'he lists it as his own');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'c1'), 'MDB03', 'memory not found', 'carol, the giver, cannot recall it');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT array_agg(m.owner_id) FROM memoriesdb.memories AS m WHERE m.id = :'c1'), ARRAY[:'dave'::uuid],
          'one row of it, on dave''s shard');
SELECT is((SELECT row(m.created_by, m.created_at)::text FROM memoriesdb.memories AS m WHERE m.id = :'c1'),
          row(:'carol'::uuid, :'c1_created'::timestamptz)::text, 'it keeps its creator and creation time');
SELECT is((SELECT array_agg(row(r.owner_id, r.revision)::text ORDER BY r.revision) FROM memoriesdb.memory_revisions AS r WHERE r.memory_id = :'c1'),
          ARRAY[row(:'dave'::uuid, 1)::text, row(:'dave'::uuid, 2)::text], 'its revisions moved with it');
SELECT is((SELECT count(*) FROM memoriesdb.memory_grants AS g WHERE g.memory_id = :'c1'), 0::bigint,
          'the receiver''s own grant on it is gone (he owns it)');
SELECT is((SELECT array_agg(s.owner_id) FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id = :'c1'), ARRAY[:'dave'::uuid],
          'its embedding job moved with it');
SELECT is((SELECT row(x.memory_id, x.from_owner, x.to_owner)::text FROM memoriesdb.memory_transfers AS x WHERE x.id = :'t1'),
          row(:'c1'::uuid, :'carol'::uuid, :'dave'::uuid)::text, 'the transfer row is on dave''s shard');

SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'the transfer is sealed');
SELECT (SELECT a.txid FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'dave' AND a.table_name = 'memory_transfers' AND a.row_id = :'t1') AS ttx \gset
SELECT is((SELECT array_agg(row(s.chain, s.peers->0->>'chain')::text ORDER BY s.chain = :'dave')
             FROM memoriesdb.audit_seals AS s WHERE s.txid = :'ttx'::xid8 AND s.chain IN (:'carol', :'dave')),
          ARRAY[row(:'carol'::uuid, :'dave')::text, row(:'dave'::uuid, :'carol')::text],
          'the transfer''s seals in the giver''s and the receiver''s chains (one transaction id across the workers) name each other');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain(:'cp') AS v), '(t,)',
          'after the forget and the transfer, every chain verifies, and against the earlier checkpoint');

-- 4. and verification fails when a row on a worker is edited behind the ledger (then the row is put back)
SELECT a.new_row AS t1_row FROM memoriesdb.audit_log AS a
 WHERE a.chain_key = :'dave' AND a.table_name = 'memory_transfers' AND a.row_id = :'t1' \gset
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE memoriesdb.audit_log AS a SET new_row = a.new_row || '{"content_hash": "forged"}'
 WHERE a.chain_key = :'dave' AND a.table_name = 'memory_transfers' AND a.row_id = :'t1';
COMMIT;
SELECT a.id AS forged_id FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'dave' AND a.table_name = 'memory_transfers' AND a.row_id = :'t1' \gset
SELECT is((SELECT row(v.ok, v.first_broken_id = :'forged_id'::bigint)::text FROM memoriesdb.verify_audit_chain() AS v), '(f,t)',
          'an audit row edited on a worker breaks verification, which names it');
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE memoriesdb.audit_log AS a SET new_row = :'t1_row'::jsonb
 WHERE a.chain_key = :'dave' AND a.table_name = 'memory_transfers' AND a.row_id = :'t1';
COMMIT;
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain() AS v), '(t,)', 'put back, the row verifies again');

SELECT * FROM finish();
