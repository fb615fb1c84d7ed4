-- import_embeddings() (issue 15, `memoriesdb import-embeddings`): vectors a user already has are stored only where
-- the memory's current content hash matches; the active model's also in memories.embedding; the job is removed.
-- The command end to end: runner/tests/test_import_embeddings.py.
BEGIN;
SELECT plan(34);

-- the hex SHA-256 of a content, as a user computes it
CREATE FUNCTION pg_temp.h(content text) RETURNS text LANGUAGE sql AS $$ SELECT encode(sha256(convert_to(content, 'UTF8')), 'hex') $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

SELECT is_definer('memoriesdb', 'import_embeddings', ARRAY['text', 'uuid[]', 'text[]', 'vector[]'], 'import_embeddings is SECURITY DEFINER');
SELECT ok(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.import_embeddings(text, uuid[], text[], public.vector[])', 'EXECUTE'),
  'the application cannot import vectors');
SELECT ok(has_function_privilege('memoriesdb_worker', 'memoriesdb.import_embeddings(text, uuid[], text[], public.vector[])', 'EXECUTE'),
  'the operator (memoriesdb_worker) can');

UPDATE memoriesdb.embedding_schedule SET dead_at = now();   -- only this test's jobs matter
SELECT name AS base FROM memoriesdb.embedding_models WHERE state = 'active' \gset
SELECT tests.create_user('importer') AS u \gset
SELECT tests.memory_of(:'u', 'apples') AS m1 \gset
SELECT tests.memory_of(:'u', 'bananas') AS m2 \gset
SELECT tests.memory_of(:'u', 'cherries') AS m3 \gset
SELECT tests.memory_of(:'u', 'dates') AS m4 \gset
SELECT tests.memory_of(:'u', 'elderberries') AS m5 \gset

SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT ok((SELECT jobs > 0 FROM memoriesdb.add_model('imp4', 'ollama', 4)), 'a filling model of 4 dimensions, a job per memory');
SELECT tests.clear_context();
SELECT is((SELECT content_hash FROM memoriesdb.memories WHERE id = :'m1'), sha256(convert_to('apples', 'UTF8')),
  'memories.content_hash is the SHA-256 of the UTF-8 content (bytea; imported as 64 hex digits)');

-- one batch, every outcome, in input order
SELECT tests.act_as(NULL, 'memoriesdb_worker');
CREATE TEMP TABLE r1 ON COMMIT DROP AS
SELECT * FROM memoriesdb.import_embeddings('imp4',
  ARRAY[:'m1', :'m2', :'m2', gen_random_uuid(), :'m3', :'m4', :'m5']::uuid[],
  ARRAY[upper(pg_temp.h('apples')), pg_temp.h('bananas'), pg_temp.h('bananas'), pg_temp.h('x'), pg_temp.h('not cherries'),
        pg_temp.h('dates'), 'xyz'],
  ARRAY['[3,0,0,0]', '[1,2,3]', '[0,1,0,0]', '[1,0,0,0]', '[1,0,0,0]', '[0,0,0,0]', '[1,0,0,0]']::vector[]);
SELECT tests.clear_context();
SELECT results_eq($$ SELECT outcome FROM r1 $$,
  ARRAY['stored', 'wrong_dimension', 'duplicate', 'no_memory', 'hash_mismatch', 'invalid_vector', 'invalid_hash'],
  'each row''s outcome, in input order (hex in either case)');
SELECT results_eq($$ SELECT memory_id FROM r1 WHERE outcome <> 'no_memory' $$,
  format($$ VALUES (%L::uuid), (%L), (%L), (%L), (%L), (%L) $$, :'m1', :'m2', :'m2', :'m3', :'m4', :'m5'),
  'each outcome names its memory');
SELECT is((SELECT e.embedding FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.name = 'imp4' AND e.memory_id = :'m1'), '[1,0,0,0]'::vector, 'the stored vector is L2-normalised');
SELECT is((SELECT count(*) FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.name = 'imp4'), 1::bigint, 'nothing else was stored');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = 'imp4' AND s.memory_id = :'m1'), 0::bigint, 'the stored memory''s job for the model is gone');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = 'imp4' AND s.memory_id IN (:'m2', :'m3', :'m4', :'m5')), 4::bigint, 'the rejected ones'' jobs stay');
SELECT is((SELECT embedding FROM memoriesdb.memories WHERE id = :'m1'), NULL::vector, 'a filling model does not touch the mirror');
SELECT is((SELECT done FROM memoriesdb.model_progress() WHERE model = 'imp4'), 1::bigint, 'model_progress counts the imported vector as done');

-- a revision: the old content's hash is stale, the new one's is stored
SELECT tests.act_as(:'u');
SELECT memoriesdb.revise(:'m1', 'green apples');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is((SELECT done FROM memoriesdb.model_progress() WHERE model = 'imp4'), 0::bigint, 'a revision makes the imported vector stale');
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.import_embeddings('imp4', ARRAY[%L::uuid], ARRAY[%L], ARRAY['[0,1,0,0]'::vector]) $$,
                         :'m1', pg_temp.h('apples')),
  ARRAY['hash_mismatch'], 'a vector of the content before the revision is refused (stale)');
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.import_embeddings('imp4', ARRAY[%L::uuid], ARRAY[%L], ARRAY['[0,2,0,0]'::vector]) $$,
                         :'m1', pg_temp.h('green apples')),
  ARRAY['stored'], 'a vector of the current content is stored');
SELECT tests.clear_context();
SELECT is((SELECT e.embedding FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.name = 'imp4' AND e.memory_id = :'m1'), '[0,1,0,0]'::vector, '... over the stale one');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = 'imp4' AND s.memory_id = :'m1'), 0::bigint, '... and the revision''s job for the model is gone');

-- the active model: memories.embedding too, and its job
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.state = 'active' AND s.memory_id = :'m2'), 1::bigint, 'the active model has a job for m2');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.import_embeddings(%L, ARRAY[%L::uuid], ARRAY[%L], ARRAY[tests.axis(3, 2)]) $$,
                         :'base', :'m2', pg_temp.h('bananas')),
  ARRAY['stored'], 'a vector for the active model is stored');
SELECT tests.clear_context();
SELECT results_eq(format($$ SELECT embedding, embedding_model, embedded_hash FROM memoriesdb.memories WHERE id = %L $$, :'m2'),
  format($$ VALUES (tests.axis(3), %L::text, sha256(convert_to('bananas', 'UTF8'))) $$, :'base'),
  'the active model''s vector is mirrored in memories.embedding (normalised), with the model and the hash');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.state = 'active' AND s.memory_id = :'m2'), 0::bigint, '... and its job is gone: no worker embeds it again');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = 'imp4' AND s.memory_id = :'m2'), 1::bigint, '... only the active model''s job');

-- a job a worker holds is left to finish: its vector (of the same content) replaces the imported one
SELECT tests.act_as(NULL, 'memoriesdb_worker');
CREATE TEMP TABLE c1 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(10, '5 minutes', 'w', ARRAY['imp4']);
SELECT ok((SELECT count(*) FROM c1 WHERE memory_id = :'m3') = 1, 'a worker leases m3''s job of the filling model');
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.import_embeddings('imp4', ARRAY[%L::uuid], ARRAY[%L], ARRAY['[0,0,1,0]'::vector]) $$,
                         :'m3', pg_temp.h('cherries')),
  ARRAY['stored'], 'the import stores m3 while the job is leased');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = 'imp4' AND s.memory_id = :'m3' AND s.lease_id IS NOT NULL), 1::bigint, '... and leaves the leased job to its worker');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[%L::uuid], ARRAY[(SELECT lease_id FROM c1 WHERE memory_id = %1$L)],
                                                                          ARRAY['[0,0,0,1]'::vector], 'imp4') $$, :'m3'),
  ARRAY['stored'], 'the worker completes it (not lease_lost, whose vector would be checked against the mirror''s dimension)');
SELECT tests.clear_context();
SELECT is((SELECT e.embedding FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.name = 'imp4' AND e.memory_id = :'m3'), '[0,0,0,1]'::vector, '... its vector replacing the imported one, of the same content');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT tests.clear_context();

-- refusals
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT throws_ok($$ SELECT * FROM memoriesdb.import_embeddings('nope', '{}', '{}', '{}') $$, 'MDB16', 'no such embedding model',
  'an unknown model is refused');
SELECT * FROM memoriesdb.add_model('gone4', 'ollama', 4);
SELECT * FROM memoriesdb.retire_model('gone4');
SELECT is((tests.error_of(format($$ SELECT * FROM memoriesdb.import_embeddings('gone4', ARRAY[%L::uuid], ARRAY[%L], ARRAY['[1,0,0,0]'::vector]) $$,
                                   :'m3', pg_temp.h('cherries'))))[1:2],
  ARRAY['MDB31', 'a retired model takes no vectors'], 'a retired model is refused');
SELECT is((tests.error_of($$ SELECT * FROM memoriesdb.import_embeddings('imp4', ARRAY[gen_random_uuid()], '{}', '{}') $$))[1],
  'MDB12', 'arrays of different lengths are refused');
SELECT ok((SELECT e[1] = 'MDB12' AND e[3] = '5001 rows; at most 5000 per call' AND e[4] LIKE '%--batch%'
             FROM tests.error_of($$ SELECT * FROM memoriesdb.import_embeddings('imp4',
               array_fill(gen_random_uuid(), ARRAY[5001]), array_fill('00'::text, ARRAY[5001]), array_fill('[1,0,0,0]'::vector, ARRAY[5001])) $$) AS e),
  'more than 5000 rows in a call are refused, with DETAIL and HINT');
SELECT is((tests.error_of($$ SELECT * FROM memoriesdb.import_embeddings(NULL, '{}', '{}', '{}') $$))[1], 'MDB12', 'a model is required');
SELECT is_empty($$ SELECT * FROM memoriesdb.import_embeddings('imp4', '{}', '{}', '{}') $$, 'an empty batch stores nothing');
SELECT tests.clear_context();

SELECT * FROM finish();
ROLLBACK;
