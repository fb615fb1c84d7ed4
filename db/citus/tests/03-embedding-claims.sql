-- Citus (issue 17, second slice): the runner's worker claims and completes embedding jobs through the coordinator,
-- across the owners' shards on both workers. Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(14);

-- the jobs queued so far (the earlier files' memories) are out of the way: leased to nobody for a day
UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day' WHERE run_after <= now();

-- gina, and a hal whose shard is on the other worker, one memory each
SELECT memoriesdb.create_user('gina' || (random() * 1e9)::bigint) AS gina \gset
SELECT pg_temp.user_apart('hal', :'gina') AS hal \gset
SELECT memoriesdb.create_api_key(:'gina') AS kg \gset
SELECT memoriesdb.create_api_key(:'hal') AS kh \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS _ \gset
SELECT memoriesdb.remember('gina likes blue') AS g1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT memoriesdb.remember('hal likes green') AS h1 \gset
COMMIT;
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
CREATE TEMP TABLE claimed AS
  SELECT * FROM memoriesdb.claim_model_embedding_jobs(8, '1 minute', 'citus-test-worker');
SELECT is((SELECT array_agg(c.memory_id ORDER BY c.memory_id) FROM claimed AS c),
          (SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[:'g1', :'h1']::uuid[]) AS x),
          'one claim through the coordinator takes the ready jobs of owners on both workers');
SELECT is((SELECT array_agg(c.content ORDER BY c.content) FROM claimed AS c), ARRAY['gina likes blue', 'hal likes green'],
          'with their content, read from each owner''s shard');
SELECT is((SELECT count(DISTINCT c.lease_id) FROM claimed AS c WHERE c.lease_id IS NOT NULL), 2::bigint, 'each job has a lease of its own');
COMMIT;
BEGIN;
SELECT is((SELECT count(*) FROM memoriesdb.claim_model_embedding_jobs(8, '1 minute', 'citus-test-worker-2')), 0::bigint,
          'a second claim finds them leased');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT array_agg(row(s.owner_id, s.leased_by, s.attempts)::text ORDER BY s.memory_id = :'h1')
             FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id IN (:'g1', :'h1')),
          ARRAY[row(:'gina'::uuid, 'citus-test-worker', 1)::text, row(:'hal'::uuid, 'citus-test-worker', 1)::text],
          'the leases are on the owners'' shards');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a WHERE a.function = 'claim_embedding_jobs'
             AND a.memory_ids @> ARRAY[:'g1', :'h1']::uuid[]), 1::bigint, 'the claim is in the access log, once');


-- completions through the coordinator, each job on its owner's shard
SELECT array_agg(c.memory_id ORDER BY c.memory_id) AS mids, array_agg(c.lease_id ORDER BY c.memory_id) AS lids,
       min(c.dimension) AS dim FROM claimed AS c \gset
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT throws_ok(format('SELECT * FROM memoriesdb.complete_embedding_jobs(%L, %L, ARRAY[%L, %L]::public.vector[], %L)',
                        :'mids', :'lids', (SELECT array_fill(0.5::real, ARRAY[:'dim'::int])::public.vector),
                        (SELECT array_fill(0::real, ARRAY[:'dim'::int])::public.vector), 'default'),
                 'MDB11', 'embedding is the zero vector', 'a batch with a zero vector is refused whole (MDB11)');
SELECT is((SELECT array_agg(c.outcome ORDER BY c.memory_id)
             FROM memoriesdb.complete_embedding_jobs(:'mids'::uuid[] || gen_random_uuid(), :'lids'::uuid[] || gen_random_uuid(),
                    array_fill(array_fill(0.5::real, ARRAY[:'dim'::int])::public.vector, ARRAY[3]), 'default') AS c
            WHERE c.memory_id = ANY (:'mids'::uuid[])),
          ARRAY['stored', 'stored'], 'both jobs, on two workers, are stored in one call');
SELECT is((SELECT count(*) FROM memoriesdb.complete_embedding_jobs(ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()],
             ARRAY[array_fill(0.5::real, ARRAY[:'dim'::int])::public.vector], 'default') AS c WHERE c.outcome = 'lease_lost'),
          1::bigint, 'a job whose lease is not held: lease_lost');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT array_agg(row(m.owner_id, m.embedding_model, round(public.vector_norm(m.embedding)::numeric, 3))::text ORDER BY m.id = :'h1')
             FROM memoriesdb.memories AS m WHERE m.id IN (:'g1', :'h1')),
          ARRAY[row(:'gina'::uuid, 'default', 1.000)::text, row(:'hal'::uuid, 'default', 1.000)::text],
          'each memory has its (normalised) vector on its owner''s shard');
SELECT is((SELECT count(*) FROM memoriesdb.embeddings AS e WHERE e.memory_id IN (:'g1', :'h1')), 2::bigint, 'and one embeddings row each');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id IN (:'g1', :'h1')), 0::bigint, 'their jobs are done');
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'the completions are sealed');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain() AS v), '(t,)', 'and every chain verifies');

SELECT * FROM finish();
