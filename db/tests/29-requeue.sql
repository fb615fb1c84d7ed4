-- Dead jobs put back by id (requeue_dead_embedding_jobs(memory_ids), issue 15): only dead jobs go
-- back; each other id is answered with why not; the old requeue_dead_embedding_jobs() still works.
BEGIN;
SELECT plan(14);

SELECT tests.create_user('requeuer') AS u \gset
UPDATE memoriesdb.embedding_schedule SET dead_at = now();   -- only this test's jobs matter
SELECT tests.memory_of(:'u', 'poison') AS m1 \gset
SELECT tests.memory_of(:'u', 'also refused') AS m2 \gset
SELECT tests.memory_of(:'u', 'still leased') AS m3 \gset
SELECT tests.memory_of(:'u', 'embedded already') AS m5 \gset

SELECT tests.act_as(NULL, 'memoriesdb_worker');
CREATE TEMP TABLE c ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_embedding_jobs(4, '5 minutes', 'w');
SELECT is((SELECT count(*) FROM c), 4::bigint, 'the four jobs are claimed');
SELECT is(memoriesdb.fail_embedding_job(:'m1', (SELECT lease_id FROM c WHERE memory_id = :'m1'),
  'HTTP 400: {"error": "input cannot be embedded"}', true), 'dead', 'a refused input is dead');
SELECT is(memoriesdb.fail_embedding_job(:'m2', (SELECT lease_id FROM c WHERE memory_id = :'m2'), 'HTTP 400: too long', true),
  'dead', 'another one');
SELECT is(memoriesdb.complete_embedding_job(:'m5', (SELECT lease_id FROM c WHERE memory_id = :'m5'), tests.axis(1), 'm'),
  'stored', 'one is embedded');
SELECT tests.clear_context();
SELECT tests.memory_of(:'u', 'pending') AS m4 \gset

SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq(
  format($$ SELECT memory_id, outcome FROM memoriesdb.requeue_dead_embedding_jobs(ARRAY[%L, %L, %L, %L, %L, %L, NULL]::uuid[]) $$,
         :'m1', :'m3', :'m4', :'m5', '00000000-0000-4000-8000-000000000000', :'m1'),
  format($$ VALUES (%L::uuid, 'requeued'), (%L::uuid, 'not_dead'), (%L::uuid, 'not_dead'), (%L::uuid, 'no_job'),
                   ('00000000-0000-4000-8000-000000000000'::uuid, 'no_job') $$, :'m1', :'m3', :'m4', :'m5'),
  'by id: the dead job is requeued; a leased or pending one is not dead; an embedded memory or an unknown id has no job; each id once, in the order given');
SELECT tests.clear_context();
SELECT results_eq(format($$ SELECT dead_at, attempts, run_after <= now(), lease_id, last_error
                              FROM memoriesdb.embedding_schedule WHERE memory_id = %L $$, :'m1'),
  $$ VALUES (NULL::timestamptz, 0, true, NULL::uuid, 'HTTP 400: {"error": "input cannot be embedded"}'::text) $$,
  'the requeued job is ready now with its attempts from 0; its last error is kept until the next attempt');
SELECT isnt((SELECT dead_at FROM memoriesdb.embedding_schedule WHERE memory_id = :'m2'), NULL, 'a dead job not named stays dead');
SELECT results_eq(format($$ SELECT lease_id IS NOT NULL, leased_by FROM memoriesdb.embedding_schedule WHERE memory_id = %L $$, :'m3'),
  $$ VALUES (true, 'w'::text) $$, 'a leased job named is left with its worker');

SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is_empty($$ SELECT * FROM memoriesdb.requeue_dead_embedding_jobs('{}'::uuid[]) $$, 'no id: nothing');
SELECT throws_ok($$ SELECT * FROM memoriesdb.requeue_dead_embedding_jobs(NULL::uuid[]) $$, 'MDB12', 'memory_ids must not be NULL',
  'a NULL array is refused (not taken as every job)');
SELECT tests.clear_context();
SELECT count(*)::int AS dead_now FROM memoriesdb.embedding_schedule WHERE dead_at IS NOT NULL \gset
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is(memoriesdb.requeue_dead_embedding_jobs(), :dead_now, 'the old signature still puts every dead job back (m2''s, and any an earlier test left)');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE dead_at IS NOT NULL AND memory_id IN (:'m1', :'m2')), 0::bigint,
  'none of them is dead now');

SELECT ok(has_function_privilege('memoriesdb_worker', 'memoriesdb.requeue_dead_embedding_jobs(uuid[])', 'EXECUTE'),
  'the worker (the runner''s requeue command) may requeue by id');
SELECT ok(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.requeue_dead_embedding_jobs(uuid[])', 'EXECUTE')
          AND NOT has_function_privilege('memoriesdb_auditor', 'memoriesdb.requeue_dead_embedding_jobs(uuid[])', 'EXECUTE'),
  'an application or auditor may not');

SELECT * FROM finish();
ROLLBACK;
