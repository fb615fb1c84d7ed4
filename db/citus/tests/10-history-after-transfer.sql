-- Citus (issue 17, section 9): the history after a transfer. On Citus transfer() MOVES the memory to the receiver's
-- shard: the audit log shows, in the giver's chain, DELETEs of the memory and its rows, and in the receiver's chain
-- INSERTs of the same ids and the transfer row, one transaction id; the single node writes an UPDATE of the owner in
-- the giver's chain. who_could_read(), recall_as_of(), audit_receipts() and verify_receipt() must answer on Citus as
-- they do on a single node for the same history (db/tests/27-as-of.sql, 28-audit-chains.sql, 31-redteam-chains.sql):
-- alice remembers, revises, shares with carol and with bob, transfers to bob (his shard on the other worker), bob
-- revises. A change counts from the start of its transaction: the time the ledger stamped its rows with (on Citus the
-- distributed transaction's stamp, memoriesdb_internal.citus_now(); on a single node now()), read back from the rows.
-- Run by scripts/test.sh --citus (each call commits: docs/citus.md, several roles in one transaction).
\ir ../test_setup.psql
SELECT plan(48);

SELECT memoriesdb.create_user('alice' || (random() * 1e9)::bigint) AS alice \gset
SELECT pg_temp.user_apart('bob', :'alice') AS bob \gset
-- (carol on alice's worker: m2 moves between bob's and hers)
SELECT pg_temp.user_apart('carol', :'bob') AS carol \gset
SELECT memoriesdb.create_api_key(:'alice') AS ka \gset
SELECT memoriesdb.create_api_key(:'bob') AS kb \gset
SELECT memoriesdb.create_api_key(:'carol') AS kc \gset
SELECT isnt((SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'alice'::uuid)),
            (SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'bob'::uuid)),
            'alice''s and bob''s shards (and chains) are on different workers');

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
-- shares and transfers take effect at once: bob and carol accept alice
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.accept_sender(:'alice') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.accept_sender(:'alice') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.accept_sender(:'bob') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.accept_sender(:'carol') AS _ \gset
COMMIT;
SELECT clock_timestamp() AS t0 \gset
-- s1: alice remembers
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('first words', '{"v": 1}') AS m \gset
COMMIT;
SELECT clock_timestamp() AS t1 \gset
-- s2: revision 2
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.revise(:'m', 'second words', '{"v": 2}') AS _ \gset
COMMIT;
SELECT clock_timestamp() AS t2 \gset
-- s3: shared with carol (write); s3b: with bob (read; his grant goes when he becomes the owner)
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.share(:'m', :'carol', 'write') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.share(:'m', :'bob', 'read') AS _ \gset
COMMIT;
SELECT clock_timestamp() AS t3 \gset
-- s4: transferred to bob (moved to his shard, on the other worker)
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.transfer(:'m', :'bob', 'yours now') AS x \gset
COMMIT;
SELECT clock_timestamp() AS t4 \gset
-- s5: bob revises (revision 3)
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.revise(:'m', 'third words', '{"v": 3}') AS _ \gset
COMMIT;
SELECT clock_timestamp() AS t5 \gset
RESET SESSION AUTHORIZATION;

-- each transaction's time, as the ledger stamped its rows (creation times survive the move)
SELECT m.created_at AS s1 FROM memoriesdb.memories AS m WHERE m.owner_id = :'bob' AND m.id = :'m' \gset
SELECT r.created_at AS s2 FROM memoriesdb.memory_revisions AS r WHERE r.owner_id = :'bob' AND r.memory_id = :'m' AND r.revision = 2 \gset
SELECT r.created_at AS s5 FROM memoriesdb.memory_revisions AS r WHERE r.owner_id = :'bob' AND r.memory_id = :'m' AND r.revision = 3 \gset
SELECT g.created_at AS s3 FROM memoriesdb.memory_grants AS g WHERE g.owner_id = :'bob' AND g.memory_id = :'m' AND g.grantee_id = :'carol' \gset
SELECT x.created_at AS s4 FROM memoriesdb.memory_transfers AS x WHERE x.to_owner = :'bob' AND x.id = :'x' \gset
-- bob's grant is gone with the move; its time from its audit row (as the ledger stamped it)
SELECT (a.new_row->>'created_at')::timestamptz AS s3b FROM memoriesdb.audit_log AS a
 WHERE a.chain_key = :'alice' AND a.table_name = 'memory_grants' AND a.op = 'INSERT' AND a.new_row->>'grantee_id' = :'bob' \gset
SELECT memoriesdb_internal.disclosed_user(:'alice', :'bob', :'bob') AS alice_to_bob,
       memoriesdb_internal.disclosed_user(:'carol', :'bob', :'bob') AS carol_to_bob \gset
-- every audit row of a transaction carries its time: one transaction, one time, on every node
SELECT count(*) AS move_times FROM (SELECT DISTINCT a.created_at FROM memoriesdb.audit_log AS a
                                     WHERE a.memory_id = :'m' AND a.txid = (SELECT b.txid FROM memoriesdb.audit_log AS b
                                                                             WHERE b.chain_key = :'bob' AND b.table_name = 'memory_transfers' AND b.row_id = :'x')) AS d \gset
SELECT is(:'move_times'::bigint, 1::bigint, 'the transfer''s audit rows in both chains (both workers) carry one time');
SELECT count(*) AS s4_rows FROM memoriesdb.audit_log AS a WHERE a.memory_id = :'m' AND a.created_at = :'s4'::timestamptz \gset
SELECT cmp_ok(:'s4_rows'::bigint, '>=', 3::bigint, '... the transfer''s, as stamped on its rows (the move''s DELETEs and INSERTs, the transfer row)');

-- What the new owner sees, for every time ------------------------------------------
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
-- recall_as_of: the revision current at each time
SELECT is_empty(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t0'),
  'recall_as_of: no row before the memory existed');
SELECT results_eq(format('SELECT revision, content, metadata, content_hash, revised_at, revised_by FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t1'),
  format($$ VALUES (1, 'first words'::text, '{"v": 1}'::jsonb, sha256('first words'::bytea), %L::timestamptz, %L::uuid) $$, :'s1', :'alice_to_bob'),
  'recall_as_of after the creation: revision 1, its content, metadata, hash, time and author');
SELECT results_eq(format('SELECT revision, content, metadata, revised_at, revised_by FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t2'),
  format($$ VALUES (2, 'second words'::text, '{"v": 2}'::jsonb, %L::timestamptz, %L::uuid) $$, :'s2', :'alice_to_bob'),
  'recall_as_of after the first revision: revision 2');
SELECT results_eq(format('SELECT revision, content FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t3'),
  $$ VALUES (2, 'second words'::text) $$, 'recall_as_of: sharing makes no revision');
SELECT results_eq(format('SELECT revision, content, metadata, revised_at, revised_by FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t4'),
  format($$ VALUES (2, 'second words'::text, '{"v": 2}'::jsonb, %L::timestamptz, %L::uuid) $$, :'s2', :'alice_to_bob'),
  'recall_as_of after the transfer: still revision 2, made by alice when she made it (the move is no revision)');
SELECT results_eq(format('SELECT revision, content, metadata, revised_at, revised_by FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t5'),
  format($$ VALUES (3, 'third words'::text, '{"v": 3}'::jsonb, %L::timestamptz, %L::uuid) $$, :'s5', :'bob'),
  'recall_as_of after bob''s revision: revision 3, his');
SELECT results_eq(format('SELECT revision, content FROM memoriesdb.recall_as_of(%L, %L::timestamptz - interval ''1 microsecond'')', :'m', :'s2'),
  $$ VALUES (1, 'first words'::text) $$, 'recall_as_of just before a revision''s transaction: the one before');
SELECT results_eq(format('SELECT revision FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'s2'),
  $$ VALUES (2) $$, 'recall_as_of at the very start of a revision''s transaction: that revision');
SELECT results_eq(format('SELECT revision, revised_at FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'s4'),
  format($$ VALUES (2, %L::timestamptz) $$, :'s2'), 'recall_as_of at the start of the transfer''s transaction: revision 2, as it was made');
SELECT results_eq(format('SELECT revision, content FROM memoriesdb.recall_as_of(%L, statement_timestamp())', :'m'),
  $$ VALUES (3, 'third words'::text) $$, 'the present is a time it answers for');

-- who_could_read: the owner and the unexpired grants at each time
SELECT is_empty(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t0'),
  'who_could_read: nobody before the memory existed');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by, vouched_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t1'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %1$L::uuid, NULL::name) $$, :'alice_to_bob', :'s1'),
  'after the creation: alice alone, owner since then, by her own write (proven by her key: nobody vouched)');
SELECT results_eq(format('SELECT user_id, level FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t2'),
  format($$ VALUES (%L::uuid, 'owner'::text) $$, :'alice_to_bob'), 'a revision gives nobody access');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by FROM memoriesdb.who_could_read(%L, %L) ORDER BY level', :'m', :'t3'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %1$L::uuid),
                   (%3$L, 'read', %4$L, NULL, %1$L), (%5$L, 'write', %6$L, NULL, %1$L) $$,
         :'alice_to_bob', :'s1', :'bob', :'s3b', :'carol_to_bob', :'s3'),
  'after the shares: alice, bob (read), carol (write), each since alice shared');
SELECT results_eq(format('SELECT user_id, level FROM memoriesdb.who_could_read(%L, %L::timestamptz - interval ''1 microsecond'') ORDER BY level', :'m', :'s4'),
  format($$ VALUES (%L::uuid, 'owner'::text), (%L, 'read'), (%L, 'write') $$, :'alice_to_bob', :'bob', :'carol_to_bob'),
  'a microsecond before the transfer''s transaction began: alice''s, shared with bob and carol');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'s4'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %3$L::uuid), (%4$L, 'write', %5$L, NULL, %3$L) $$,
         :'bob', :'s4', :'alice_to_bob', :'carol_to_bob', :'s3'),
  'at the start of the transfer''s transaction: bob''s, given by alice; carol''s grant followed it, since alice gave it; bob''s own is gone');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by, vouched_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t4'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %3$L::uuid, NULL::name),
                   (%4$L, 'write', %5$L, NULL, %3$L, NULL) $$,
         :'bob', :'s4', :'alice_to_bob', :'carol_to_bob', :'s3'),
  'after the transfer: the same (the move''s DELETEs and INSERTs read as one change of owner)');
SELECT results_eq(format('SELECT user_id, level, since, given_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t5'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, %3$L::uuid), (%4$L, 'write', %5$L, %3$L) $$,
         :'bob', :'s4', :'alice_to_bob', :'carol_to_bob', :'s3'),
  'bob''s revision changes no reader');
SELECT results_eq(format('SELECT user_id, level, since, given_by FROM memoriesdb.who_could_read(%L, statement_timestamp())', :'m'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, %3$L::uuid), (%4$L, 'write', %5$L, %3$L) $$,
         :'bob', :'s4', :'alice_to_bob', :'carol_to_bob', :'s3'),
  'now: the same');
COMMIT;

-- Custody: only the current owner asks ---------------------------------------------
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t3'), 'MDB03', 'memory not found',
  'after the transfer the former owner is refused who_could_read, even for a time she owned it');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t1'), 'MDB03', 'memory not found',
  'and recall_as_of');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format('SELECT memoriesdb.audit_receipts(%L)', :'m'), 'MDB03', NULL, 'and audit_receipts');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT is((SELECT content FROM memoriesdb.recall(:'m')), 'third words', 'carol may read the memory now (the grant that followed it)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t5'), 'MDB03', 'memory not found',
  'but a grantee is refused its history');
COMMIT;

-- Receipts: bob's own chain, and verified against a checkpoint taken after ------------
RESET SESSION AUTHORIZATION;
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'the coordinator seals what waits (the transfer''s two chains, bob''s revision)');
SELECT memoriesdb.audit_seal_pending() AS _ \gset
SET SESSION AUTHORIZATION mdb_citus_test_auditor;
\ir ../test_session.psql
SELECT memoriesdb.audit_checkpoint() AS cp \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
CREATE TEMP TABLE rcpts (n integer, r jsonb);
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
INSERT INTO rcpts SELECT row_number() OVER (), r FROM memoriesdb.audit_receipts(:'m') AS r;
COMMIT;
SELECT count(*) AS n_rcpts, count(*) FILTER (WHERE r->>'chain' = :'bob') AS n_bob,
       count(*) FILTER (WHERE r ? 'txid') AS n_txid FROM rcpts \gset
SELECT is(:'n_rcpts'::bigint, 2::bigint, 'bob has two receipts of the memory: the transfer to him, and his revision');
SELECT is(:'n_bob'::bigint, 2::bigint, 'both of his own chain (none of alice''s: her user id, her seal count)');
SELECT is(:'n_txid'::bigint, 0::bigint, 'a receipt carries no txid');
SELECT ok((SELECT bool_and((r.r->>'seq')::bigint < (q.r->>'seq')::bigint) FROM rcpts AS r JOIN rcpts AS q ON q.n = r.n + 1),
  'oldest first');
SELECT r AS r_transfer FROM rcpts WHERE n = 1 \gset
SELECT r AS r_revise FROM rcpts WHERE n = 2 \gset
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_receipt(%L, %L) $$, :'r_transfer', :'cp'),
  $$ VALUES (true, NULL::text) $$, 'bob''s receipt of the transfer is in the history the checkpoint commits to');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_receipt(%L, %L) $$, :'r_revise', :'cp'),
  $$ VALUES (true, NULL::text) $$, '... and so is his receipt of his revision');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.verify_receipt(%L, %L) $$, :'r_transfer', :'cp'), 'MDB25', 'not a receipt of your chain',
  'alice may not probe bob''s chain with his receipt');
COMMIT;
-- a write after the checkpoint: its receipt is named as newer
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.revise(:'m', 'fourth words') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT memoriesdb.audit_seal_pending() AS _ \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT r AS r_late FROM memoriesdb.audit_receipts(:'m') AS r ORDER BY (r->>'seq')::bigint DESC LIMIT 1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT matches((SELECT problem FROM memoriesdb.verify_receipt(:'r_late', :'cp')), 'taken before the write',
  'a receipt newer than the checkpoint is named as such');
COMMIT;
SET SESSION AUTHORIZATION mdb_citus_test_auditor;
\ir ../test_session.psql
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_receipt(%L, %L) $$, :'r_transfer', :'cp'),
  $$ VALUES (true, NULL::text) $$, 'the auditor verifies bob''s receipt of the transfer');
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_receipt(%L, %L) $$, :'r_revise', :'cp'),
  $$ VALUES (true, NULL::text) $$, '... and of his revision');
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (true, NULL::text) $$, 'and the whole ledger against the checkpoint');

-- Logged like every read ------------------------------------------------------------
RESET SESSION AUTHORIZATION;
SELECT coalesce(max(l.id), 0) AS log_before FROM memoriesdb.access_log AS l \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT count(*) AS _ FROM memoriesdb.who_could_read(:'m', :'t3') \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT count(*) AS _ FROM memoriesdb.who_could_read(:'m', :'t0') \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT count(*) AS _ FROM memoriesdb.recall_as_of(:'m', :'t2') \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t2'), 'MDB03', 'memory not found',
  'alice asks again, refused');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT results_eq(format($$ SELECT function, actor, sqlstate, memory_ids, vouched_by FROM memoriesdb.access_log AS l
                             WHERE l.id > %s AND l.memory_ids @> ARRAY[%L::uuid] ORDER BY l.id $$, :'log_before', :'m'),
  format($$ VALUES ('who_could_read'::text, %1$L::uuid, NULL::text, ARRAY[%2$L::uuid], NULL::name),
                   ('who_could_read', %1$L, NULL, ARRAY[%2$L::uuid], NULL),
                   ('recall_as_of', %1$L, NULL, ARRAY[%2$L::uuid], NULL),
                   ('recall_as_of', %3$L, 'MDB03', ARRAY[%2$L::uuid], NULL) $$, :'bob', :'m', :'alice'),
  'one access log entry per call: bob''s reads of the history (his, the memory, nobody vouched), alice''s refusal');
SELECT results_eq(format($$ SELECT function, count(*) FROM memoriesdb.access_log AS l
                             WHERE l.memory_ids @> ARRAY[%L::uuid] AND l.actor = %L AND l.sqlstate = 'MDB03'
                               AND l.function IN ('who_could_read', 'recall_as_of') GROUP BY 1 ORDER BY 1 $$, :'m', :'alice'),
  $$ VALUES ('recall_as_of'::text, 2::bigint), ('who_could_read', 1::bigint) $$,
  'the former owner''s refused attempts are logged, under the function refused');
SELECT count(*) AS history_reads FROM memoriesdb.access_log AS l
 WHERE l.memory_ids @> ARRAY[:'m'::uuid] AND l.sqlstate IS NULL AND l.function IN ('who_could_read', 'recall_as_of') \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT is((SELECT count(*) FROM memoriesdb.access_history(:'m') WHERE function IN ('who_could_read', 'recall_as_of') AND outcome = 'read'),
  :'history_reads'::bigint, 'the owner finds every one of these reads in access_history()');
COMMIT;
RESET SESSION AUTHORIZATION;

-- A memory that comes back: carol gives m2 to bob, who gives it back -------------------
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.remember('there and back') AS m2 \gset
COMMIT;
SELECT clock_timestamp() AS t6 \gset
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.transfer(:'m2', :'bob') AS x2 \gset
COMMIT;
SELECT clock_timestamp() AS t7 \gset
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.transfer(:'m2', :'carol') AS x3 \gset
COMMIT;
SELECT clock_timestamp() AS t8 \gset
RESET SESSION AUTHORIZATION;
SELECT m.created_at AS s6 FROM memoriesdb.memories AS m WHERE m.owner_id = :'carol' AND m.id = :'m2' \gset
SELECT x.created_at AS s7 FROM memoriesdb.memory_transfers AS x WHERE x.to_owner = :'bob' AND x.id = :'x2' \gset
SELECT x.created_at AS s8 FROM memoriesdb.memory_transfers AS x WHERE x.to_owner = :'carol' AND x.id = :'x3' \gset
SELECT memoriesdb_internal.disclosed_user(:'bob', :'carol', :'carol') AS bob_to_carol \gset
SELECT memoriesdb.audit_seal_pending() AS _ \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT results_eq(format('SELECT user_id, level, since, given_by FROM memoriesdb.who_could_read(%L, %L)', :'m2', :'t6'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, %1$L::uuid) $$, :'carol', :'s6'),
  'm2 before it left: carol''s, by her own write');
SELECT results_eq(format('SELECT user_id, level, since, given_by FROM memoriesdb.who_could_read(%L, %L)', :'m2', :'t7'),
  format($$ VALUES (%L::uuid, 'owner'::text, %L::timestamptz, %L::uuid) $$, :'bob', :'s7', :'carol'),
  'while bob had it: his, given by carol');
SELECT results_eq(format('SELECT user_id, level, since, given_by FROM memoriesdb.who_could_read(%L, %L)', :'m2', :'t8'),
  format($$ VALUES (%L::uuid, 'owner'::text, %L::timestamptz, %L::uuid) $$, :'carol', :'s8', :'bob_to_carol'),
  'back with carol: hers since it came back, given by bob');
SELECT results_eq(format('SELECT revision, content, revised_at, revised_by FROM memoriesdb.recall_as_of(%L, %L)', :'m2', :'t8'),
  format($$ VALUES (1, 'there and back'::text, %L::timestamptz, %L::uuid) $$, :'s6', :'carol'),
  'its one revision, as she made it (neither move is a revision)');
COMMIT;
CREATE TEMP TABLE rcpts2 (r jsonb);
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
INSERT INTO rcpts2 SELECT r FROM memoriesdb.audit_receipts(:'m2') AS r;
COMMIT;
SELECT count(*) AS n2, count(*) FILTER (WHERE r->>'chain' = :'carol') AS n2_carol FROM rcpts2 \gset
SELECT is(row(:'n2', :'n2_carol')::text, '(3,3)',
  'carol''s receipts of m2: her creation, her giving it, its coming back (her chain''s seals; none of bob''s)');

RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
