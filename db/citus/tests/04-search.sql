-- Citus (issue 17, second slice): search() through the coordinator over owners' shards on both workers, and the
-- vector index's settings reaching the workers (SET LOCAL). Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(9);
-- a direction per memory: 1 on axis n, 0.01 elsewhere (a temporary function: Citus warns it stays local)
SET client_min_messages = error;
CREATE FUNCTION pg_temp.axis(n integer) RETURNS public.vector LANGUAGE sql AS
  $$ SELECT array_agg(CASE WHEN i = n THEN 1 ELSE 0.01 END::real ORDER BY i)::public.vector FROM generate_series(1, 384) AS i $$;
SET client_min_messages = warning;
UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day' WHERE run_after <= now();

SELECT memoriesdb.create_user('iris' || (random() * 1e9)::bigint) AS iris \gset
SELECT pg_temp.user_apart('jack', :'iris') AS jack \gset
SELECT memoriesdb.create_api_key(:'iris') AS ki \gset
SELECT memoriesdb.create_api_key(:'jack') AS kj \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kj') AS _ \gset
SELECT memoriesdb.accept_sender(:'iris') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ki') AS _ \gset
SELECT memoriesdb.remember('iris: about axis 1') AS i1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ki') AS _ \gset
SELECT memoriesdb.remember('iris: about axis 2, private') AS i2 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ki') AS _ \gset
SELECT memoriesdb.share(:'i1', :'jack') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kj') AS _ \gset
SELECT memoriesdb.remember('jack: about axis 3') AS j1 \gset
COMMIT;
RESET SESSION AUTHORIZATION;

-- the worker embeds them through the coordinator
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
CREATE TEMP TABLE claimed AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(8, '1 minute', 'citus-search-test');
SELECT array_agg(c.outcome) AS outcomes FROM memoriesdb.complete_embedding_jobs(
  ARRAY(SELECT c.memory_id FROM claimed AS c ORDER BY c.memory_id), ARRAY(SELECT c.lease_id FROM claimed AS c ORDER BY c.memory_id),
  ARRAY(SELECT pg_temp.axis(CASE c.memory_id WHEN :'i1' THEN 1 WHEN :'i2' THEN 2 ELSE 3 END) FROM claimed AS c ORDER BY c.memory_id),
  'default') AS c \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(:'outcomes'::text, '{stored,stored,stored}'::text, 'the three memories are embedded on their owners'' shards');

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ki') AS _ \gset
SELECT is((SELECT array_agg(s.id ORDER BY s.similarity DESC) FROM memoriesdb.search(pg_temp.axis(2), 5) AS s),
          ARRAY[:'i2', :'i1']::uuid[], 'iris finds her two memories, the closest first');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kj') AS _ \gset
SELECT is((SELECT array_agg(s.id ORDER BY s.similarity DESC) FROM memoriesdb.search(pg_temp.axis(1), 5) AS s),
          ARRAY[:'i1', :'j1']::uuid[], 'jack finds the memory shared with him (from the other worker) and his own, not her private one');
COMMIT;
-- k = 1: each branch's own LIMIT cuts (iris owns two), the nearest first
BEGIN;
SELECT memoriesdb.authenticate(:'ki') AS _ \gset
SELECT is((SELECT array_agg(s.id) FROM memoriesdb.search(pg_temp.axis(2), 1) AS s), ARRAY[:'i2']::uuid[],
          'k = 1: her nearest memory, not her other one');
COMMIT;
-- min_similarity, tested past each branch's LIMIT (the distance computed once a row): the shared memory (axis 1,
-- similarity 1) passes 0.5, his own (axis 3, ~0.06) does not; -1 keeps both
BEGIN;
SELECT memoriesdb.authenticate(:'kj') AS _ \gset
SELECT is((SELECT array_agg(s.id ORDER BY s.similarity DESC) FROM memoriesdb.search(pg_temp.axis(1), 5, '{}', 0.5) AS s),
          ARRAY[:'i1']::uuid[], 'with min_similarity 0.5 only the shared memory near the query is left');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kj') AS _ \gset
SELECT is((SELECT array_agg(s.id ORDER BY s.similarity DESC) FROM memoriesdb.search(pg_temp.axis(1), 1, '{}', -1) AS s),
          ARRAY[:'i1']::uuid[], 'k = 1 with min_similarity -1: the nearest of both branches');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a WHERE a.function = 'search' AND a.actor IN (:'iris', :'jack') AND a.sqlstate IS NULL),
          5::bigint, 'the five searches are in the access log');

-- the vector index's settings reach the workers: a SET LOCAL (what search() now uses) does, set_config() does not
BEGIN;
SELECT memoriesdb_internal.citus_set_config('hnsw.ef_search', '77', true) AS _ \gset
SELECT current_setting('hnsw.ef_search') AS on_worker FROM memoriesdb.memories AS m WHERE m.owner_id = :'jack' LIMIT 1 \gset
COMMIT;
SELECT is(:'on_worker'::text, '77'::text, 'citus_set_config(): the worker''s query runs with the setting');
BEGIN;
SELECT set_config('hnsw.ef_search', '78', true) AS _ \gset
SELECT current_setting('hnsw.ef_search') AS on_worker FROM memoriesdb.memories AS m WHERE m.owner_id = :'jack' LIMIT 1 \gset
COMMIT;
SELECT isnt(:'on_worker'::text, '78'::text, 'set_config() alone does not reach the worker (why search() does not use it on Citus)');

SELECT * FROM finish();
