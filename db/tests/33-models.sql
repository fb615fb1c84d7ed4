-- Versioned embeddings (issue 15): the model registry, jobs per (memory, model), activation, pause and
-- resume, retirement, search by model. The upgrade's copy of the stored vectors: runner/tests/test_models.py.
BEGIN;
SELECT plan(73);
-- activation counts every memory of the ledger: none but this file's (10-session.sql commits one),
-- removed in this transaction, which rolls back
DELETE FROM memoriesdb.memories;

-- a unit vector of dim dimensions along axis i
CREATE FUNCTION pg_temp.ax(i integer, dim integer) RETURNS vector LANGUAGE sql AS $$
  SELECT array_agg(CASE WHEN g = i THEN 1 ELSE 0 END ORDER BY g)::real[]::vector FROM generate_series(1, dim) AS g $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

-- the registry as deployed: one active model, the column's
SELECT results_eq($$ SELECT provider, dimension, activated_at IS NOT NULL FROM memoriesdb.embedding_models WHERE state = 'active' $$,
  format($$ VALUES ('configured'::text, %s, true) $$, memoriesdb.setting('embedding_dim')),
  'the deployed model is registered as the active one, provider configured, the column''s dimension');
SELECT name AS base FROM memoriesdb.embedding_models WHERE state = 'active' \gset
SELECT is_definer('memoriesdb', 'activate_model', ARRAY['text'], 'activate_model is SECURITY DEFINER');
SELECT ok(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.add_model(text, text, integer)', 'EXECUTE'),
  'the application cannot register a model');

UPDATE memoriesdb.embedding_schedule SET dead_at = now();   -- only this test's jobs matter
SELECT tests.create_user('modeller') AS u \gset
SELECT tests.memory_of(:'u', 'apples') AS m1 \gset
SELECT tests.memory_of(:'u', 'bananas') AS m2 \gset
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), 1::bigint, 'one model: one job per memory');

-- the base model embeds m1, m2 (the released claim: the active model's jobs)
SELECT tests.act_as(NULL, 'memoriesdb_worker');
CREATE TEMP TABLE c0 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_embedding_jobs(10, '5 minutes', 'w');
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.complete_embedding_jobs(
    ARRAY(SELECT memory_id FROM c0 ORDER BY memory_id = %1$L DESC), ARRAY(SELECT lease_id FROM c0 ORDER BY memory_id = %1$L DESC),
    ARRAY[tests.axis(1), tests.axis(2)], 'base-worker') $$, :'m1'), ARRAY['stored', 'stored'], 'the base model''s vectors are stored');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.state = 'active' AND e.memory_id IN (:'m1', :'m2')), 2::bigint,
  'the active model''s vectors are kept in embeddings');
SELECT is((SELECT embedding FROM memoriesdb.memories WHERE id = :'m1'), tests.axis(1), '... and mirrored in memories.embedding');

-- add_model: refusals, then a filling model with a job per memory
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT throws_ok($$ SELECT * FROM memoriesdb.add_model('bad name!', 'ollama', 4) $$, 'MDB30', 'invalid model name', 'a model name is checked');
SELECT throws_ok($$ SELECT * FROM memoriesdb.add_model('m4', 'nope', 4) $$, 'MDB30', 'invalid provider', 'the provider is checked');
SELECT throws_ok($$ SELECT * FROM memoriesdb.add_model('m4', 'ollama', 0) $$, 'MDB30', 'invalid dimension', 'the dimension is checked');
SELECT throws_ok($$ SELECT * FROM memoriesdb.add_model('m4', 'ollama', 2001) $$, 'MDB30', 'invalid dimension', 'at most 2000 dimensions (HNSW)');
SELECT tests.clear_context();
SELECT count(*) AS n FROM memoriesdb.memories \gset
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is((SELECT jobs FROM memoriesdb.add_model('m4', 'ollama', 4)), :'n'::bigint, 'add_model queues a job per memory');
SELECT throws_ok($$ SELECT * FROM memoriesdb.add_model('m4', 'openai', 8) $$, 'MDB30', 'model already registered', 'a name is registered once');
SELECT tests.clear_context();
SELECT id AS m4 FROM memoriesdb.embedding_models WHERE name = 'm4' \gset
SELECT throws_ok($$ UPDATE memoriesdb.embedding_models SET state = 'active', activated_at = now() WHERE name = 'm4' $$,
  '23505', NULL, 'at most one model is active (a unique partial index)');
SELECT is((SELECT state FROM memoriesdb.embedding_models WHERE id = :'m4'), 'filling', 'a new model is filling');
SELECT is((SELECT count(*) FROM pg_indexes WHERE schemaname = 'memoriesdb' AND indexname = memoriesdb_internal.model_index_name(:'m4')
             AND indexdef LIKE '%hnsw%vector(4)%vector_cosine_ops%'), 1::bigint, 'the model has its own partial HNSW index on its dimension');
SELECT is((SELECT c.reloptions FROM pg_class AS c WHERE c.oid = format('memoriesdb.%I', memoriesdb_internal.model_index_name(:'m4'))::regclass),
          '{m=32,ef_construction=128}'::text[], 'its graph is built with config search_hnsw_m and search_hnsw_ef_construction');
UPDATE memoriesdb.embedding_schedule SET dead_at = now() WHERE memory_id NOT IN (:'m1', :'m2');   -- other tests' memories
SELECT tests.memory_of(:'u', 'cherries') AS m3 \gset
SELECT results_eq(format($$ SELECT em.name FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
                             WHERE s.memory_id = %L ORDER BY 1 $$, :'m3'),
  format($$ VALUES (%L::text), ('m4') $$, :'base'), 'a new memory gets a job for the active and for the filling model');

-- claims: the active model's jobs first, each job with its model
SELECT tests.act_as(NULL, 'memoriesdb_worker');
CREATE TEMP TABLE c1 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(1, '5 minutes', 'w');
SELECT results_eq($$ SELECT memory_id, model FROM c1 $$, format($$ VALUES (%L::uuid, %L::text) $$, :'m3', :'base'),
  'the active model''s job is claimed before the filling model''s');
CREATE TEMP TABLE c2 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(10, '5 minutes', 'w');
SELECT results_eq($$ SELECT count(*), min(model), min(provider), min(dimension) FROM c2 $$, $$ VALUES (3::bigint, 'm4'::text, 'ollama'::text, 4) $$,
  'then the filling model''s jobs, with its provider and dimension');
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.complete_embedding_jobs(ARRAY[%L]::uuid[], ARRAY[%L]::uuid[], ARRAY[%L]::vector[], 'm4') $$,
    :'m1', (SELECT lease_id FROM c2 WHERE memory_id = :'m1'), tests.axis(1)),
  'MDB11', 'embedding has the wrong dimension', 'a vector must have its job''s model''s dimension');
SELECT throws_ok($$ SELECT * FROM memoriesdb.activate_model('m4') $$, 'MDB32', 'the model has not embedded every memory',
  'a model that is not complete cannot be activated');
SELECT results_eq(format($$ SELECT outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[%L, %L, %L]::uuid[], ARRAY[%L, %L, %L]::uuid[],
      ARRAY[%L, %L, %L]::vector[], 'm4') $$, :'m1', :'m2', :'m3',
    (SELECT lease_id FROM c2 WHERE memory_id = :'m1'), (SELECT lease_id FROM c2 WHERE memory_id = :'m2'), (SELECT lease_id FROM c2 WHERE memory_id = :'m3'),
    pg_temp.ax(1, 4), pg_temp.ax(2, 4), pg_temp.ax(3, 4)),
  ARRAY['stored', 'stored', 'stored'], 'the filling model''s vectors are stored');
SELECT is(memoriesdb.complete_embedding_job(:'m3', (SELECT lease_id FROM c1), tests.axis(3), 'base-worker'), 'stored', 'and the active model''s');
SELECT tests.clear_context();
SELECT is((SELECT embedding FROM memoriesdb.memories WHERE id = :'m1'), tests.axis(1), 'a filling model''s vector does not touch the mirror');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq($$ SELECT done, pending, leased, dead, state FROM memoriesdb.model_progress() WHERE model = 'm4' $$,
  $$ VALUES (3::bigint, 0::bigint, 0::bigint, 0::bigint, 'filling'::text) $$, 'model_progress counts what the model has done');

-- two models searched side by side
SELECT tests.act_as(:'u');
SELECT is((SELECT id FROM memoriesdb.search(tests.axis(2), 1)), :'m2'::uuid, 'search() without a model uses the active model');
SELECT is((SELECT id FROM memoriesdb.search(pg_temp.ax(3, 4), 'm4', 1)), :'m3'::uuid, 'search() by name uses that model''s vectors');
SELECT is((SELECT id FROM memoriesdb.search(tests.axis(1), :'base', 1)), :'m1'::uuid, 'search() naming the active model is the default search');
SELECT is((SELECT id FROM memoriesdb.search_hybrid('bananas', pg_temp.ax(2, 4), 'm4', 1)), :'m2'::uuid, 'search_hybrid() by model');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1), 'm4') $$, 'MDB11', 'embedding has the wrong dimension',
  'the query vector must be the named model''s');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1), 'nope') $$, 'MDB16', 'no such embedding model', 'an unknown model is refused');
SELECT ok((SELECT count(*) FROM memoriesdb.access_history(:'m3') WHERE function = 'search') >= 1, 'a search by model is on the access log');

-- only content re-embeds, and every model
SELECT memoriesdb.revise(:'m1', metadata => '{"colour": "red"}');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1'), 0::bigint, 'a metadata-only revision queues nothing');
SELECT tests.act_as(:'u');
SELECT memoriesdb.revise(:'m1', 'green apples');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m1' AND dead_at IS NULL), 2::bigint,
  'new content re-queues the memory for every model');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is((tests.error_of($$ SELECT * FROM memoriesdb.activate_model('m4') $$))[1:2], ARRAY['MDB32', 'the model has not embedded every memory'],
  'a changed memory makes the model incomplete again');
SELECT ok((SELECT e[3] LIKE '%1 of%' AND e[4] IS NOT NULL FROM tests.error_of($$ SELECT * FROM memoriesdb.activate_model('m4') $$) AS e),
  'the refusal says how many memories are missing, and what to do');
CREATE TEMP TABLE c3 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(10, '5 minutes', 'w');
SELECT is((SELECT outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[:'m1']::uuid[], ARRAY(SELECT lease_id FROM c3 WHERE model = 'm4'),
            ARRAY[pg_temp.ax(4, 4)], 'm4')), 'stored', 'the revision is embedded by the filling model');
SELECT is((SELECT outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[:'m1']::uuid[], ARRAY(SELECT lease_id FROM c3 WHERE model <> 'm4'),
            ARRAY[tests.axis(4)], 'base-worker')), 'stored', 'and by the active one');

-- activation: atomic switch, the mirror rewritten (another dimension: the column retyped)
SELECT results_eq($$ SELECT model, previous, memories FROM memoriesdb.activate_model('m4') $$,
  format($$ VALUES ('m4'::text, %L::text, 3::bigint) $$, :'base'), 'a complete model is activated');
SELECT tests.clear_context();
SELECT results_eq($$ SELECT name, state FROM memoriesdb.embedding_models WHERE state IN ('active', 'paused') ORDER BY state $$,
  format($$ VALUES ('m4'::text, 'active'::text), (%L, 'paused') $$, :'base'), 'the previous model is paused, the new one active');
SELECT results_eq(format($$ SELECT embedding::text, embedding_model FROM memoriesdb.memories WHERE id = %L $$, :'m1'),
  $$ VALUES ('[0,0,0,1]'::text, 'm4'::text) $$, 'memories.embedding now mirrors the new model');
SELECT is(memoriesdb.setting('embedding_dim')::int, 4, 'the column took the new model''s dimension');
SELECT is((SELECT count(*) FROM pg_indexes WHERE indexname = memoriesdb_internal.model_index_name(:'m4')), 1::bigint,
  'the active model keeps its HNSW index on embeddings (search()''s large-caller plan reads it)');
SELECT is((SELECT count(*) FROM pg_indexes WHERE schemaname = 'memoriesdb' AND tablename = 'memories' AND indexdef LIKE '%USING hnsw%'), 0::bigint,
  'memories.embedding, the mirror, has no HNSW index: the switch inserts into none');
SELECT tests.act_as(:'u');
SELECT is((SELECT id FROM memoriesdb.search(pg_temp.ax(2, 4), 1)), :'m2'::uuid, 'search() without a model now uses the new model');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_exact_max';   -- every caller takes the large-caller plan
SELECT tests.act_as(:'u');
SELECT results_eq($$ SELECT id, round(similarity::numeric, 4) FROM memoriesdb.search(pg_temp.ax(2, 4), 1) $$,
  format($$ VALUES (%L::uuid, 1.0000) $$, :'m2'), '... on the large-caller plan too (the new model''s HNSW index on embeddings)');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '20000' WHERE key = 'search_exact_max';

-- pause and resume
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT throws_ok($$ SELECT memoriesdb.pause_model('m4') $$, 'MDB31', 'a active model cannot be paused', 'the active model cannot be paused');
SELECT is(memoriesdb.resume_model(:'base'), 'filling', 'a paused model resumes filling');
SELECT is(memoriesdb.pause_model(:'base'), 'paused', 'a filling model pauses');
SELECT tests.clear_context();
SELECT tests.memory_of(:'u', 'dates') AS m5 \gset
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m5'), 2::bigint, 'a paused model still gets its jobs queued');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq($$ SELECT model FROM memoriesdb.claim_model_embedding_jobs(10, '5 minutes', 'w') $$, $$ VALUES ('m4'::text) $$,
  'a paused model''s jobs are not claimed');
SELECT memoriesdb.resume_model(:'base');
SELECT results_eq($$ SELECT memory_id, model FROM memoriesdb.claim_model_embedding_jobs(10, '5 minutes', 'w') $$,
  format($$ VALUES (%L::uuid, %L::text) $$, :'m5', :'base'), 'after resume_model() they are');

-- retirement
SELECT throws_ok($$ SELECT * FROM memoriesdb.retire_model('m4') $$, 'MDB31', 'the active model cannot be retired', 'the active model stays');
SELECT is((SELECT jobs FROM memoriesdb.add_model('tiny', 'openai', 2)), :'n'::bigint + 2, 'another model');
SELECT results_eq($$ SELECT vectors, jobs FROM memoriesdb.retire_model('tiny') $$, format($$ VALUES (0::bigint, %s::bigint) $$, :'n'::bigint + 2),
  'retire_model() drops its jobs and vectors');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM pg_indexes WHERE schemaname = 'memoriesdb' AND tablename = 'embeddings' AND indexdef LIKE '%USING hnsw%'), 2::bigint,
  '... and its index (the active model''s and the paused base model''s stay)');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is((SELECT vectors FROM memoriesdb.retire_model(:'base')), 3::bigint, 'the old model is retired with its vectors');
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.activate_model(%L) $$, :'base'), 'MDB31', 'a retired model cannot be activated',
  'a retired model cannot come back');
SELECT throws_ok($$ SELECT * FROM memoriesdb.activate_model('nope') $$, 'MDB16', 'no such embedding model', 'activate_model(): no such model');
SELECT tests.act_as(:'u');
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.search(pg_temp.ax(1, 4), %L) $$, :'base'), 'MDB31', 'a retired model has no vectors to search',
  'a retired model cannot be searched');

-- a memory forgotten while a worker holds its job of a model whose dimension is not the mirror's: its
-- vector ends as lease_lost, not as MDB11 for the worker's whole batch
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT memoriesdb.add_model('wide', 'openai', 8);
CREATE TEMP TABLE c9 ON COMMIT DROP AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(10, '5 minutes', 'w');
SELECT tests.act_as(:'u');
SELECT memoriesdb.forget(:'m5');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT is((SELECT outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[:'m5']::uuid[],
            ARRAY(SELECT lease_id FROM c9 WHERE memory_id = :'m5' AND model = 'wide'), ARRAY[pg_temp.ax(1, 8)], 'wide')),
  'lease_lost', 'a job whose memory was forgotten while leased: lease_lost, whatever its model''s dimension');
SELECT tests.clear_context();

-- dead jobs by model: listed with their model, put back for one model only
SELECT tests.memory_of(:'u', 'elderberries') AS m6 \gset
UPDATE memoriesdb.embedding_schedule SET dead_at = now(), last_error = 'refused by ' || (SELECT name FROM memoriesdb.embedding_models WHERE id = model_id)
 WHERE memory_id = :'m6';
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq(format($$ SELECT memory_id, model_name, last_error FROM memoriesdb.dead_embedding_jobs(10, 'wide') $$),
  format($$ VALUES (%L::uuid, 'wide'::text, 'refused by wide'::text) $$, :'m6'), 'dead_embedding_jobs(max_rows, model): that model''s only');
SELECT results_eq(format($$ SELECT model_name FROM memoriesdb.dead_embedding_jobs(10, NULL) WHERE memory_id = %L ORDER BY model_name $$, :'m6'),
  ARRAY['m4', 'wide'], '... every model''s, each with its model, for NULL');
SELECT results_eq(format($$ SELECT memory_id, outcome FROM memoriesdb.requeue_dead_embedding_jobs(ARRAY[%L, %L]::uuid[], 'wide') $$, :'m6', :'m1'),
  format($$ VALUES (%L::uuid, 'requeued'::text), (%L, 'not_dead') $$, :'m6', :'m1'),
  'requeue_dead_embedding_jobs(memory_ids, model): the named memories'' dead jobs of that model back, the others said why');
SELECT results_eq(format($$ SELECT model_name FROM memoriesdb.dead_embedding_jobs(10, NULL) WHERE memory_id = %L $$, :'m6'),
  ARRAY['m4'], '... the same memory''s dead job of another model stays dead');
SELECT results_eq($$ SELECT outcome, count(*) FROM memoriesdb.requeue_dead_embedding_jobs(NULL, 'm4') GROUP BY 1 $$,
  $$ VALUES ('requeued'::text, 1::bigint) $$, 'memory_ids NULL: every dead job of the model, one row each');
SELECT throws_ok($$ SELECT * FROM memoriesdb.requeue_dead_embedding_jobs(NULL, NULL) $$, 'MDB12', 'model must not be NULL',
  'requeue by model: the model is required');
SELECT throws_ok($$ SELECT * FROM memoriesdb.requeue_dead_embedding_jobs(NULL, 'nope') $$, 'MDB16', 'no such embedding model',
  'requeue by model: no such model');
SELECT throws_ok($$ SELECT * FROM memoriesdb.requeue_dead_embedding_jobs(NULL, 'tiny') $$, 'MDB31', 'a retired model has no jobs',
  'requeue by model: a retired model');
SELECT throws_ok($$ SELECT * FROM memoriesdb.dead_embedding_jobs(10, 'nope') $$, 'MDB16', 'no such embedding model',
  'dead jobs by model: no such model');
SELECT tests.clear_context();

-- the HNSW build parameters are read when an index is built: a model added after a change gets the new ones, and an
-- index built before keeps its own
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_hnsw_m', '8'), ('search_hnsw_ef_construction', '40')) AS x(k, v)
 WHERE key = x.k;
SELECT model_id AS m_params FROM memoriesdb.add_model('params', 'ollama', 4) \gset
SELECT is((SELECT c.reloptions FROM pg_class AS c WHERE c.oid = format('memoriesdb.%I', memoriesdb_internal.model_index_name(:'m_params'))::regclass),
          '{m=8,ef_construction=40}'::text[], 'a model added after the settings changed: its index has the new m and ef_construction');
SELECT is((SELECT c.reloptions FROM pg_class AS c WHERE c.oid = format('memoriesdb.%I', memoriesdb_internal.model_index_name(:'m4'))::regclass),
          '{m=32,ef_construction=128}'::text[], 'an index built before keeps its own');

SELECT * FROM finish();
ROLLBACK;
