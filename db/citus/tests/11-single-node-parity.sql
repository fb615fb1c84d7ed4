-- Citus (issue 17, next step 4: the single-node suite on Citus): the API calls of db/tests/*.sql that errored or
-- answered otherwise through the coordinator than on a single node, fixed in db/citus/distribute.sql (sections 3l,
-- 4e, 4f, 5; offers, list_grants(memory_id) and a grantee's revise() were fixed meanwhile in 3k, 3j and 3: kept here as
-- the suite's cases; docs/citus.md, "The single-node suite on Citus"), each as a client meets it: owners on both
-- workers, one call per transaction, contexts by authenticate() (vouch() for the backend). Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(64);

SELECT memoriesdb.create_user('ada' || (random() * 1e9)::bigint) AS ada \gset
SELECT pg_temp.user_apart('ben', :'ada') AS ben \gset
SELECT pg_temp.user_apart('cy', :'ben') AS cy \gset
SELECT memoriesdb.create_user('dot' || (random() * 1e9)::bigint) AS dot \gset
SELECT memoriesdb.create_api_key(:'ada') AS ka \gset
SELECT memoriesdb.create_api_key(:'ben') AS kb \gset
SELECT memoriesdb.create_api_key(:'cy') AS kc \gset
SELECT memoriesdb.create_api_key(:'dot') AS kd \gset
-- (ada and ben on different workers, cy on ada's)
SELECT is((SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement AS p
            WHERE p.shardid IN (get_shard_id_for_distribution_column('memoriesdb.memories', :'ada'::uuid),
                                get_shard_id_for_distribution_column('memoriesdb.memories', :'ben'::uuid))), 2::bigint,
          'ada''s and ben''s shards are on different workers');

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
SET application_name = 'citus-parity';
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('ada: the first draft') AS a1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('ada: the second draft') AS a2 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.remember('ben: the review') AS b1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.accept_sender(:'ben') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kd') AS _ \gset
SELECT memoriesdb.accept_sender(:'cy') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;

-- 1. the audit rows written on a worker name the client's role and application_name (07-audit; section 4e)
SELECT a.db_role, a.application_name FROM memoriesdb.audit_log AS a
 WHERE a.table_name = 'memories' AND a.row_id = :'a1' AND a.op = 'INSERT' \gset
SELECT is(:'db_role'::text, 'mdb_citus_test_app', 'an audit row written on a worker names the client''s login (as its db_role), not the role Citus connected as');
SELECT is(:'application_name'::text, 'citus-parity', '... and the client''s application_name, not Citus''s');

-- 2. offers: ada has not been accepted by ben, so her share and her transfer wait as offers (05-sharing, 22-offers;
-- section 3k)
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.share(:'a1', :'ben') AS share_offer \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.transfer(:'a2', :'ben', 'yours now') AS transfer_offer \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT is(memoriesdb.accept_offer(:'share_offer'), :'a1'::uuid, 'ben accepts ada''s share offer (her memory locked on her shard, the offer on hers)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT r.content AS shared_content FROM memoriesdb.recall(:'a1') AS r \gset
COMMIT;
SELECT is(:'shared_content'::text, 'ada: the first draft', '... and recalls the shared memory from the other worker');
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT throws_ok(format('SELECT memoriesdb.accept_offer(%L)', :'share_offer'), 'MDB17', 'offer not found', 'an offer is accepted once');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT is(memoriesdb.accept_offer(:'transfer_offer'), :'a2'::uuid, 'ben accepts ada''s transfer offer');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT r.owner_id AS a2_owner, r.created_by AS a2_creator FROM memoriesdb.recall(:'a2') AS r \gset
SELECT count(*) AS ben_offers FROM memoriesdb.offers() \gset
COMMIT;
SELECT is(:'a2_owner'::text, :'ben', '... the memory is his (moved to his shard)');
SELECT is(:'a2_creator'::text, :'ada', '... ada stays its creator');
SELECT is(:'ben_offers'::text, '0', 'no offer is left pending');
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a2'), 'MDB03', 'memory not found', 'ada keeps nothing of the transferred memory');
COMMIT;

-- 3. list_grants(memory_id) (05-sharing, 06-transfer; section 3j)
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT count(*) AS n_grants, bool_and(g.grantee_id = :'ben') AS to_ben, bool_or(g.received) AS received
  FROM memoriesdb.list_grants(:'a1') AS g \gset
COMMIT;
SELECT is(:'n_grants'::text, '1', 'list_grants(memory_id) lists the memory''s grant');
SELECT is(:'to_ben'::text, 't', '... to ben');
SELECT is(:'received'::text, 'f', '... given, not received');
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT count(*) AS ben_sees, bool_and(g.received) AS ben_received FROM memoriesdb.list_grants(:'a1') AS g \gset
SELECT count(*) AS ben_none FROM memoriesdb.list_grants(:'b1') AS g \gset
COMMIT;
SELECT is(:'ben_sees'::text, '1', 'the grantee lists it too');
SELECT is(:'ben_received'::text, 't', '... as received');
SELECT is(:'ben_none'::text, '0', 'a memory without grants lists none');

-- 4. provenance() of a transferred memory, moved twice across workers (06-transfer; the memory directory, section 3i);
-- a grantee's too (section 3o)
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT string_agg(p.event, ',' ORDER BY p.at, p.event) AS ben_events FROM memoriesdb.provenance(:'a2') AS p \gset
COMMIT;
SELECT is(:'ben_events'::text, 'created,transferred', 'the receiver reads the memory''s provenance: created, transferred');
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.transfer(:'a2', :'cy', 'onwards') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT string_agg(coalesce(p.note, p.event), ',' ORDER BY p.at, p.event) AS cy_events FROM memoriesdb.provenance(:'a2') AS p \gset
COMMIT;
SELECT is(:'cy_events'::text, 'created,yours now,onwards', 'after a second transfer (its rows on two receivers'' shards) the owner reads both');
BEGIN;
SELECT memoriesdb.authenticate(:'kc') AS _ \gset
SELECT memoriesdb.share(:'a2', :'dot') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kd') AS _ \gset
SELECT count(*) FILTER (WHERE p.event = 'transferred') AS dot_transfers FROM memoriesdb.provenance(:'a2') AS p \gset
COMMIT;
SELECT is(:'dot_transfers'::text, '2', 'a grantee reads the transfers too, as on a single node (section 3o)');

-- 5. link() of an acyclic type: cycles refused over the caller's visible graph, across workers (09-graph,
-- 13-graph-traversal, 21-access-log-doors; section 3l). ben sees ada's a1 (shared above), not her a3.
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.accept_sender(:'ben') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('ada: the final text') AS a3 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.share(:'b1', :'ada') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT isnt(memoriesdb.link(:'a1', :'a3', 'derived_from'), NULL, 'ada links a1 derived_from a3 (an acyclic type)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'derived_from') $$, :'a3', :'a1'), 'MDB08',
                 'edge would close a cycle of derived_from', 'the edge back is refused: it would close a cycle');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT isnt(memoriesdb.link(:'a3', :'b1', 'derived_from'), NULL, 'ada links a3 derived_from ben''s shared b1 (on the other worker)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'derived_from') $$, :'b1', :'a1'), 'MDB08',
                 'edge would close a cycle of derived_from', 'a cycle through the other worker is refused too');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT isnt(memoriesdb.link(:'b1', :'a1', 'derived_from'), NULL,
            'ben links b1 derived_from a1: the way back (a1 -> a3 -> b1) is through a3, hidden from him');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'derived_from') $$, :'b1', :'a1'), 'MDB09', NULL,
                 'his edge is there once');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS cycle_edges FROM memoriesdb.memory_edges AS e
 WHERE e.edge_type = 'derived_from' AND e.source_id IN (:'a1', :'a3', :'b1') \gset
SELECT is(:'cycle_edges'::text, '3', '... so a cycle formed only through a memory hidden from the one who closed it, as on a single node');

-- 5b. a link from a memory shared with the caller lives with its source, on the owner's shard (21-access-log-doors);
-- list_edges() shows no edge whose other end the caller may not see (09-graph; section 3l)
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.link(:'a1', :'b1', 'related_to') AS from_shared \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT count(*) AS ben_edges_a1, count(*) FILTER (WHERE e.target_id = :'a3') AS ben_sees_a3 FROM memoriesdb.list_edges(:'a1') AS e \gset
SELECT count(*) FILTER (WHERE e.target_id = :'a3' OR e.source_id = :'a3') AS ben_sees_a3_anywhere FROM memoriesdb.list_edges() AS e \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT count(*) AS ada_edges_a1 FROM memoriesdb.list_edges(:'a1') AS e \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT e.owner_id AS from_shared_owner FROM memoriesdb.memory_edges AS e WHERE e.id = :'from_shared' \gset
SELECT is(:'from_shared_owner'::text, :'ada', 'ben links ada''s shared a1 to his b1: the edge is stored with its source, on ada''s shard');
SELECT is(:'ben_edges_a1'::text, '2', 'ben lists a1''s edges to and from memories he sees (b1 -> a1, a1 -> b1) ...');
SELECT is(:'ben_sees_a3'::text, '0', '... not a1 -> a3: a3 is hidden from him');
SELECT is(:'ben_sees_a3_anywhere'::text, '0', '... nor any edge of a3 in his whole list');
SELECT is(:'ada_edges_a1'::text, '3', 'ada, who sees every end, lists all three');

-- 5c. a write grantee revises another owner's memory (05-sharing; section 3)
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('ada: open for edits') AS a4 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.share(:'a4', :'ben', 'write') AS a4_offer \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.accept_offer(:'a4_offer') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT is(memoriesdb.revise(:'a4', 'ben improved it'), 2, 'a write grant allows revise (the revision on the owner''s shard)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT r.content AS a4_content, r.owner_id AS a4_owner FROM memoriesdb.recall(:'a4') AS r \gset
SELECT p.actor AS a4_reviser FROM memoriesdb.provenance(:'a4') AS p WHERE p.revision = 2 \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(:'a4_content'::text, 'ben improved it', 'the owner reads the grantee''s revision');
SELECT is(:'a4_reviser'::text, :'ben', '... made by ben (provenance)');
SELECT is(:'a4_owner'::text, :'ada', '... the memory still hers');

-- 6. authenticate() after vouch() in one transaction (27-as-of; section 3l)
SET SESSION AUTHORIZATION mdb_citus_test_backend;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.vouch(:'ben') AS _ \gset
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.current_user_id() AS after_both \gset
SELECT memoriesdb.remember('written after vouch() then authenticate()') AS v1 \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(:'after_both'::text, :'ada', 'a backend that vouched for ben, then authenticated ada''s key: the context is ada''s');
SELECT m.owner_id AS v1_owner FROM memoriesdb.memories AS m WHERE m.id = :'v1' \gset
SELECT is(:'v1_owner'::text, :'ada', '... and her memory is written on every node');

-- 7. the query cache (30-query-cache; section 3l)
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT is(memoriesdb.cache_query_vector('parity-model', 'where is the draft?', '[1,0,0]'), true, 'cache_query_vector() stores a query''s vector');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.cached_query_vector('parity-model', 'where is the draft?')::text AS hit \gset
COMMIT;
SELECT is(:'hit'::text, '[1,0,0]', 'cached_query_vector() hits it (and touches it)');
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT is(memoriesdb.cache_query_vector('parity-model', 'where is the draft?', '[0,1,0]'), true, 'storing it again replaces it');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.cached_query_vector('parity-model', 'where is the draft?')::text AS hit2 \gset
COMMIT;
SELECT is(:'hit2'::text, '[0,1,0]', '... with the new vector');
RESET SESSION AUTHORIZATION;

-- 8. the embedding queue: the older claim, a provider error, a dead job requeued (08-queue, 24-queue-health,
-- 29-requeue; section 3l). Earlier files' jobs may be ready too: claimed until ben's b1 is in a claim.
CREATE TEMP TABLE claimed (memory_id uuid, lease_id uuid);
GRANT ALL ON claimed TO PUBLIC;
SELECT set_config('parity.b1', :'b1', false) AS _, set_config('parity.v1', :'v1', false) AS _ \gset
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
DO $$
BEGIN
  FOR i IN 1 .. 20 LOOP
    INSERT INTO claimed SELECT c.memory_id, c.lease_id FROM memoriesdb.claim_embedding_jobs(256, '5 minutes', 'parity') AS c;
    EXIT WHEN (SELECT count(*) FROM claimed AS c
                WHERE c.memory_id IN (current_setting('parity.b1')::uuid, current_setting('parity.v1')::uuid)) = 2;
  END LOOP;
END $$;
SELECT count(*) AS both_claimed FROM claimed AS c WHERE c.memory_id IN (:'b1', :'v1') \gset
SELECT is(:'both_claimed'::text, '2', 'claim_embedding_jobs() (the claim before v0.5) claims across the workers');
SELECT memoriesdb.fail_embedding_job(:'b1', (SELECT c.lease_id FROM claimed AS c WHERE c.memory_id = :'b1'),
                                     'provider unreachable: connection refused') AS b1_failed \gset
SELECT memoriesdb.fail_embedding_job(:'v1', (SELECT c.lease_id FROM claimed AS c WHERE c.memory_id = :'v1'),
                                     'HTTP 400: input cannot be embedded', true) AS v1_failed \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'b1_failed'::text, 'retry', 'fail_embedding_job() of a provider error: retry');
SELECT is(:'v1_failed'::text, 'dead', '... of a permanent one: dead');
SELECT s.run_after > now() AS backs_off, s.last_error AS b1_error, s.lease_id IS NULL AS released, s.attempts AS b1_attempts
  FROM memoriesdb.embedding_schedule AS s WHERE s.owner_id = :'ben' AND s.memory_id = :'b1' \gset
SELECT is(:'backs_off'::text, 't', 'the retried job waits its backoff');
SELECT is(:'b1_error'::text, 'provider unreachable: connection refused', '... with its error kept');
SELECT is(:'released'::text, 't', '... and its lease released');
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
CREATE TEMP TABLE requeued AS
  SELECT r.memory_id, r.outcome
    FROM memoriesdb.requeue_dead_embedding_jobs(ARRAY[:'v1', :'b1', '00000000-0000-4000-8000-000000000000']::uuid[]) AS r;
RESET SESSION AUTHORIZATION;
SELECT string_agg(r.outcome, ',') AS outcomes FROM requeued AS r \gset
SELECT is(:'outcomes'::text, 'requeued,not_dead,no_job', 'requeue_dead_embedding_jobs(): the dead job requeued, the waiting one not dead, an unknown id no job');
SELECT s.dead_at IS NULL AS revived, s.run_after <= now() AS ready FROM memoriesdb.embedding_schedule AS s
 WHERE s.owner_id = :'ada' AND s.memory_id = :'v1' \gset
SELECT is(:'revived'::text, 't', '... the requeued job is alive');
SELECT is(:'ready'::text, 't', '... and ready now');

SELECT count(*) AS others_claimed FROM claimed AS c WHERE c.memory_id NOT IN (:'b1', :'v1') \gset
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT coalesce(memoriesdb.release_embedding_jobs(array_agg(c.memory_id), array_agg(c.lease_id)), 0) AS released
  FROM claimed AS c WHERE c.memory_id NOT IN (:'b1', :'v1') \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'released'::text, :'others_claimed', 'release_embedding_jobs() gives the other claimed jobs back (a worker stopping)');
SELECT coalesce(array_agg(c.memory_id), '{}') AS others FROM claimed AS c WHERE c.memory_id NOT IN (:'b1', :'v1') \gset
SELECT count(*) AS still_leased FROM memoriesdb.embedding_schedule AS s
 WHERE s.memory_id = ANY (:'others'::uuid[]) AND s.lease_id IS NOT NULL \gset
SELECT is(:'still_leased'::text, '0', '... none of them leased any more');

-- 8b. the embedding models' progress (33-models; section 3l)
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT p.total AS progress_total, p.state AS progress_state, p.pending + p.leased + p.dead >= 1 AS progress_jobs
  FROM memoriesdb.model_progress() AS p WHERE p.model = 'default' \gset
RESET SESSION AUTHORIZATION;
SELECT count(*) AS n_memories FROM memoriesdb.memories \gset
SELECT is(:'progress_total'::text, :'n_memories', 'model_progress(): the active model''s total is every memory, on every shard');
SELECT is(:'progress_state'::text, 'active', '... its state');
SELECT is(:'progress_jobs'::text, 't', '... and its jobs counted');

-- 8c. the sealer leaves a chain whose first seal another transaction is writing (32-audit-pending; section 3l): eve's
-- first write waits for its chain's first seal while a holder inserts that head row on the worker
SELECT memoriesdb.create_user('eve' || (random() * 1e9)::bigint) AS eve \gset
SELECT memoriesdb.create_api_key(:'eve') AS ke \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ke') AS _ \gset
SELECT memoriesdb.remember('eve: her first write') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT memoriesdb_dblink.dblink_connect('holder', format('host=127.0.0.1 port=%s dbname=%s user=postgres', current_setting('port'),
                                                         current_database())) AS _ \gset
SELECT memoriesdb_dblink.dblink_exec('holder', 'BEGIN') AS _ \gset
SELECT memoriesdb_dblink.dblink_exec('holder', format(
  $$ INSERT INTO memoriesdb_internal.audit_chain_heads (chain, chain_seq, seal_hash) VALUES (%L, 0, memoriesdb_internal.audit_genesis(%L::uuid)) $$,
  :'eve', :'eve')) AS _ \gset
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT clock_timestamp() AS seal_start \gset
-- (in a transaction block: Citus sends a SET LOCAL made inside a function to the workers only there, measured)
BEGIN;
SELECT memoriesdb.audit_seal_pending(1000) AS _ \gset
COMMIT;
SELECT clock_timestamp() - :'seal_start'::timestamptz < interval '8 seconds' AS sealer_went_on \gset
RESET SESSION AUTHORIZATION;
SELECT count(*) AS eve_waits FROM memoriesdb_internal.audit_pending AS p WHERE p.chain = :'eve' \gset
SELECT is(:'sealer_went_on'::text, 't', 'audit_seal_pending() does not wait for the transaction writing eve''s chain''s first seal on its worker');
SELECT cmp_ok(:'eve_waits'::int, '>=', 1, '... eve''s groups still wait');
SELECT memoriesdb_dblink.dblink_exec('holder', 'ROLLBACK') AS _ \gset
SELECT memoriesdb_dblink.dblink_disconnect('holder') AS _ \gset
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.audit_seal_pending(1000) AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS eve_waits_after, (SELECT count(*) FROM memoriesdb.audit_seals AS s WHERE s.chain = :'eve') AS eve_seals
  FROM memoriesdb_internal.audit_pending AS p WHERE p.chain = :'eve' \gset
SELECT is(:'eve_waits_after'::text, '0', 'once the holder ended, the next sealer seals eve''s chain');
SELECT cmp_ok(:'eve_seals'::int, '>=', 1, '... its first seal');

-- 9. privileges: every node executes as the coordinator grants; PUBLIC executes no ledger function on any node, and
-- the overlay's functions are the owner's (01-schema, 16-privileges; sections 4f, 5)
SELECT is_empty($$ SELECT p.oid::regprocedure FROM pg_proc AS p
                    WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
                      AND has_function_privilege('public', p.oid, 'EXECUTE') $$,
                'PUBLIC executes no ledger function on the coordinator');
SELECT string_agg(w.result, ',') AS public_on_workers FROM run_command_on_workers($q$
  SELECT count(*) FROM pg_proc AS p WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
                                      AND has_function_privilege('public', p.oid, 'EXECUTE')$q$) AS w \gset
SELECT is(:'public_on_workers'::text, '0,0', '... nor on a worker');
SELECT md5(string_agg(p.oid::regprocedure::text || coalesce(p.proacl::text, 'default'), ';' ORDER BY p.oid::regprocedure::text)) AS acl_here
  FROM pg_proc AS p WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace) \gset
SELECT string_agg(DISTINCT w.result, ',') AS acl_there FROM run_command_on_workers($q$
  SELECT md5(string_agg(p.oid::regprocedure::text || coalesce(p.proacl::text, 'default'), ';' ORDER BY p.oid::regprocedure::text))
    FROM pg_proc AS p WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)$q$) AS w \gset
SELECT is(:'acl_there'::text, :'acl_here', 'every worker grants each ledger function as the coordinator does');
SELECT is_empty($$ SELECT p.oid::regprocedure FROM pg_proc AS p
                    WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
                      AND p.prosecdef AND (SELECT r.rolsuper FROM pg_roles AS r WHERE r.oid = p.proowner)
                      AND p.proname NOT IN ('append_access_log_autonomously', 'append_access_entry_autonomously',
                                            'await_access_log_writes', 'note_key_check') $$,
                'no SECURITY DEFINER function of the overlay runs as a superuser');

SELECT * FROM finish();
