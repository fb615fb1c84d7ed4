-- The embedding and vindexing queues as the worker meets them.
BEGIN;
SELECT plan(61);


SELECT tests.create_user('alice') AS alice \gset
-- only this test's jobs matter: park whatever else is queued
UPDATE memoriesdb.embedding_schedule SET dead_at = now();
SELECT tests.memory_of(:'alice', 'first') AS m1 \gset
SELECT tests.memory_of(:'alice', 'second') AS m2 \gset

SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE dead_at IS NULL), 2::bigint, 'each new memory queues one job');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.revise(:'m1', 'first, revised');
SELECT memoriesdb.revise(:'m1', 'first, revised again');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), 1::bigint, 'revisions keep one pending job per memory');
SELECT is((SELECT content_hash FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), sha256(convert_to('first, revised again', 'UTF8')),
  'the pending job targets the latest content');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.revise(:'m1', metadata => '{"only": "metadata"}');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), 1::bigint, 'a metadata-only revision queues nothing new');

-- claim
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT throws_ok($$ SELECT * FROM memoriesdb.claim_embedding_jobs(0) $$, 'MDB12', 'batch_size must be at least 1', 'batch_size is checked');
SELECT throws_ok($$ SELECT * FROM memoriesdb.claim_embedding_jobs(1, '-1 second') $$, 'MDB12', 'lease must be a positive interval', 'lease is checked');
CREATE TEMP TABLE claimed ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_embedding_jobs(10, '5 minutes', 'w1');
SELECT set_eq($$ SELECT memory_id, content, attempts FROM claimed $$,
  format($$ VALUES (%L::uuid, 'first, revised again'::text, 1), (%L, 'second', 1) $$, :'m1', :'m2'),
  'claim returns the ready jobs with their latest content and the attempt number');
SELECT is_empty($$ SELECT * FROM memoriesdb.claim_embedding_jobs(10) $$, 'leased jobs are not claimed twice');
SELECT (SELECT lease_id FROM claimed WHERE memory_id = :'m1') AS l1, (SELECT lease_id FROM claimed WHERE memory_id = :'m2') AS l2 \gset

-- claim: a worker cannot take the whole queue, nor hold it for a century
SELECT is(tests.error_of($$ SELECT * FROM memoriesdb.claim_embedding_jobs(10000, '100 years') $$), ARRAY['MDB12',
    'batch_size is larger than a claim may take', 'asked for 10000 jobs; the cap is 256',
    'claim at most 256 jobs at a time (config embedding_max_batch_size)'],
  'a batch beyond embedding_max_batch_size is refused: MDB12, the asked value and the cap, the config key');
SELECT is(tests.error_of($$ SELECT * FROM memoriesdb.claim_embedding_jobs(1, '100 years') $$), ARRAY['MDB12',
    'lease is longer than a claim may hold', 'asked for a lease of 3155760000 seconds (100 years); the cap is 900 seconds',
    'ask for at most 900 seconds (config embedding_max_lease_seconds) and renew the lease with renew_embedding_leases() while the batch is worked on'],
  'a lease beyond embedding_max_lease_seconds is refused: MDB12, the asked value and the cap, the config key');
SELECT throws_ok($$ SELECT * FROM memoriesdb.claim_embedding_jobs(257) $$, 'MDB12', 'batch_size is larger than a claim may take',
  'one job past the batch cap is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.claim_embedding_jobs(1, '901 seconds') $$, 'MDB12', 'lease is longer than a claim may hold',
  'one second past the lease cap is refused');
SELECT lives_ok($$ SELECT * FROM memoriesdb.claim_embedding_jobs(256, '15 minutes') $$, 'a claim at both caps is accepted');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '60' WHERE key = 'embedding_max_lease_seconds';
UPDATE memoriesdb.config SET value = '8' WHERE key = 'embedding_max_batch_size';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT throws_ok($$ SELECT * FROM memoriesdb.claim_embedding_jobs(1, '61 seconds') $$, 'MDB12', 'lease is longer than a claim may hold',
  'the lease cap is read from the config');
SELECT throws_ok($$ SELECT * FROM memoriesdb.claim_embedding_jobs(9) $$, 'MDB12', 'batch_size is larger than a claim may take',
  'the batch cap is read from the config');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '900' WHERE key = 'embedding_max_lease_seconds';
UPDATE memoriesdb.config SET value = '256' WHERE key = 'embedding_max_batch_size';
SELECT tests.act_as(NULL, 'memoriesdb_worker');

-- complete: bad vectors
SELECT throws_ok(format($$ SELECT memoriesdb.complete_embedding_job(%L, %L, '[1,2,3]', 'm') $$, :'m1', :'l1'),
  'MDB11', 'embedding has the wrong dimension', 'a wrong-dimension vector is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.complete_embedding_job(%L, %L, %L, 'm') $$, :'m1', :'l1', tests.axis(1, 0)),
  'MDB11', 'embedding is the zero vector', 'a zero vector is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.complete_embedding_job(%L, %L, %L::vector, 'm') $$, :'m1', :'l1', replace(tests.axis(1)::text, '[1,', '[NaN,')),
  '22000', 'NaN not allowed in vector', 'a NaN vector is refused (pgvector does not even parse it)');
SELECT throws_ok(format($$ SELECT memoriesdb.complete_embedding_job(%L, %L, %L, '') $$, :'m1', :'l1', tests.axis(1)),
  'MDB12', 'model name is required', 'a model name is required');
SELECT throws_ok(format($$ SELECT memoriesdb.complete_embedding_job(%L, %L, NULL, 'm') $$, :'m1', :'l1'),
  'MDB11', 'embedding is NULL', 'a NULL vector is refused');

-- complete: stored, normalised, with its model
SELECT is(memoriesdb.complete_embedding_job(:'m2', :'l2', tests.axis(2, 3), 'test-model'), 'stored', 'complete stores the vector');
SELECT is(memoriesdb.complete_embedding_job(:'m2', :'l2', tests.axis(2, 3), 'test-model'), 'lease_lost', 'completing twice: the lease is gone');
SELECT tests.clear_context();
SELECT results_eq(format($$ SELECT embedding = tests.axis(2), embedding_model, embedded_hash = content_hash FROM memoriesdb.memories WHERE id = %L $$, :'m2'),
  $$ VALUES (true, 'test-model'::text, true) $$, 'the vector is stored L2-normalised with its model and the hash it was made from');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m2'), 0::bigint, 'a completed job leaves the queue');
SELECT is((SELECT count(*) FROM memoriesdb.vindexing_schedule WHERE memory_id = :'m2' AND reason = 'embedding'), 1::bigint, 'a stored embedding queues vindexing');

-- complete: stale content is never stored
SELECT tests.act_as(:'alice');
SELECT memoriesdb.revise(:'m1', 'first, changed while embedding');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is(memoriesdb.complete_embedding_job(:'m1', :'l1', tests.axis(1), 'test-model'), 'stale', 'a job whose content changed after the claim is stale');
SELECT tests.clear_context();
SELECT is((SELECT embedding FROM memoriesdb.memories WHERE id = :'m1'), NULL, 'the stale vector was not stored');
SELECT results_eq(format($$ SELECT lease_id IS NULL, attempts, content_hash FROM memoriesdb.embedding_schedule WHERE memory_id = %L $$, :'m1'),
  $$ VALUES (true, 0, sha256(convert_to('first, changed while embedding', 'UTF8'))) $$, 'the job is back in the queue for the new content');

-- fail: backoff, then dead
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lease_id AS l1 FROM memoriesdb.claim_embedding_jobs(1) \gset
SELECT is(memoriesdb.fail_embedding_job(:'m1', :'l1', 'connection refused'), 'retry', 'a transient failure is retried');
SELECT tests.clear_context();
SELECT results_eq(format($$ SELECT run_after > now(), last_error, lease_id IS NULL FROM memoriesdb.embedding_schedule WHERE memory_id = %L $$, :'m1'),
  $$ VALUES (true, 'connection refused'::text, true) $$, 'with a backoff and the error kept');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is_empty($$ SELECT * FROM memoriesdb.claim_embedding_jobs(10) $$, 'a job in backoff is not claimed');
SELECT tests.clear_context();
UPDATE memoriesdb.embedding_schedule SET run_after = now() - interval '1 second' WHERE memory_id = :'m1';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lease_id AS l1 FROM memoriesdb.claim_embedding_jobs(1) \gset
SELECT is(memoriesdb.fail_embedding_job(:'m1', :'l1', 'model "nope" not found', permanent => true), 'dead', 'a permanent failure is dead at once');
SELECT results_eq($$ SELECT attempts, last_error FROM memoriesdb.dead_embedding_jobs() $$,
  $$ VALUES (2, 'model "nope" not found'::text) $$, 'dead jobs are listed with their error');
SELECT results_eq($$ SELECT dead FROM memoriesdb.embedding_queue_status() $$, ARRAY[1::bigint], 'status counts the dead job');
SELECT is(memoriesdb.requeue_dead_embedding_jobs(), 1, 'an operator can requeue dead jobs');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '2' WHERE key = 'max_attempts';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lease_id AS l1 FROM memoriesdb.claim_embedding_jobs(1) \gset
SELECT is(memoriesdb.fail_embedding_job(:'m1', :'l1', 'timeout'), 'retry', 'first attempt of two fails: retry');
SELECT tests.clear_context();
UPDATE memoriesdb.embedding_schedule SET run_after = now() - interval '1 second' WHERE memory_id = :'m1';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lease_id AS l1 FROM memoriesdb.claim_embedding_jobs(1) \gset
SELECT is(memoriesdb.fail_embedding_job(:'m1', :'l1', 'timeout'), 'dead', 'the last allowed attempt fails: dead');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '5' WHERE key = 'max_attempts';

-- a worker that dies: its lease expires and another worker takes the job
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT memoriesdb.requeue_dead_embedding_jobs();
-- 1 year - 31556700 s is 900 s as extract(epoch) counts it (a year of 365.25 days), -20700 s as
-- intervals compare (12 months of 30 days) and 365 or 366 days minus that as now() + it: the
-- lease held must be the one checked against the cap
SELECT lease_id AS dead_lease FROM memoriesdb.claim_embedding_jobs(1, '1 year -31556700 seconds', 'doomed') \gset
SELECT tests.clear_context();
SELECT is((SELECT lease_until - now() FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), interval '15 minutes',
  'a lease given in mixed units is held exactly as long as the cap counted it');
UPDATE memoriesdb.embedding_schedule SET lease_until = now() - interval '1 second' WHERE memory_id = :'m1';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq($$ SELECT leased, pending FROM memoriesdb.embedding_queue_status() $$, $$ VALUES (0::bigint, 1::bigint) $$,
  'an expired lease counts as pending');
SELECT results_eq($$ SELECT memory_id, attempts FROM memoriesdb.claim_embedding_jobs(1, '5 minutes', 'rescuer') $$,
  format($$ VALUES (%L::uuid, 2) $$, :'m1'), 'another worker claims the job of a dead worker');
SELECT is(memoriesdb.complete_embedding_job(:'m1', :'dead_lease', tests.axis(1), 'm'), 'lease_lost', 'the dead worker''s late answer is discarded');

-- renew: a live worker extends its own leases (heartbeat), within the cap
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'fourth') AS m4 \gset
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lease_id AS l4 FROM memoriesdb.claim_embedding_jobs(1, '1 minute', 'renewer') \gset
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'fifth') AS m5 \gset
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lease_id AS l5 FROM memoriesdb.claim_embedding_jobs(1, '1 minute', 'other') \gset
SELECT is(memoriesdb.renew_embedding_leases(ARRAY[:'m4']::uuid[], ARRAY[:'l4']::uuid[], '10 minutes'), 1, 'a worker renews its own lease');
SELECT tests.clear_context();
SELECT is((SELECT lease_until - now() FROM memoriesdb.embedding_schedule WHERE memory_id = :'m4'), interval '10 minutes',
  'the renewed lease ends the asked time from now');
SELECT results_eq(format($$ SELECT attempts, leased_by FROM memoriesdb.embedding_schedule WHERE memory_id = %L $$, :'m4'),
  $$ VALUES (1, 'renewer'::text) $$, 'renewing counts no attempt and keeps the claimer');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is(memoriesdb.renew_embedding_leases(ARRAY[:'m5']::uuid[], ARRAY[:'l4']::uuid[], '10 minutes'), 0,
  'another claim''s lease cannot be renewed with this claim''s lease_id');
SELECT is(memoriesdb.renew_embedding_leases(ARRAY[:'m5', :'m4']::uuid[], ARRAY[gen_random_uuid(), :'l4']::uuid[], '5 minutes'), 1,
  'of a mixed batch only the leases that are this claim''s are renewed');
SELECT tests.clear_context();
SELECT is((SELECT lease_until - now() FROM memoriesdb.embedding_schedule WHERE memory_id = :'m5'), interval '1 minute',
  'the other claim''s lease is untouched');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is(tests.error_of(format($$ SELECT memoriesdb.renew_embedding_leases(ARRAY[%L]::uuid[], ARRAY[%L]::uuid[], '1 day') $$, :'m4', :'l4')),
  ARRAY['MDB12', 'lease is longer than a claim may hold', 'asked for a lease of 86400 seconds (1 day); the cap is 900 seconds',
        'ask for at most 900 seconds (config embedding_max_lease_seconds) and renew the lease with renew_embedding_leases() while the batch is worked on'],
  'a renewal beyond embedding_max_lease_seconds is refused like a claim');
SELECT throws_ok(format($$ SELECT memoriesdb.renew_embedding_leases(ARRAY[%L]::uuid[], ARRAY[%L]::uuid[], '0 seconds') $$, :'m4', :'l4'),
  'MDB12', 'lease must be a positive interval', 'a renewal must ask for a positive lease');
SELECT throws_ok(format($$ SELECT memoriesdb.renew_embedding_leases(ARRAY[%L]::uuid[], ARRAY[]::uuid[], '1 minute') $$, :'m4'),
  'MDB12', 'memory_ids and lease_ids must have the same length', 'renewal arrays must line up');
-- an expired lease is nobody's: it cannot be renewed, and another worker takes the job
SELECT tests.clear_context();
UPDATE memoriesdb.embedding_schedule SET lease_until = now() - interval '1 second' WHERE memory_id = :'m4';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is(memoriesdb.renew_embedding_leases(ARRAY[:'m4']::uuid[], ARRAY[:'l4']::uuid[], '10 minutes'), 0, 'an expired lease is not renewed');
SELECT results_eq($$ SELECT memory_id FROM memoriesdb.claim_embedding_jobs(10, '1 minute', 'rescuer') $$, ARRAY[:'m4'::uuid],
  'the job of an expired lease goes to the next claim');
SELECT is(memoriesdb.renew_embedding_leases(ARRAY[:'m4']::uuid[], ARRAY[:'l4']::uuid[], '10 minutes'), 0,
  'the first claim cannot renew the lease back from the new claim');
SELECT tests.clear_context();
SELECT is((SELECT leased_by FROM memoriesdb.embedding_schedule WHERE memory_id = :'m4'), 'rescuer', 'the job stays with the new claim');
UPDATE memoriesdb.embedding_schedule SET dead_at = now() WHERE memory_id IN (:'m4', :'m5');
SELECT tests.act_as(NULL, 'memoriesdb_worker');

-- release (SIGTERM) does not count an attempt
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'third') AS m3 \gset
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lease_id AS l3, attempts AS a3 FROM memoriesdb.claim_embedding_jobs(1) \gset
SELECT is(memoriesdb.release_embedding_jobs(ARRAY[:'m3']::uuid[], ARRAY[:'l3']::uuid[]), 1, 'release gives a job back');
SELECT tests.clear_context();
SELECT results_eq(format($$ SELECT attempts, lease_id IS NULL FROM memoriesdb.embedding_schedule WHERE memory_id = %L $$, :'m3'),
  $$ VALUES (0, true) $$, 'a released job is pending again, its attempt not counted');
SELECT tests.act_as(NULL, 'memoriesdb_worker');

-- batch completion
SELECT lease_id AS l3 FROM memoriesdb.claim_embedding_jobs(1) \gset
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[%L]::uuid[], ARRAY[%L]::uuid[], ARRAY[%L]::vector[], 'batch-model') $$,
  :'m3', :'l3', tests.axis(3)), ARRAY['stored'], 'complete_embedding_jobs stores a batch');
SELECT throws_ok($$ SELECT * FROM memoriesdb.complete_embedding_jobs(ARRAY[gen_random_uuid()], ARRAY[]::uuid[], ARRAY[]::vector[], 'm') $$,
  'MDB12', 'memory_ids, lease_ids and embeddings must have the same length', 'batch arrays must line up');
SELECT results_eq($$ SELECT model, memories FROM memoriesdb.embedding_models() WHERE model = 'batch-model' $$,
  $$ VALUES ('batch-model'::text, 1::bigint) $$, 'embedding_models counts embeddings per model');

-- the worker reaches no content except through a claim
SELECT throws_ok($$ SELECT content FROM memoriesdb.memories $$, '42501', NULL, 'the worker cannot read memories directly');
SELECT throws_ok($$ SELECT memoriesdb.remember('x') $$, '42501', NULL, 'the worker cannot call the user API');

SELECT * FROM finish();
ROLLBACK;
