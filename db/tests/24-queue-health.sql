-- The embedding queue under faults: a provider that cannot be reached costs no attempt
-- (defer_embedding_jobs), and the queue's health names the oldest lease, its holder and the last error.
BEGIN;
SELECT plan(14);

SELECT tests.create_user('faulty') AS u \gset
UPDATE memoriesdb.embedding_schedule SET dead_at = now();   -- only this test's jobs matter
SELECT tests.memory_of(:'u', 'never reached the provider') AS m1 \gset
SELECT tests.memory_of(:'u', 'held by a worker') AS m2 \gset

SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is((SELECT oldest_lease_at FROM memoriesdb.embedding_queue_health()), NULL, 'nothing leased: no oldest lease');
CREATE TEMP TABLE c1 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_embedding_jobs(1, '5 minutes', 'host-a:1');
SELECT is((SELECT memory_id FROM c1), :'m1'::uuid, 'the first job is claimed');
SELECT tests.clear_context();
SELECT is((SELECT leased_at FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), now(), 'the claim records when it was made');
UPDATE memoriesdb.embedding_schedule SET leased_at = now() - interval '42 minutes' WHERE memory_id = :'m1';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
CREATE TEMP TABLE c2 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_embedding_jobs(1, '5 minutes', 'host-b:2');
SELECT is(memoriesdb.renew_embedding_leases(ARRAY[:'m1']::uuid[], ARRAY[(SELECT lease_id FROM c1)], '5 minutes'), 1, 'a renewal');
SELECT tests.clear_context();
SELECT is((SELECT leased_at FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), now() - interval '42 minutes',
  'a renewal keeps the claim time: a batch stuck for 42 minutes does not look fresh');

SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq($$ SELECT oldest_lease_age, oldest_lease_holder, holders FROM memoriesdb.embedding_queue_health() $$,
  $$ VALUES (interval '42 minutes', 'host-a:1'::text, 2::bigint) $$,
  'health: the oldest lease, its age and holder, and how many workers hold leases');

-- the provider could not be reached: the job goes back uncounted, with the error, after a delay
SELECT is(memoriesdb.defer_embedding_jobs(ARRAY[:'m1']::uuid[], ARRAY[(SELECT lease_id FROM c1)],
  'provider unreachable: ConnectError: connection refused', '30 seconds'), 1, 'defer gives the job back');
SELECT tests.clear_context();
SELECT results_eq($$ SELECT attempts, lease_id, leased_at, leased_by, run_after, last_error, dead_at
                       FROM memoriesdb.embedding_schedule WHERE memory_id = '$$ || :'m1' || $$' $$,
  $$ VALUES (0, NULL::uuid, NULL::timestamptz, NULL::text, now() + interval '30 seconds',
             'provider unreachable: ConnectError: connection refused'::text, NULL::timestamptz) $$,
  'a deferred job: attempt not counted, lease cleared, error kept, waits the delay');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is(memoriesdb.defer_embedding_jobs(ARRAY[:'m1']::uuid[], ARRAY[(SELECT lease_id FROM c1)], 'again', '1 second'), 0,
  'a lease that is no longer this claim''s is not deferred');
SELECT is(memoriesdb.defer_embedding_jobs(ARRAY[:'m2']::uuid[], ARRAY[gen_random_uuid()], 'x', '1 second'), 0,
  'a wrong lease id defers nothing');
SELECT throws_ok($$ SELECT memoriesdb.defer_embedding_jobs(ARRAY[gen_random_uuid()], ARRAY[]::uuid[], 'x') $$, 'MDB12',
  'memory_ids and lease_ids must have the same length', 'the arrays must pair up');
SELECT is(memoriesdb.defer_embedding_jobs(ARRAY[:'m2']::uuid[], ARRAY[(SELECT lease_id FROM c2)], 'y', '100 years'), 1, 'a long delay');
SELECT tests.clear_context();
SELECT ok((SELECT run_after <= now() + interval '3600 seconds' FROM memoriesdb.embedding_schedule WHERE memory_id = :'m2'),
  'the delay is capped at config backoff_max_seconds');

SELECT tests.act_as(NULL, 'memoriesdb_worker');
-- (both errors were recorded in this one transaction, at the same now(): either is the newest)
SELECT ok((SELECT oldest_lease_at IS NULL AND last_error IN ('y', 'provider unreachable: ConnectError: connection refused')
                  AND last_error_at = now() FROM memoriesdb.embedding_queue_health()),
  'health: nothing leased now, and the newest error with its time');
SELECT tests.clear_context();

SELECT * FROM finish();
ROLLBACK;
