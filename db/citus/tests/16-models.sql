-- Citus (issue 17): the embedding models' lifecycle through the coordinator (db/citus/distribute.sql section 3m;
-- the single node's db/tests/33-models.sql): add_model(), the worker's claims and completions of the new model's jobs
-- on the owners' shards (two tenants on different workers), activate_model() refused while a memory lacks the model's
-- vector and switching when none does (the mirror rewritten on every shard, memories.embedding retyped to the model's
-- dimension on both workers and all shards), search() with the new model, pause_model()/resume_model(),
-- retire_model(); then back to the deployed model (retyped again), which the files and the runner's tests after this
-- one expect active. Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(52);
-- a unit vector of dim dimensions along axis i (a temporary function: Citus warns it stays local)
SET client_min_messages = error;
CREATE FUNCTION pg_temp.ax(i integer, dim integer) RETURNS public.vector LANGUAGE sql AS
  $$ SELECT array_agg(CASE WHEN g = i THEN 1 ELSE 0 END ORDER BY g)::real[]::public.vector FROM generate_series(1, dim) AS g $$;
SET client_min_messages = warning;
-- what each claim-and-complete round stored (the worker's DO blocks below write it)
CREATE TEMP TABLE stored (model text, memory_id uuid, outcome text);
CREATE TEMP TABLE held (memory_id uuid, lease_id uuid);
CREATE TEMP TABLE got (who text, ids uuid[], plan text);
GRANT ALL ON stored, held, got TO PUBLIC;

-- the deployed model (active), and the search thresholds to put back after the index-plan searches
SELECT name AS base, dimension AS base_dim, id AS base_id FROM memoriesdb.embedding_models WHERE state = 'active' \gset
SELECT string_agg(format('(%L, %L)', key, value::text), ', ') AS thresholds FROM memoriesdb.config
 WHERE key IN ('search_exact_max', 'search_hnsw_tuple_cost', 'search_hnsw_min_fraction') \gset

-- the models' names, new in every run (a retired model's name is never reused: the file runs again on the same ledger)
SELECT 'citus-m4-' || (random() * 1e9)::bigint AS m4name, 'citus-tiny-' || (random() * 1e9)::bigint AS tinyname \gset

-- ana, and a ben whose shard is on the other worker
SELECT memoriesdb.create_user('ana' || (random() * 1e9)::bigint) AS ana \gset
SELECT pg_temp.user_apart('ben', :'ana') AS ben \gset
SELECT memoriesdb.create_api_key(:'ana') AS ka \gset
SELECT memoriesdb.create_api_key(:'ben') AS kb \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('ana: apples') AS a1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('ana: bananas') AS a2 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.remember('ben: cherries') AS b1 \gset
COMMIT;
RESET SESSION AUTHORIZATION;
-- activation counts every memory of the ledger (the earlier files' too)
SELECT count(*) AS n FROM memoriesdb.memories \gset

-- 1. add_model(): a filling model with a job per memory, on the owners' shards, and its HNSW index on every shard
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
SELECT m.model_id AS m4, m.jobs AS m4_jobs FROM memoriesdb.add_model(:'m4name', 'ollama', 4) AS m \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(:'m4_jobs'::bigint, :'n'::bigint, 'add_model() queues a job for every memory of the ledger');
SELECT count(*) AS m4_queued, count(DISTINCT s.owner_id) FILTER (WHERE s.owner_id IN (:'ana', :'ben')) AS m4_owners
  FROM memoriesdb.embedding_schedule AS s WHERE s.model_id = :'m4' \gset
SELECT is(:'m4_queued'::bigint, :'n'::bigint, '... stored on the owners'' shards');
SELECT is(:'m4_owners'::int, 2, '... ana''s and ben''s among them (two workers)');
-- (each shard's indexes: run_command_on_shards() puts the shard's name in for %s, so a % of the query is %%)
SELECT count(*) AS m4_index_shards FROM run_command_on_shards('memoriesdb.embeddings',
  replace($c$SELECT count(*) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid WHERE i.indrelid = '%s'::regclass
               AND c.relname LIKE 'NAME%%' AND pg_get_indexdef(i.indexrelid) LIKE '%%hnsw%%vector(4)%%'$c$,
          'NAME', memoriesdb_internal.model_index_name(:'m4'))) AS r WHERE r.success AND r.result = '1' \gset
SELECT is(:'m4_index_shards'::int, 32, 'the model''s partial HNSW index is made on every shard of embeddings');

-- 2. the worker embeds every memory with it (claims and completions through the coordinator), ben's last: until then
-- the model is incomplete. ana's memories along axes 1 and 2, ben's along 3, everyone else's along 4.
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT format($d$DO $do$
DECLARE
  claimed integer;
BEGIN
  LOOP
    CREATE TEMP TABLE batch ON COMMIT DROP AS
      SELECT c.memory_id, c.lease_id FROM memoriesdb.claim_model_embedding_jobs(256, '10 minutes', 'citus-models-test', ARRAY[%4$L]) AS c;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    EXIT WHEN claimed = 0;
    INSERT INTO held SELECT b.memory_id, b.lease_id FROM batch AS b WHERE b.memory_id = %3$L;
    INSERT INTO stored SELECT %4$L, c.memory_id, c.outcome FROM memoriesdb.complete_embedding_jobs(
      ARRAY(SELECT b.memory_id FROM batch AS b WHERE b.memory_id <> %3$L ORDER BY b.memory_id),
      ARRAY(SELECT b.lease_id FROM batch AS b WHERE b.memory_id <> %3$L ORDER BY b.memory_id),
      ARRAY(SELECT pg_temp.ax(CASE b.memory_id WHEN %1$L THEN 1 WHEN %2$L THEN 2 ELSE 4 END, 4)
              FROM batch AS b WHERE b.memory_id <> %3$L ORDER BY b.memory_id),
      %4$L) AS c;
    COMMIT;   -- (each claim and its completion one transaction)
  END LOOP;
END
$do$$d$, :'a1', :'a2', :'b1', :'m4name') \gexec
RESET SESSION AUTHORIZATION;
SELECT count(*) FILTER (WHERE outcome = 'stored') AS m4_stored, count(*) FILTER (WHERE outcome <> 'stored') AS m4_other
  FROM stored WHERE model = :'m4name' \gset
SELECT is(:'m4_stored'::bigint, :'n'::bigint - 1, 'the worker stored the model''s vector of every memory but ben''s');
SELECT is(:'m4_other'::bigint, 0::bigint, '... and nothing else');
SELECT lease_id AS b1_lease FROM held WHERE memory_id = :'b1' \gset

-- 3. activate_model() while ben's memory (on the other worker) lacks its vector: the single node's refusal
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT throws_ok(format('SELECT * FROM memoriesdb.activate_model(%L)', :'m4name'), 'MDB32', 'the model has not embedded every memory',
                 'activate_model() of an incomplete model is refused (MDB32)');
CREATE TEMP TABLE refusal (detail text, hint text);
SELECT format($d$DO $do$
DECLARE
  d text;
  h text;
BEGIN
  PERFORM * FROM memoriesdb.activate_model(%L);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
  INSERT INTO refusal VALUES (d, h);
END
$do$$d$, :'m4name') \gexec
RESET SESSION AUTHORIZATION;
SELECT detail AS refusal_detail, hint AS refusal_hint FROM refusal \gset
SELECT is(:'refusal_detail'::text, format('model %L: 1 of %s memories have no vector of their current content (state filling)', :'m4name', :'n'),
          '... saying how many memories (of the whole cluster) are missing');
SELECT ok(:'refusal_hint'::text LIKE 'wait until model_progress() shows it done%', '... and what to do');
SELECT state AS m4_state FROM memoriesdb.embedding_models WHERE id = :'m4' \gset
SELECT is(:'m4_state'::text, 'filling', 'the model is still filling');

-- search() by the filling model's name: its vectors, on the caller's shard
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
INSERT INTO got SELECT 'ana by name', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(pg_temp.ax(2, 4), :'m4name', 5) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '0'), ('search_hnsw_tuple_cost', '0'),
  ('search_hnsw_min_fraction', '0')) AS x(k, v) WHERE key = x.k;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
INSERT INTO got SELECT 'ana by name hnsw', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(pg_temp.ax(1, 4), :'m4name', 1) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT format('UPDATE memoriesdb.config SET value = x.v::jsonb FROM (VALUES %s) AS x(k, v) WHERE key = x.k', :'thresholds') \gexec
SELECT is((SELECT ids FROM got WHERE who = 'ana by name'), ARRAY[:'a2', :'a1']::uuid[],
          'search() naming the filling model ranks ana''s memories by its vectors');
SELECT is((SELECT array[ids::text, split_part(plan, ' ', 1), (plan LIKE '%-> exact%')::text] FROM got WHERE who = 'ana by name hnsw'),
          array[ARRAY[:'a1']::uuid[]::text, 'hnsw', 'false'], '... and on the index plan (the model''s own HNSW index on embeddings)');

-- ben's vector, completed with the lease his job kept; the model is complete
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
SELECT c.outcome AS b1_outcome FROM memoriesdb.complete_embedding_jobs(ARRAY[:'b1']::uuid[], ARRAY[:'b1_lease']::uuid[],
  ARRAY[pg_temp.ax(3, 4)], :'m4name') AS c \gset
COMMIT;
BEGIN;
SELECT p.done AS m4_done, p.total AS m4_total, p.pending AS m4_pending FROM memoriesdb.model_progress() AS p WHERE p.model = :'m4name' \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(:'b1_outcome'::text, 'stored', 'ben''s vector is stored on his shard');
SELECT is(array[:'m4_done', :'m4_total', :'m4_pending']::bigint[], array[:'n', :'n', 0]::bigint[],
          'model_progress(): done = total, nothing pending');

-- 4. activation: the switch, the mirror rewritten on every shard, the column retyped everywhere
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
SELECT a.model AS act_model, a.previous AS act_previous, a.memories AS act_memories FROM memoriesdb.activate_model(:'m4name') AS a \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(array[:'act_model', :'act_previous', :'act_memories'], array[:'m4name', :'base', :'n'],
          'activate_model() of the complete model: it, the previous one, every memory mirrored');
SELECT is((SELECT array_agg(row(name, state)::text ORDER BY name) FROM memoriesdb.embedding_models WHERE state IN ('active', 'paused')),
          ARRAY[row(:'m4name', 'active')::text, row(:'base', 'paused')::text], 'the new model is active, the previous one paused');
SELECT m.embedding::text AS a1_mirror, m.embedding_model AS a1_model FROM memoriesdb.memories AS m WHERE m.owner_id = :'ana' AND m.id = :'a1' \gset
SELECT m.embedding::text AS b1_mirror, m.embedding_model AS b1_model FROM memoriesdb.memories AS m WHERE m.owner_id = :'ben' AND m.id = :'b1' \gset
SELECT is(array[:'a1_mirror', :'a1_model'], array['[1,0,0,0]', :'m4name'], 'ana''s memory mirrors the new model''s vector');
SELECT is(array[:'b1_mirror', :'b1_model'], array['[0,0,1,0]', :'m4name'], '... and ben''s, on the other worker');
SELECT count(*) FILTER (WHERE m.embedding_model = :'m4name') AS mirrored, count(*) FILTER (WHERE m.embedding_model IS DISTINCT FROM :'m4name') AS not_mirrored
  FROM memoriesdb.memories AS m \gset
SELECT is(array[:'mirrored', :'not_mirrored']::bigint[], array[:'n', 0]::bigint[], 'every memory of the cluster mirrors it, none another model');
SELECT format_type(a.atttypid, a.atttypmod) AS coord_type FROM pg_attribute AS a
 WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding' \gset
SELECT is(:'coord_type'::text, 'vector(4)', 'memories.embedding is retyped to the model''s dimension on the coordinator');
SELECT is((SELECT array_agg(r.result) FROM run_command_on_workers($c$SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a
             WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding'$c$) AS r),
          ARRAY['vector(4)', 'vector(4)'], '... on both workers');
SELECT count(*) AS retyped_shards FROM run_command_on_shards('memoriesdb.memories',
  $c$SELECT atttypmod FROM pg_attribute WHERE attrelid = '%s'::regclass AND attname = 'embedding'$c$) AS r WHERE r.success AND r.result = '4' \gset
SELECT is(:'retyped_shards'::int, 32, '... and on all 32 shards');
SELECT count(*) AS trigger_shards FROM run_command_on_shards('memoriesdb.memories',
  $c$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%1$s'::regclass AND tgname = 'enqueue_vindexing_' || split_part('%1$s', '_', 2)
       AND pg_get_triggerdef(oid) LIKE '%%AFTER UPDATE OF embedding%%WHEN ((new.embedding IS NOT NULL))%%enqueue_vindexing()'$c$) AS r
 WHERE r.success AND r.result = '1' \gset
SELECT is(:'trigger_shards'::int, 32, 'the vindexing trigger is back on every shard, as it was');
SELECT is(memoriesdb.setting('embedding_dim')::int, 4, 'the configured dimension is the model''s');

-- 5. search() uses the new model: the exact plan, then the index plan (the active model's HNSW index on embeddings)
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
INSERT INTO got SELECT 'ana exact', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(pg_temp.ax(2, 4), 5) AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
INSERT INTO got SELECT 'ben exact', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(pg_temp.ax(1, 4), 5) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '0'), ('search_hnsw_tuple_cost', '0'),
  ('search_hnsw_min_fraction', '0')) AS x(k, v) WHERE key = x.k;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
INSERT INTO got SELECT 'ana hnsw', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(pg_temp.ax(2, 4), 1) AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
INSERT INTO got SELECT 'ben hnsw', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(pg_temp.ax(3, 4), 1) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT format('UPDATE memoriesdb.config SET value = x.v::jsonb FROM (VALUES %s) AS x(k, v) WHERE key = x.k', :'thresholds') \gexec
SELECT is((SELECT ids FROM got WHERE who = 'ana exact'), ARRAY[:'a2', :'a1']::uuid[], 'search() without a model ranks by the new model (ana)');
SELECT is((SELECT ids FROM got WHERE who = 'ben exact'), ARRAY[:'b1']::uuid[], '... ben (the other worker) finds his own only');
SELECT is((SELECT array[ids::text, split_part(plan, ' ', 1), (plan LIKE '%-> exact%')::text] FROM got WHERE who = 'ana hnsw'),
          array[ARRAY[:'a2']::uuid[]::text, 'hnsw', 'false'], '... and on the index plan (the new model''s HNSW index on embeddings)');
SELECT is((SELECT array[ids::text, split_part(plan, ' ', 1), (plan LIKE '%-> exact%')::text] FROM got WHERE who = 'ben hnsw'),
          array[ARRAY[:'b1']::uuid[]::text, 'hnsw', 'false'], '... for ben too');

-- a memory remembered now: a job for the active model and one for the paused one; only the active one's is claimed
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('ana: dates') AS a3 \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS a3_jobs FROM memoriesdb.embedding_schedule AS s WHERE s.owner_id = :'ana' AND s.memory_id = :'a3' \gset
SELECT is(:'a3_jobs'::int, 2, 'a new memory is queued for the active and for the paused model');
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
CREATE TEMP TABLE c_a3 AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(256, '1 minute', 'citus-models-test');
SELECT array_agg(row(c.memory_id, c.model)::text) AS a3_claimed FROM c_a3 AS c \gset
SELECT c.outcome AS a3_outcome FROM memoriesdb.complete_embedding_jobs(ARRAY(SELECT c.memory_id FROM c_a3 AS c),
  ARRAY(SELECT c.lease_id FROM c_a3 AS c), ARRAY[pg_temp.ax(1, 4)], :'m4name') AS c \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(:'a3_claimed'::text[], ARRAY[row(:'a3'::uuid, :'m4name')::text], 'a claim takes the active model''s job, not the paused model''s');
SELECT m.embedding::text AS a3_mirror FROM memoriesdb.memories AS m WHERE m.owner_id = :'ana' AND m.id = :'a3' \gset
SELECT is(array[:'a3_outcome', :'a3_mirror'], array['stored', '[1,0,0,0]'], '... and its vector is the mirror');

-- 6. pause and resume
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT throws_ok(format('SELECT memoriesdb.pause_model(%L)', :'m4name'), 'MDB31', 'a active model cannot be paused', 'the active model cannot be paused');
SELECT is(memoriesdb.resume_model(:'base'), 'filling', 'a paused model resumes filling');
SELECT is(memoriesdb.pause_model(:'base'), 'paused', 'a filling model pauses');
RESET SESSION AUTHORIZATION;
SELECT state AS base_state FROM memoriesdb.embedding_models WHERE name = :'base' \gset
SELECT is(:'base_state'::text, 'paused', '... and stays paused');
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql

-- 7. retirement: never the active model; a model retired loses its jobs, vectors and index on every node
SELECT throws_ok(format('SELECT * FROM memoriesdb.retire_model(%L)', :'m4name'), 'MDB31', 'the active model cannot be retired',
                 'the active model cannot be retired');
BEGIN;
SELECT m.model_id AS tiny, m.jobs AS tiny_jobs FROM memoriesdb.add_model(:'tinyname', 'openai', 2) AS m \gset
COMMIT;
BEGIN;
SELECT r.vectors AS tiny_vectors, r.jobs AS tiny_dropped FROM memoriesdb.retire_model(:'tinyname') AS r \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(array[:'tiny_jobs', :'tiny_vectors', :'tiny_dropped']::bigint[], array[:'n'::bigint + 1, 0, :'n'::bigint + 1],
          'a model added and retired: its jobs for every memory dropped');
SELECT count(*) AS tiny_left FROM memoriesdb.embedding_schedule AS s WHERE s.model_id = :'tiny' \gset
SELECT is(:'tiny_left'::bigint, 0::bigint, '... on every shard');
SELECT count(*) AS tiny_index_shards FROM run_command_on_shards('memoriesdb.embeddings',
  replace($c$SELECT count(*) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid WHERE i.indrelid = '%s'::regclass
               AND c.relname LIKE 'NAME%%'$c$, 'NAME', memoriesdb_internal.model_index_name(:'tiny'))) AS r WHERE r.success AND r.result = '0' \gset
SELECT is(:'tiny_index_shards'::int, 32, '... and its HNSW index on every shard');
SELECT state AS tiny_state FROM memoriesdb.embedding_models WHERE id = :'tiny' \gset
SELECT is(:'tiny_state'::text, 'retired', '... the registry keeps it, retired');

-- 8. back to the deployed model (the files and the runner's tests after this one use it): it must hold every
-- memory's vector first. The earlier files put its jobs off by a day or left them leased (to keep them out of their
-- claims): ready again here, then embedded by the worker, then activated: the column retyped back.
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT is(memoriesdb.resume_model(:'base'), 'filling', 'the deployed model fills again');
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.embedding_schedule SET run_after = now(), dead_at = NULL, attempts = 0, lease_id = NULL, lease_until = NULL,
       leased_hash = NULL, leased_by = NULL, leased_at = NULL
 WHERE model_id = :'base_id';
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT format($d$DO $do$
DECLARE
  claimed integer;
BEGIN
  LOOP
    CREATE TEMP TABLE batch ON COMMIT DROP AS
      SELECT c.memory_id, c.lease_id FROM memoriesdb.claim_model_embedding_jobs(256, '10 minutes', 'citus-models-test', ARRAY[%4$L]) AS c;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    EXIT WHEN claimed = 0;
    INSERT INTO stored SELECT %4$L, c.memory_id, c.outcome FROM memoriesdb.complete_embedding_jobs(
      ARRAY(SELECT b.memory_id FROM batch AS b ORDER BY b.memory_id), ARRAY(SELECT b.lease_id FROM batch AS b ORDER BY b.memory_id),
      ARRAY(SELECT pg_temp.ax(CASE b.memory_id WHEN %1$L THEN 1 WHEN %2$L THEN 2 WHEN %3$L THEN 3 ELSE 4 END, %5$s)
              FROM batch AS b ORDER BY b.memory_id),
      %4$L) AS c;
    COMMIT;   -- (each claim and its completion one transaction)
  END LOOP;
END
$do$$d$, :'a1', :'a2', :'b1', :'base', :'base_dim') \gexec
SELECT throws_ok(format('SELECT * FROM memoriesdb.retire_model(%L)', :'m4name'), 'MDB31', 'the active model cannot be retired',
                 'the active model is not retired while the deployed one fills');
BEGIN;
SELECT a.model AS back_model, a.previous AS back_previous, a.memories AS back_memories FROM memoriesdb.activate_model(:'base') AS a \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(array[:'back_model', :'back_previous', :'back_memories'], array[:'base', :'m4name', (:'n'::bigint + 1)::text],
          'the deployed model, complete again, is activated: every memory mirrored');
SELECT count(*) AS back_shards FROM run_command_on_shards('memoriesdb.memories',
  $c$SELECT atttypmod FROM pg_attribute WHERE attrelid = '%s'::regclass AND attname = 'embedding'$c$) AS r WHERE r.success AND r.result = :'base_dim' \gset
SELECT format_type(a.atttypid, a.atttypmod) AS back_type FROM pg_attribute AS a
 WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding' \gset
SELECT is(array[:'back_type', :'back_shards', memoriesdb.setting('embedding_dim')::text], array[format('vector(%s)', :'base_dim'), '32', :'base_dim'],
          'memories.embedding is retyped back on the coordinator and all 32 shards');
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
INSERT INTO got SELECT 'ana back', array_agg(s.id ORDER BY s.similarity DESC), NULL FROM memoriesdb.search(pg_temp.ax(1, :'base_dim'), 1) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT ids FROM got WHERE who = 'ana back'), ARRAY[:'a1']::uuid[], 'search() uses the deployed model''s vectors again');

-- 9. the model that was active, retired: its vectors on both workers, its index on every shard
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
SELECT r.vectors AS m4_vectors, r.jobs AS m4_dropped FROM memoriesdb.retire_model(:'m4name') AS r \gset
COMMIT;
SELECT throws_ok(format('SELECT * FROM memoriesdb.activate_model(%L)', :'m4name'), 'MDB31', 'a retired model cannot be activated',
                 'a retired model cannot be activated again');
RESET SESSION AUTHORIZATION;
SELECT is(array[:'m4_vectors', :'m4_dropped']::bigint[], array[:'n'::bigint + 1, 0],
          'retire_model() drops the model''s vector of every memory');
SELECT count(*) AS m4_left, count(*) FILTER (WHERE e.owner_id = :'ben') AS m4_left_ben FROM memoriesdb.embeddings AS e WHERE e.model_id = :'m4' \gset
SELECT is(array[:'m4_left', :'m4_left_ben']::bigint[], array[0, 0]::bigint[], '... on every shard (ben''s worker too)');
SELECT count(*) AS m4_index_gone FROM run_command_on_shards('memoriesdb.embeddings',
  replace($c$SELECT count(*) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid WHERE i.indrelid = '%s'::regclass
               AND c.relname LIKE 'NAME%%'$c$, 'NAME', memoriesdb_internal.model_index_name(:'m4'))) AS r WHERE r.success AND r.result = '0' \gset
SELECT is(:'m4_index_gone'::int, 32, '... and its HNSW index from every shard');
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.search(pg_temp.ax(1, 4), %L)', :'m4name'), 'MDB31', 'a retired model has no vectors to search',
                 'a retired model cannot be searched');
COMMIT;
RESET SESSION AUTHORIZATION;

-- the activations' rewrites are audited on the owners' chains: sealed, and every chain verifies
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'the activations'' audit rows are sealed');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain() AS v), '(t,)', 'and every chain verifies');

SELECT * FROM finish();
