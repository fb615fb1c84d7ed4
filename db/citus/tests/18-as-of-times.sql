-- Citus (issue 17, distribute.sql section 3o): the history's times, and a grantee's view of a memory's transfers.
-- A change counts from the start of its transaction, and one transaction has one time: on a single node every row
-- and audit row of it is stamped with now(), which is what the client sees. On Citus they were stamped with the
-- distributed transaction's stamp, taken 0.2-0.3 ms later (more when the client waits before its first call):
-- recall_as_of()/who_could_read() at a change's now() answered the state before it (the single-node suite's
-- 27-as-of). The coordinator's now() is now carried to the workers by every API call (app.citus_now) with a proof
-- (the context key's HMAC over it and the distributed transaction), and citus_now() believes nothing else: a client
-- that sets the setting itself (any app.* setting it may SET LOCAL, and Citus propagates it) cannot back-date a row.
-- And a grantee's provenance() lacked the transfers (the shards' policy shows transfer rows to the owner only).
-- Run by scripts/test.sh --citus (each call commits: docs/citus.md, several roles in one transaction).
\ir ../test_setup.psql
SELECT plan(49);

SELECT memoriesdb.create_user('uma' || (random() * 1e9)::bigint) AS uma \gset
SELECT pg_temp.user_apart('vic', :'uma') AS vic \gset
SELECT pg_temp.user_apart('xan', :'vic') AS xan \gset
SELECT memoriesdb.create_user('wes' || (random() * 1e9)::bigint) AS wes \gset
SELECT memoriesdb.create_user('mal' || (random() * 1e9)::bigint) AS mal \gset
SELECT memoriesdb.create_api_key(:'uma') AS ku \gset
SELECT memoriesdb.create_api_key(:'vic') AS kv \gset
SELECT memoriesdb.create_api_key(:'xan') AS kx \gset
SELECT memoriesdb.create_api_key(:'wes') AS kw \gset
SELECT memoriesdb.create_api_key(:'mal') AS km \gset
SELECT isnt((SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'uma'::uuid)),
            (SELECT p.nodeport FROM pg_dist_shard_placement AS p WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'vic'::uuid)),
            'uma''s and vic''s shards (and chains) are on different workers');

-- (what gives an implicit transaction its distributed transaction id, as in 12-redteam-context.sql)
SET client_min_messages = error;   -- (Citus: the temporary function stays local)
CREATE FUNCTION pg_temp.distributed_id() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
AS $$ BEGIN RETURN (SELECT count(*) FROM memoriesdb.memories); END $$;
SET client_min_messages = warning;
GRANT EXECUTE ON FUNCTION pg_temp.distributed_id() TO PUBLIC;

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
-- shares and transfers take effect at once
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT memoriesdb.accept_sender(:'uma') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kx') AS _ \gset
SELECT memoriesdb.accept_sender(:'vic') AS _ \gset
COMMIT;
-- (a reference table's row, on every node: wes accepts uma, the transaction's now() read first)
BEGIN;
SELECT now() AS s0 \gset
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
SELECT memoriesdb.accept_sender(:'uma') AS _ \gset
COMMIT;

-- 1. Every change at its transaction's now() ----------------------------------------------------------------------
BEGIN;
SELECT now() AS s1 \gset
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.remember('first words') AS m \gset
COMMIT;
BEGIN;
SELECT now() AS s2 \gset
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.revise(:'m', 'second words') AS _ \gset
COMMIT;
BEGIN;
SELECT now() AS s3 \gset
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.share(:'m', :'wes', 'read') AS _ \gset
COMMIT;
-- the transfer: the memory moves to vic's shard, on the other worker (rows written on both)
BEGIN;
SELECT now() AS s4 \gset
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.transfer(:'m', :'vic', 'yours now') AS x4 \gset
COMMIT;
-- a client that waits between BEGIN and its call: the change still counts from the start of its transaction (as on a
-- single node), not from when Citus took the distributed transaction's stamp
BEGIN;
SELECT now() AS s5 \gset
SELECT pg_sleep(0.2) AS _ \gset
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT memoriesdb.revise(:'m', 'third words') AS _ \gset
SELECT transaction_stamp AS stamp5 FROM get_current_transaction_id() \gset
COMMIT;
-- authenticate() sets the value with the context (minted in its read of the key): this transaction's now()
BEGIN;
SELECT (EXTRACT(epoch FROM now()) * 1000000)::bigint AS s_auth_us \gset
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT split_part(current_setting('app.citus_now', true), ':', 1) AS auth_tag_us \gset
COMMIT;
-- an implicit transaction (one statement, no BEGIN; authenticate() one level down): the carry propagates there too
SELECT now() AS s9, pg_temp.distributed_id() AS _n,
       query_to_xml(format('SELECT memoriesdb.authenticate(%L)', :'ku'), true, false, '') IS NOT NULL AS _a,
       memoriesdb.remember('in one statement') AS m9 \gset
RESET SESSION AUTHORIZATION;

-- (read as the superuser: the rows as stamped; each value first, then compared: section 11)
SELECT m.created_at AS m_created FROM memoriesdb.memories AS m WHERE m.owner_id = :'vic' AND m.id = :'m' \gset
SELECT is(:'m_created'::timestamptz, :'s1'::timestamptz, 'the memory''s created_at is its transaction''s now() (kept by the move)');
SELECT string_agg(r.revision || '=' || (r.created_at = CASE r.revision WHEN 1 THEN :'s1'::timestamptz WHEN 2 THEN :'s2'::timestamptz
                                                                   WHEN 3 THEN :'s5'::timestamptz END), ',' ORDER BY r.revision) AS revs
  FROM memoriesdb.memory_revisions AS r WHERE r.owner_id = :'vic' AND r.memory_id = :'m' \gset
SELECT is(:'revs'::text, '1=true,2=true,3=true', 'each revision''s created_at is its transaction''s now()');
SELECT g.created_at AS g_created FROM memoriesdb.memory_grants AS g WHERE g.owner_id = :'vic' AND g.memory_id = :'m' AND g.grantee_id = :'wes' \gset
SELECT is(:'g_created'::timestamptz, :'s3'::timestamptz, 'the grant''s created_at is the share''s now()');
SELECT x.created_at AS x_created FROM memoriesdb.memory_transfers AS x WHERE x.to_owner = :'vic' AND x.id = :'x4' \gset
SELECT is(:'x_created'::timestamptz, :'s4'::timestamptz, 'the transfer row''s created_at is the transfer''s now()');
SELECT b.txid AS txid4 FROM memoriesdb.audit_log AS b WHERE b.memory_id = :'m' AND b.table_name = 'memory_transfers' \gset
SELECT count(*) FILTER (WHERE a.txid = :'txid4'::xid8 AND a.created_at = :'s4'::timestamptz) AS n_transfer_at_s4,
       count(DISTINCT a.created_at) AS n_times,
       count(*) FILTER (WHERE a.created_at NOT IN (:'s1'::timestamptz, :'s2'::timestamptz, :'s3'::timestamptz, :'s4'::timestamptz,
                                                  :'s5'::timestamptz)) AS n_other
  FROM memoriesdb.audit_log AS a WHERE a.memory_id = :'m' \gset
SELECT is(:'n_other'::int, 0, 'every audit row of the memory, in both chains, is at one of its transactions'' now()');
SELECT is(:'n_times'::int, 5, '... one time per transaction (five)');
SELECT cmp_ok(:'n_transfer_at_s4'::int, '>=', 4, 'the move''s rows in the giver''s chain and the receiver''s are at the transfer''s now()');
SELECT count(DISTINCT a.chain_key) AS transfer_chains FROM memoriesdb.audit_log AS a WHERE a.memory_id = :'m' AND a.created_at = :'s4' \gset
SELECT is(:'transfer_chains'::int, 2, '... on both workers (two chains)');
SELECT m.created_at AS m9_created FROM memoriesdb.memories AS m WHERE m.owner_id = :'uma' AND m.id = :'m9' \gset
SELECT count(*) AS m9_rows, count(*) FILTER (WHERE a.created_at = :'s9'::timestamptz) AS m9_at_s9
  FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'uma' AND a.memory_id = :'m9' \gset
SELECT is(:'m9_created'::timestamptz, :'s9'::timestamptz, 'in an implicit transaction: the memory at its now()');
SELECT ok(:'m9_rows'::int > 0 AND :'m9_at_s9'::int = :'m9_rows'::int, '... and its audit rows');
SELECT is(:'auth_tag_us'::text, :'s_auth_us'::text, 'authenticate() sets the carried value: its transaction''s now(), in microseconds');
SELECT cmp_ok(:'stamp5'::timestamptz - :'s5'::timestamptz, '>=', interval '200 ms',
              'the waiting client''s distributed transaction was stamped 200 ms after its now()');
SELECT (SELECT count(*) FROM run_command_on_placements('memoriesdb.accepted_senders',
          format($$SELECT created_at FROM %%s WHERE user_id = %L AND sender_id = %L$$, :'wes', :'uma')) AS r
         WHERE r.success AND r.result::timestamptz = :'s0'::timestamptz) AS replicas_at_s0,
       (SELECT count(*) FROM run_command_on_placements('memoriesdb.accepted_senders', 'SELECT 1')) AS replicas \gset
SELECT is(:'replicas_at_s0'::int, :'replicas'::int, 'a reference table''s row has its transaction''s now() on every replica');

-- a backend's write (vouch(), which sets the value as authenticate() does)
SET SESSION AUTHORIZATION mdb_citus_test_backend;
\ir ../test_session.psql
BEGIN;
SELECT now() AS s10 \gset
SELECT memoriesdb.vouch(:'uma') AS _ \gset
SELECT memoriesdb.remember('vouched for') AS m10 \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT m.created_at AS m10_created FROM memoriesdb.memories AS m WHERE m.owner_id = :'uma' AND m.id = :'m10' \gset
SELECT count(*) AS m10_rows, count(*) FILTER (WHERE a.created_at = :'s10'::timestamptz AND a.vouched_by IS NOT NULL) AS m10_at_s10
  FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'uma' AND a.memory_id = :'m10' \gset
SELECT is(:'m10_created'::timestamptz, :'s10'::timestamptz, 'a backend''s write (vouch()): at its transaction''s now()');
SELECT ok(:'m10_rows'::int > 0 AND :'m10_at_s10'::int = :'m10_rows'::int, '... and its audit rows (vouched)');

-- 2. The history answers at those times as on a single node ----------------------------------------------------------
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT revision AS at_s1 FROM memoriesdb.recall_as_of(:'m', :'s1') \gset
COMMIT;
SELECT is(:'at_s1'::int, 1, 'recall_as_of at the creation''s now(): revision 1');
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT revision AS at_s2 FROM memoriesdb.recall_as_of(:'m', :'s2') \gset
COMMIT;
SELECT is(:'at_s2'::int, 2, 'recall_as_of at a revision''s now(): that revision');
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT revision AS before_s2 FROM memoriesdb.recall_as_of(:'m', :'s2'::timestamptz - interval '1 microsecond') \gset
COMMIT;
SELECT is(:'before_s2'::int, 1, '... a microsecond before it: the one before');
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT revision AS at_s5, revised_at AS revised5 FROM memoriesdb.recall_as_of(:'m', :'s5') \gset
COMMIT;
SELECT is(:'at_s5'::int, 3, 'the waiting client''s revision counts from the start of its transaction');
SELECT is(:'revised5'::timestamptz, :'s5'::timestamptz, '... and is dated so');
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT count(*) FILTER (WHERE w.user_id = :'wes') AS wes_at_s3, string_agg(w.level, ',' ORDER BY w.level) AS levels_s3
  FROM memoriesdb.who_could_read(:'m', :'s3') AS w \gset
COMMIT;
SELECT is(:'wes_at_s3'::int, 1, 'who_could_read at the share''s now(): the grantee');
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT count(*) FILTER (WHERE w.user_id = :'wes') AS wes_before_s3 FROM memoriesdb.who_could_read(:'m', :'s3'::timestamptz - interval '1 microsecond') AS w \gset
COMMIT;
SELECT is(:'wes_before_s3'::int, 0, '... a microsecond before it: not yet');
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT w.user_id AS owner_at_s4, w.since AS owner_since FROM memoriesdb.who_could_read(:'m', :'s4') AS w WHERE w.level = 'owner' \gset
COMMIT;
SELECT is(:'owner_at_s4'::uuid, :'vic'::uuid, 'at the transfer''s now(): the receiver owns it');
SELECT is(:'owner_since'::timestamptz, :'s4'::timestamptz, '... since then');
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT w.user_id AS owner_before_s4 FROM memoriesdb.who_could_read(:'m', :'s4'::timestamptz - interval '1 microsecond') AS w WHERE w.level = 'owner' \gset
COMMIT;
SELECT is(:'owner_before_s4'::uuid, :'uma'::uuid, '... a microsecond before it: the giver');

-- 3. Back-dating: the carried time is believed only with its proof ---------------------------------------------------
-- a client sets the carried setting to a past time (with a made-up proof; Citus propagates the SET LOCAL to every
-- worker connection of the transaction, before and after it) and remembers
BEGIN;
SELECT now() AS s6, (EXTRACT(epoch FROM now() - interval '1 day') * 1000000)::bigint || ':' || repeat('0', 64) AS forged \gset
SET LOCAL app.citus_now = :'forged';
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SET LOCAL app.citus_now = :'forged';
SELECT memoriesdb.remember('back-dated?') AS m6 \gset
COMMIT;
-- ... with the value a call of an earlier transaction carried (a valid proof, of that transaction)
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.remember('an earlier call') AS m7a \gset
SELECT current_setting('app.citus_now') AS old_tag \gset
COMMIT;
SELECT pg_sleep(0.05) AS _ \gset
BEGIN;
SELECT now() AS s7 \gset
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SET LOCAL app.citus_now = :'old_tag';
SELECT memoriesdb.revise(:'m7a', 'replayed?') AS _ \gset
COMMIT;
-- ... and on a reference table (every replica), the past value set on the workers and the call's own value put
-- back on the coordinator only (set_config() is not propagated): the replicas would disagree if the call did not
-- carry its value again
BEGIN;
SELECT now() AS s8 \gset
SELECT memoriesdb.authenticate(:'km') AS _ \gset
SELECT memoriesdb.remember('mal''s') AS _ \gset
SELECT current_setting('app.citus_now') AS own_tag \gset
SET LOCAL app.citus_now = :'forged';
SELECT set_config('app.citus_now', :'own_tag', true) AS _ \gset
SELECT memoriesdb.accept_sender(:'uma') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;

SELECT m.created_at AS m6_created FROM memoriesdb.memories AS m WHERE m.owner_id = :'uma' AND m.id = :'m6' \gset
SELECT is(:'m6_created'::timestamptz, :'s6'::timestamptz, 'a past time set by the client: the memory is dated at its transaction''s now()');
SELECT count(*) AS m6_rows, count(*) FILTER (WHERE a.created_at = :'s6'::timestamptz) AS m6_at_s6
  FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'uma' AND a.memory_id = :'m6' \gset
SELECT is(:'m6_at_s6'::int, :'m6_rows'::int, '... and so is every audit row of it');
SELECT cmp_ok(:'m6_rows'::int, '>', 0, '... (there are some)');
SELECT r.created_at AS r7_created FROM memoriesdb.memory_revisions AS r WHERE r.owner_id = :'uma' AND r.memory_id = :'m7a' AND r.revision = 2 \gset
SELECT is(:'r7_created'::timestamptz, :'s7'::timestamptz, 'an earlier transaction''s carried value replayed: the revision is dated at its own now()');
SELECT (SELECT count(*) FROM run_command_on_placements('memoriesdb.accepted_senders',
          format($$SELECT created_at FROM %%s WHERE user_id = %L AND sender_id = %L$$, :'mal', :'uma')) AS r
         WHERE r.success AND r.result::timestamptz = :'s8'::timestamptz) AS replicas_at_s8 \gset
SELECT is(:'replicas_at_s8'::int, :'replicas'::int, 'a past value on the workers, the own one on the coordinator: every replica at the transaction''s now()');

-- citus_now() itself, as the superuser (who holds the key: only the key makes a proof), on the coordinator and on a
-- worker (a query on a shard runs it there)
BEGIN;
SELECT (EXTRACT(epoch FROM now() - interval '1 day') * 1000000)::bigint AS past, now() - interval '1 day' AS past_ts \gset
SELECT :'past' || ':' || memoriesdb_internal.context_proof(jsonb_build_array('citus_now', :'past')::text, ck.ipad, ck.opad) AS tag,
       (EXTRACT(epoch FROM clock_timestamp() + interval '1 second') * 1000000)::bigint AS later
  FROM memoriesdb_internal.context_key AS ck \gset
SELECT transaction_stamp AS stamp FROM get_current_transaction_id() \gset
SET LOCAL app.citus_now = :'tag';
SELECT memoriesdb_internal.citus_now() AS proven_here \gset
SELECT memoriesdb_internal.citus_now() AS proven_there, inet_server_port() AS port FROM memoriesdb.memories WHERE owner_id = :'uma' AND id = :'m6' \gset
SET LOCAL app.citus_now = :'forged';
SELECT memoriesdb_internal.citus_now() AS forged_here \gset
SELECT memoriesdb_internal.citus_now() AS forged_there FROM memoriesdb.memories WHERE owner_id = :'uma' AND id = :'m6' \gset
SET LOCAL app.citus_now = :'old_tag';
SELECT memoriesdb_internal.citus_now() AS replayed_here \gset
SELECT memoriesdb_internal.citus_now() AS replayed_there FROM memoriesdb.memories WHERE owner_id = :'uma' AND id = :'m6' \gset
SELECT :'later' || ':' || memoriesdb_internal.context_proof(jsonb_build_array('citus_now', :'later')::text, ck.ipad, ck.opad) AS later_tag
  FROM memoriesdb_internal.context_key AS ck \gset
SET LOCAL app.citus_now = :'later_tag';
SELECT memoriesdb_internal.citus_now() AS later_here \gset
SELECT memoriesdb_internal.citus_now() AS later_there FROM memoriesdb.memories WHERE owner_id = :'uma' AND id = :'m6' \gset
SET LOCAL app.citus_now = 'yesterday';
SELECT memoriesdb_internal.citus_now() AS garbled_there FROM memoriesdb.memories WHERE owner_id = :'uma' AND id = :'m6' \gset
COMMIT;
SELECT isnt(:'port'::int, inet_server_port(), '(the query on the shard ran on a worker)');
SELECT is(:'proven_here'::timestamptz, :'past_ts'::timestamptz, 'citus_now() believes a value proven by the key for this transaction (here)');
SELECT is(:'proven_there'::timestamptz, :'past_ts'::timestamptz, '... and on the worker');
SELECT is(:'forged_here'::timestamptz, :'stamp'::timestamptz, 'a value without its proof: the distributed transaction''s stamp (here)');
SELECT is(:'forged_there'::timestamptz, :'stamp'::timestamptz, '... and on the worker');
SELECT is(:'replayed_here'::timestamptz, :'stamp'::timestamptz, 'another transaction''s proven value: the stamp (here)');
SELECT is(:'replayed_there'::timestamptz, :'stamp'::timestamptz, '... and on the worker');
SELECT is(:'later_there'::timestamptz, :'stamp'::timestamptz, 'a proven value after the stamp (the coordinator starts before it): the stamp');
SELECT is(:'later_here'::timestamptz, :'stamp'::timestamptz, '... here too');
SELECT is(:'garbled_there'::timestamptz, :'stamp'::timestamptz, 'a value of another form: the stamp');

-- 4. A grantee's view of the memory's transfers: vic passes it on to xan; wes (the grant followed the memory) reads
-- its provenance as on a single node: both transfers, vic (with whom wes never dealt) by a pseudonym
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT memoriesdb.transfer(:'m', :'xan', 'onwards') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
SELECT string_agg(coalesce(p.note, p.event), ',' ORDER BY p.at, p.event) AS wes_events,
       string_agg(p.from_owner || '>' || p.to_owner, ',' ORDER BY p.at) FILTER (WHERE p.event = 'transferred') AS wes_transfers,
       string_agg(p.actor::text, ',' ORDER BY p.at) FILTER (WHERE p.event = 'transferred') AS wes_transfer_actors
  FROM memoriesdb.provenance(:'m') AS p \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'km') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.provenance(%L)', :'m'), 'MDB03', 'memory not found',
                 'a stranger is refused provenance() as before');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.provenance(%L)', :'m'), 'MDB03', 'memory not found',
                 '... and so is the former owner');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT memoriesdb_internal.disclosed_user(:'vic', :'wes', :'xan') AS vic_to_wes,
       memoriesdb_internal.disclosed_user(:'uma', :'wes', :'xan') AS uma_to_wes \gset
SELECT is(:'wes_events'::text, 'created,revised,yours now,revised,onwards', 'a grantee''s provenance(): the revisions and both transfers');
SELECT is(:'wes_transfers'::text, format('%s>%s,%s>%s', :'uma_to_wes', :'vic_to_wes', :'vic_to_wes', :'xan'),
          '... from and to as on a single node: xan (the owner) by id, uma and vic (her grant is now xan''s) by pseudonyms');
SELECT is(:'wes_transfer_actors'::text, format('%s,%s', :'uma_to_wes', :'vic_to_wes'), '... and who made them, likewise');
SELECT ok(:'vic_to_wes'::uuid NOT IN (:'vic'::uuid, :'uma'::uuid) AND :'uma_to_wes'::uuid NOT IN (:'vic'::uuid, :'uma'::uuid),
          '(the pseudonyms are not their ids)');
SELECT ok(NOT has_function_privilege('mdb_citus_test_app', 'memoriesdb_internal.citus_memory_transfers(uuid)', 'EXECUTE'),
          'a client cannot read transfer rows through the helper');
SELECT is((SELECT count(*) FROM memoriesdb_internal.citus_memory_transfers(:'m')), 0::bigint,
          'the helper shows nothing without a context that may see the memory');

SELECT * FROM finish();
