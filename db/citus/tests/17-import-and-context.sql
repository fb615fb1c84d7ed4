-- Citus (issue 17): import_embeddings() (the operator's `memoriesdb import-embeddings`) across owners on both workers
-- (db/citus/distribute.sql section 3n: the owners from the memory directory, then per shard of memories); and
-- authenticate()/vouch() in an implicit transaction (section 3r: it failed with "syntax error at or near NULL", a proof
-- minted over no distributed transaction id; section 4e: the client's role on the workers' audit rows); and search()
-- reading the caller's grantors once (section 3s). One API call per transaction, as the Citus tests do; the implicit
-- transactions are the client's own top-level statements (psql autocommit). Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(41);

-- the hex SHA-256 of a content, as a user computes it (a temporary function: Citus warns it stays local)
SET client_min_messages = error;
CREATE FUNCTION pg_temp.h(content text) RETURNS text LANGUAGE sql AS $$ SELECT encode(sha256(convert_to(content, 'UTF8')), 'hex') $$;
-- a call's error as [sqlstate, message, detail, hint]
CREATE FUNCTION pg_temp.error_of(statement text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  c text; m text; d text; h text;
BEGIN
  EXECUTE statement;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS c = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
  RETURN ARRAY[c, m, d, h];
END $$;
SET client_min_messages = warning;
GRANT EXECUTE ON FUNCTION pg_temp.h(text), pg_temp.error_of(text) TO PUBLIC;
-- the jobs queued so far (the earlier files' memories) are out of the way
UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day' WHERE run_after <= now();

-- gina, and hal on the other worker; gina shares g4 with hal
SELECT memoriesdb.create_user('gina' || (random() * 1e9)::bigint) AS gina \gset
SELECT pg_temp.user_apart('hal', :'gina') AS hal \gset
SELECT memoriesdb.create_api_key(:'gina') AS kg \gset
SELECT memoriesdb.create_api_key(:'hal') AS kh \gset
SELECT name AS base, dimension AS base_dim FROM memoriesdb.embedding_models WHERE state = 'active' \gset
SELECT 'imp4_' || (random() * 1e9)::bigint AS imp \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT memoriesdb.accept_sender(:'gina') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS _ \gset
SELECT memoriesdb.remember('apples') AS g1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS _ \gset
SELECT memoriesdb.remember('bananas') AS g2 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS _ \gset
SELECT memoriesdb.remember('grapes') AS g3 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS _ \gset
SELECT memoriesdb.remember('gina shares this with hal') AS g4 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS _ \gset
SELECT memoriesdb.share(:'g4', :'hal') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT memoriesdb.remember('cherries') AS h1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT memoriesdb.remember('dates') AS h2 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT memoriesdb.remember('figs') AS h3 \gset
COMMIT;
RESET SESSION AUTHORIZATION;

-- 1. import_embeddings() ------------------------------------------------------------------------------------------
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT jobs > 0 AS queued FROM memoriesdb.add_model(:'imp', 'ollama', 4) \gset
-- one batch over both owners (both workers), every outcome, in input order. Before (section 3n): "could not run
-- distributed query with FOR UPDATE/SHARE commands", for any batch with a row
CREATE TEMP TABLE r1 AS
SELECT * FROM memoriesdb.import_embeddings(:'imp',
  ARRAY[:'g1', :'h1', :'h1', gen_random_uuid(), :'g2', :'h2', :'h3', :'g3']::uuid[],
  ARRAY[upper(pg_temp.h('apples')), pg_temp.h('cherries'), pg_temp.h('cherries'), pg_temp.h('x'), pg_temp.h('not bananas'),
        pg_temp.h('dates'), 'xyz', pg_temp.h('grapes')],
  ARRAY['[3,0,0,0]', '[0,2,0,0]', '[0,0,1,0]', '[1,0,0,0]', '[1,0,0,0]', '[0,0,0,0]', '[1,0,0,0]', '[1,2,3]']::vector[]);
RESET SESSION AUTHORIZATION;
SELECT ok(:'queued', 'a filling model of 4 dimensions, a job per memory');
SELECT is((SELECT array_agg(r.outcome) FROM r1 AS r),
  ARRAY['stored', 'stored', 'duplicate', 'no_memory', 'hash_mismatch', 'invalid_vector', 'invalid_hash', 'wrong_dimension'],
  'one batch over owners on both workers: each row''s outcome, in input order (hex in either case)');
SELECT is((SELECT array_agg(r.memory_id) FROM r1 AS r WHERE r.outcome <> 'no_memory'),
  ARRAY[:'g1', :'h1', :'h1', :'g2', :'h2', :'h3', :'g3']::uuid[], 'each outcome names its memory');
SELECT is((SELECT array_agg(row(e.owner_id, e.memory_id, e.embedding)::text ORDER BY e.memory_id = :'h1')
             FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id WHERE em.name = :'imp'),
  ARRAY[row(:'gina'::uuid, :'g1'::uuid, '[1,0,0,0]'::vector)::text, row(:'hal'::uuid, :'h1'::uuid, '[0,1,0,0]'::vector)::text],
  'the two vectors, L2-normalised, are stored on their owners'' shards, and nothing else');
SELECT is((SELECT array_agg(s.memory_id ORDER BY s.memory_id) FROM memoriesdb.embedding_schedule AS s
             JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = :'imp' AND s.owner_id IN (:'gina', :'hal')),
  (SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[:'g2', :'g3', :'g4', :'h2', :'h3']::uuid[]) AS x),
  'the stored memories'' jobs for the model are gone, the rejected ones'' stay');
SELECT is((SELECT count(*) FROM memoriesdb.memories AS m WHERE m.id IN (:'g1', :'h1') AND m.embedding_model = :'imp'), 0::bigint,
  'a filling model does not touch the mirror');
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT done AS done1 FROM memoriesdb.model_progress() WHERE model = :'imp' \gset
RESET SESSION AUTHORIZATION;
SELECT cmp_ok(:'done1'::bigint, '>=', 2::bigint, 'model_progress counts the imported vectors as done');

-- a revision: the old content's hash is stale, the new one's is stored over it
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT memoriesdb.revise(:'h1', 'red cherries') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT array_agg(r.outcome) AS stale FROM memoriesdb.import_embeddings(:'imp', ARRAY[:'h1']::uuid[], ARRAY[pg_temp.h('cherries')],
                                                                        ARRAY['[0,0,1,0]']::vector[]) AS r \gset
SELECT array_agg(r.outcome) AS fresh FROM memoriesdb.import_embeddings(:'imp', ARRAY[:'h1']::uuid[], ARRAY[pg_temp.h('red cherries')],
                                                                        ARRAY['[0,0,2,0]']::vector[]) AS r \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'stale'::text, '{hash_mismatch}'::text, 'a vector of the content before the revision is refused (stale)');
SELECT is(:'fresh'::text, '{stored}'::text, 'a vector of the current content is stored');
SELECT is((SELECT e.embedding FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.name = :'imp' AND e.memory_id = :'h1'), '[0,0,1,0]'::vector, '... over the stale one');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = :'imp' AND s.memory_id = :'h1'), 0::bigint, '... and the revision''s job for the model is gone');

-- the active model: memories.embedding too, on both workers, and the jobs of that model only
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT array_agg(r.outcome) AS active_outcomes FROM memoriesdb.import_embeddings(:'base', ARRAY[:'g2', :'h2']::uuid[],
  ARRAY[pg_temp.h('bananas'), pg_temp.h('dates')],
  ARRAY[array_fill(2::real, ARRAY[:'base_dim'::int])::vector, array_fill(3::real, ARRAY[:'base_dim'::int])::vector]) AS r \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'active_outcomes'::text, '{stored,stored}'::text, 'vectors of the active model for memories on both workers are stored');
SELECT is((SELECT array_agg(row(m.owner_id, m.embedding_model, round(public.vector_norm(m.embedding)::numeric, 3), m.embedded_hash = m.content_hash)::text
                            ORDER BY m.id = :'h2')
             FROM memoriesdb.memories AS m WHERE m.id IN (:'g2', :'h2')),
  ARRAY[row(:'gina'::uuid, :'base', 1.000, true)::text, row(:'hal'::uuid, :'base', 1.000, true)::text],
  'the active model''s vectors are mirrored in memories.embedding (normalised), with the model and the hash, on each owner''s shard');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.state = 'active' AND s.memory_id IN (:'g2', :'h2')), 0::bigint, '... and their jobs are gone: no worker embeds them again');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = :'imp' AND s.memory_id IN (:'g2', :'h2')), 2::bigint, '... only the active model''s jobs');

-- a job a worker holds is left to finish: its vector (of the same content) replaces the imported one
UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day'
 WHERE model_id = (SELECT id FROM memoriesdb.embedding_models WHERE name = :'imp') AND memory_id <> :'h3';
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
CREATE TEMP TABLE c1 AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(10, '5 minutes', 'w', ARRAY[:'imp']);
SELECT array_agg(r.outcome) AS leased_import FROM memoriesdb.import_embeddings(:'imp', ARRAY[:'h3']::uuid[], ARRAY[pg_temp.h('figs')],
                                                                                ARRAY['[0,0,1,0]']::vector[]) AS r \gset
RESET SESSION AUTHORIZATION;
SELECT is((SELECT array_agg(c.memory_id) FROM c1 AS c), ARRAY[:'h3']::uuid[], 'a worker leases h3''s job of the filling model');
SELECT is(:'leased_import'::text, '{stored}'::text, 'the import stores h3 while the job is leased');
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = :'imp' AND s.memory_id = :'h3' AND s.lease_id IS NOT NULL), 1::bigint, '... and leaves the leased job to its worker');
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT array_agg(r.outcome) AS completed FROM memoriesdb.complete_embedding_jobs(ARRAY[:'h3']::uuid[], ARRAY(SELECT c.lease_id FROM c1 AS c),
                                                                                  ARRAY['[0,0,0,1]']::vector[], :'imp') AS r \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'completed'::text, '{stored}'::text, 'the worker completes it (not lease_lost)');
SELECT is((SELECT e.embedding FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.name = :'imp' AND e.memory_id = :'h3'), '[0,0,0,1]'::vector, '... its vector replacing the imported one, of the same content');

-- a memory transferred to hal (the other worker) is found where the directory says it is now
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS _ \gset
SELECT memoriesdb.transfer(:'g3', :'hal', 'grapes for hal') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT array_agg(r.outcome) AS moved FROM memoriesdb.import_embeddings(:'imp', ARRAY[:'g3']::uuid[], ARRAY[pg_temp.h('grapes')],
                                                                        ARRAY['[0,5,0,0]']::vector[]) AS r \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'moved'::text, '{stored}'::text, 'a memory transferred to an owner on the other worker is imported');
SELECT is((SELECT array_agg(e.owner_id) FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
            WHERE em.name = :'imp' AND e.memory_id = :'g3'), ARRAY[:'hal']::uuid[], '... on its new owner''s shard');

-- refusals (as deployed)
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT throws_ok($$ SELECT * FROM memoriesdb.import_embeddings('nope', '{}', '{}', '{}') $$, 'MDB16', 'no such embedding model',
  'an unknown model is refused');
SELECT (pg_temp.error_of($$ SELECT * FROM memoriesdb.import_embeddings('x', array_fill(gen_random_uuid(), ARRAY[5001]),
          array_fill('00'::text, ARRAY[5001]), array_fill('[1,0,0,0]'::vector, ARRAY[5001])) $$))[1:4] AS too_many \gset
SELECT count(*) AS empty_batch FROM memoriesdb.import_embeddings(:'imp', '{}', '{}', '{}') \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'too_many'::text, '{MDB12,"too many rows in one import batch","5001 rows; at most 5000 per call","split the import into batches of at most 5000 rows (memoriesdb import-embeddings --batch)"}',
  'more than 5000 rows in a call are refused, with DETAIL and HINT');
SELECT is(:'empty_batch'::bigint, 0::bigint, 'an empty batch stores nothing');
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 1, 'the imports are sealed');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain() AS v), '(t,)', 'and every chain verifies');

-- 2. authenticate() and vouch() in an implicit transaction (section 3r) ---------------------------------------------
-- Before: "syntax error at or near NULL" (the proof minted over no distributed transaction id) as the statement's
-- first call. Each statement below is the client's own, in autocommit (no BEGIN).
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
SELECT memoriesdb.authenticate(:'kg') AS alone \gset
-- hal reads the memory gina shared with him, on her worker, in the same statement
SELECT memoriesdb.authenticate(:'kh') AS hal_key, (SELECT r.content FROM memoriesdb.recall(:'g4') AS r) AS implicit_read \gset
-- ... and gina writes, in the same statement
SELECT memoriesdb.authenticate(:'kg') AS gina_key, memoriesdb.remember('written in autocommit') AS autocommitted \gset
SELECT memoriesdb.current_user_id() IS NULL AS no_context_after, current_setting('application_name') AS app_name \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'alone'::uuid, :'gina'::uuid, 'authenticate() alone in autocommit returns the key''s user');
SELECT is(:'implicit_read'::text, 'gina shares this with hal'::text, 'authenticate() and recall() in one implicit statement: hal reads what gina shared, on her worker');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a WHERE a.function = 'recall' AND a.actor = :'hal' AND a.memory_ids = ARRAY[:'g4']::uuid[]
              AND a.sqlstate IS NULL), 1::bigint, '... logged as hal''s read');
-- (no owner in these queries: a one-shard query would run pgTAP's is() on the worker, docs/citus.md section 11)
SELECT is((SELECT row(m.owner_id, m.content)::text FROM memoriesdb.memories AS m WHERE m.id = :'autocommitted'),
  row(:'gina'::uuid, 'written in autocommit')::text, 'authenticate() and remember() in one implicit statement: written on gina''s shard');
SELECT is((SELECT row(a.chain_key, a.created_by, a.login, a.db_role, a.application_name)::text FROM memoriesdb.audit_log AS a
            WHERE a.table_name = 'memories' AND a.row_id = :'autocommitted' AND a.op = 'INSERT'),
  row(:'gina'::uuid, :'gina'::uuid, 'mdb_citus_test_app', 'mdb_citus_test_app', :'app_name')::text,
  '... its audit row (written on the worker) names gina, the client''s login, role and application (section 4e: before, memoriesdb_owner and citus_internal)');
SELECT ok(:'no_context_after', 'the context ended with its statement');

-- a backend vouches in autocommit
SET SESSION AUTHORIZATION mdb_citus_test_backend;
\ir ../test_session.psql
SELECT memoriesdb.vouch(:'hal') AS vouched, (SELECT count(*) FROM memoriesdb.list_memories()) AS hal_lists \gset
RESET SESSION AUTHORIZATION;
SELECT is(:'vouched'::uuid, :'hal'::uuid, 'vouch() in autocommit');
SELECT is(:'hal_lists'::bigint, 5::bigint, '... and list_memories() in the same statement lists hal''s four memories and the one shared with him');

-- where Citus's create_intermediate_result() may not be executed (a hardened cluster), no id can be assigned: MDB33,
-- a clear refusal instead of a proof over nothing; inside a transaction block it works as before
REVOKE EXECUTE ON FUNCTION create_intermediate_result(text, text) FROM PUBLIC;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
-- (the client's own statement: called one level down, from a function, Citus has assigned the id already)
\set ON_ERROR_STOP 0
\set VERBOSITY terse
SELECT memoriesdb.authenticate(:'kg') AS refused \gset
\set VERBOSITY default
\set ON_ERROR_STOP 1
SELECT :'LAST_ERROR_SQLSTATE' AS refused_code, :'LAST_ERROR_MESSAGE' AS refused_message \gset
BEGIN;
SELECT memoriesdb.authenticate(:'kg') AS in_block \gset
COMMIT;
RESET SESSION AUTHORIZATION;
GRANT EXECUTE ON FUNCTION create_intermediate_result(text, text) TO PUBLIC;
SELECT is(:'refused_code' || ': ' || :'refused_message', 'MDB33: no distributed transaction to bind the context to',
  'no id to bind: MDB33 (with DETAIL and HINT: call it inside a transaction block)');
SELECT is(:'in_block'::uuid, :'gina'::uuid, '... and in a transaction block authenticate() works as before');

-- 3. search() reads the caller's grantors once (section 3s): calls of citus_grantors() on the coordinator, counted in
-- the transaction (before: 2 per search; 4-5 past search_exact_max)
SET track_functions = 'pl';
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT coalesce((SELECT f.calls FROM pg_stat_xact_user_functions AS f WHERE f.schemaname = 'memoriesdb_internal' AND f.funcname = 'citus_grantors'), 0) AS before \gset
SELECT count(*) AS found FROM memoriesdb.search(array_fill(3::real, ARRAY[:'base_dim'::int])::public.vector, 3) \gset
SELECT coalesce((SELECT f.calls FROM pg_stat_xact_user_functions AS f WHERE f.schemaname = 'memoriesdb_internal' AND f.funcname = 'citus_grantors'), 0) AS after_exact \gset
SELECT current_setting('memoriesdb.search_plan') AS plan_exact \gset
COMMIT;
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '0'), ('search_hnsw_tuple_cost', '0'),
  ('search_hnsw_min_fraction', '0')) AS x(k, v) WHERE key = x.k;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kh') AS _ \gset
SELECT coalesce((SELECT f.calls FROM pg_stat_xact_user_functions AS f WHERE f.schemaname = 'memoriesdb_internal' AND f.funcname = 'citus_grantors'), 0) AS before_index \gset
SELECT count(*) AS found_index FROM memoriesdb.search(array_fill(3::real, ARRAY[:'base_dim'::int])::public.vector, 1) \gset
SELECT coalesce((SELECT f.calls FROM pg_stat_xact_user_functions AS f WHERE f.schemaname = 'memoriesdb_internal' AND f.funcname = 'citus_grantors'), 0) AS after_index \gset
SELECT current_setting('memoriesdb.search_plan') AS plan_index \gset
COMMIT;
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '700'), ('search_hnsw_tuple_cost', '7'),
  ('search_hnsw_min_fraction', '0.03')) AS x(k, v) WHERE key = x.k;
RESET track_functions;
SELECT is(:'after_exact'::bigint - :'before'::bigint, 1::bigint,
  format('a small caller''s search (%s) reads its grantors once', :'plan_exact'));
SELECT alike(:'plan_index'::text, 'hnsw %', 'past search_exact_max (the thresholds at their floor): the index plan');
SELECT is(:'after_index'::bigint - :'before_index'::bigint, 1::bigint,
  format('a caller past search_exact_max, the index plan (%s: counted twice, the owners measured and searched), reads them once too', :'plan_index'));

-- the import's model retired: its jobs would otherwise wait for a worker of 4 dimensions (runner/tests/test_citus.py
-- runs the runner's embedding worker on this ledger after the pgTAP files)
SELECT memoriesdb.retire_model(:'imp') AS _ \gset
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = :'imp'), 0::bigint, 'the import''s model retired: none of its jobs left for the runner');

SELECT * FROM finish();
