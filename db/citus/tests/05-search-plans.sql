-- Citus (issue 17): every search path through the coordinator: search()'s index (HNSW) plan and its exact plan
-- for an owner and for a grantee, with and without a sampled metadata filter, search_text() (full text and the
-- trigram fallback) and search_hybrid(). Run by scripts/test.sh --citus. Each answer is checked against the exact
-- answer computed here as the superuser on the owner's rows.
\ir ../test_setup.psql
SELECT plan(19);
-- a pseudo-random unit direction per number (deterministic)
SET client_min_messages = error;
CREATE FUNCTION pg_temp.vec(n integer) RETURNS public.vector LANGUAGE sql AS
  $$ SELECT public.l2_normalize(array_agg(sin(n * 12.9898 + i * 78.233)::real ORDER BY i)::public.vector) FROM generate_series(1, 384) AS i $$;
SET client_min_messages = warning;
UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day' WHERE run_after <= now();

-- kate (80 memories, every tenth tagged rare, every fifth about "harbour") and leo on the other worker (5 memories,
-- 10 of kate's shared with him)
SELECT memoriesdb.create_user('kate' || (random() * 1e9)::bigint) AS kate \gset
SELECT pg_temp.user_apart('leo', :'kate') AS leo \gset
SELECT memoriesdb.create_api_key(:'kate') AS kk \gset
SELECT memoriesdb.create_api_key(:'leo') AS kl \gset
CREATE TEMP TABLE numbered (n integer, id uuid);
GRANT ALL ON numbered TO PUBLIC;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kl') AS _ \gset
SELECT memoriesdb.accept_sender(:'kate') AS _ \gset
INSERT INTO numbered SELECT 1000 + g, memoriesdb.remember(format('leo note %s about the garden', g)) FROM generate_series(1, 5) AS g;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO numbered
SELECT g, memoriesdb.remember(format('kate note %s about the %s', g, CASE WHEN g % 5 = 0 THEN 'harbour lights' ELSE 'mountain path' END),
                              CASE WHEN g % 10 = 0 THEN '{"tag": "rare"}' ELSE '{}' END::jsonb)
  FROM generate_series(1, 80) AS g;
COMMIT;
-- one share per transaction (docs/citus.md section 8: a transaction's later call may not read placements its earlier
-- call modified as another role)
SELECT 'BEGIN', format('SELECT memoriesdb.authenticate(%L)', :'kk'), format('SELECT memoriesdb.share(%L, %L)', n.id, :'leo'), 'COMMIT'
  FROM numbered AS n WHERE n.n BETWEEN 1 AND 10 ORDER BY n.n \gexec
RESET SESSION AUTHORIZATION;

-- the worker embeds them through the coordinator: memory n gets vec(n)
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
BEGIN;
CREATE TEMP TABLE claimed AS SELECT * FROM memoriesdb.claim_model_embedding_jobs(100, '1 minute', 'citus-plans-test');
SELECT count(*) AS stored FROM memoriesdb.complete_embedding_jobs(
  ARRAY(SELECT c.memory_id FROM claimed AS c ORDER BY c.memory_id), ARRAY(SELECT c.lease_id FROM claimed AS c ORDER BY c.memory_id),
  ARRAY(SELECT pg_temp.vec(n.n) FROM claimed AS c JOIN numbered AS n ON n.id = c.memory_id ORDER BY c.memory_id),
  'default') AS c WHERE c.outcome = 'stored' \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is(:stored::integer, 85, 'the 85 memories are embedded on their owners'' shards');

-- the exact answers, as the superuser (no policies) on the rows each may see
SELECT pg_temp.vec(5000)::text AS q \gset
SELECT array_agg(id ORDER BY d) AS kate_exact FROM (SELECT m.id, m.embedding OPERATOR(public.<=>) :'q'::vector AS d
  FROM memoriesdb.memories AS m WHERE m.owner_id = :'kate' ORDER BY 2 LIMIT 10) AS x \gset
SELECT array_agg(id ORDER BY d) AS kate_rare FROM (SELECT m.id, m.embedding OPERATOR(public.<=>) :'q'::vector AS d
  FROM memoriesdb.memories AS m WHERE m.owner_id = :'kate' AND m.metadata @> '{"tag": "rare"}' ORDER BY 2 LIMIT 5) AS x \gset
SELECT array_agg(id ORDER BY d) AS leo_exact FROM (SELECT m.id, m.embedding OPERATOR(public.<=>) :'q'::vector AS d
  FROM memoriesdb.memories AS m JOIN numbered AS n ON n.id = m.id WHERE n.n BETWEEN 1 AND 10 OR n.n > 1000 ORDER BY 2 LIMIT 10) AS x \gset
SELECT array_agg(id ORDER BY n) AS kate_harbour FROM numbered WHERE n <= 80 AND n % 5 = 0 \gset

-- the index plan whenever a caller sees anything (the rules' thresholds at their floor)
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '10'), ('search_hnsw_tuple_cost', '0'),
  ('search_hnsw_min_fraction', '0'), ('search_filter_sample', '500')) AS x(k, v) WHERE key = x.k;
CREATE TEMP TABLE got (who text, ids uuid[], plan text);
GRANT ALL ON got TO PUBLIC;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10) AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate rare', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(:'q', 5, '{"metadata": {"tag": "rare"}}') AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kl') AS _ \gset
INSERT INTO got SELECT 'leo', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT alike((SELECT plan FROM got WHERE who = 'kate'), 'hnsw %', 'kate''s search takes the index plan on the cluster');
SELECT is((SELECT ids FROM got WHERE who = 'kate'), :'kate_exact'::uuid[], '... and returns the exact answer (the shards'' top k merged)');
SELECT alike((SELECT plan FROM got WHERE who = 'kate rare'), 'hnsw %', 'with a metadata filter (sampled): the index plan');
SELECT is((SELECT ids FROM got WHERE who = 'kate rare'), :'kate_rare'::uuid[], '... and the five nearest of the eight rare ones, in order');
SELECT alike((SELECT plan FROM got WHERE who = 'leo'), 'hnsw %', 'leo''s search (his own and shared, on two workers): the index plan');
SELECT is((SELECT ids FROM got WHERE who = 'leo'), :'leo_exact'::uuid[], '... his five and the ten shared with him, nothing else of kate''s');

-- with the shards measured (ANALYZE reaches the shards; citus_refresh_search_statistics() reads their reltuples), the
-- plan's table is the rows of the shards it scans: kate's shard
ANALYZE memoriesdb.memories;
SELECT is(memoriesdb.citus_refresh_search_statistics(), 32, 'citus_refresh_search_statistics(): the 32 shards of memories measured');
SELECT count(*) AS kate_shard_rows FROM memoriesdb.memories AS m
 WHERE get_shard_id_for_distribution_column('memoriesdb.memories', m.owner_id) = get_shard_id_for_distribution_column('memoriesdb.memories', :'kate'::uuid) \gset
DELETE FROM got;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT split_part(split_part(plan, 'total=', 2), ' ', 1) FROM got WHERE who = 'kate'), :'kate_shard_rows',
          'the plan''s table is the rows of kate''s shard (measured), not the caller''s own count');

-- the exact plan for the same callers (thresholds back to the deployed ones: 85 rows are far below them)
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '700'), ('search_hnsw_tuple_cost', '7'),
  ('search_hnsw_min_fraction', '0.03')) AS x(k, v) WHERE key = x.k;
DELETE FROM got;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10) AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kl') AS _ \gset
INSERT INTO got SELECT 'leo', array_agg(s.id ORDER BY s.similarity DESC), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10) AS s;
COMMIT;
-- text: kate's sixteen harbour notes (full text); leo's two shared ones among them; a misspelt word (trigram fallback)
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate text', array_agg(s.id ORDER BY s.id), NULL FROM memoriesdb.search_text('harbour lights', 50) AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kl') AS _ \gset
INSERT INTO got SELECT 'leo text', array_agg(s.id ORDER BY s.id), NULL FROM memoriesdb.search_text('harbour', 50) AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kl') AS _ \gset
INSERT INTO got SELECT 'leo typo', array_agg(s.id ORDER BY s.id), NULL FROM memoriesdb.search_text('gardn', 50) AS s;
COMMIT;
-- a large caller's text paths (the owner-and-word index; the trigram nearest neighbours), kate made large
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = '10' WHERE key = 'search_text_exact_max';
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate text large', array_agg(s.id ORDER BY s.id), NULL FROM memoriesdb.search_text('harbour lights', 50) AS s;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate typo large', array_agg(s.id), NULL FROM (SELECT t.id FROM memoriesdb.search_text('harbr', 3) AS t) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = '2000' WHERE key = 'search_text_exact_max';
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kk') AS _ \gset
INSERT INTO got SELECT 'kate hybrid', array_agg(s.id), NULL FROM (SELECT h.id FROM memoriesdb.search_hybrid('harbour lights', :'q', 5) AS h) AS s;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT alike((SELECT plan FROM got WHERE who = 'kate'), 'exact %', 'the exact plan for kate');
SELECT is((SELECT ids FROM got WHERE who = 'kate'), :'kate_exact'::uuid[], '... the same answer');
SELECT is((SELECT ids FROM got WHERE who = 'leo'), :'leo_exact'::uuid[], 'the exact plan for leo: the same answer');
SELECT is((SELECT ids FROM got WHERE who = 'kate text'), (SELECT array_agg(x ORDER BY x) FROM unnest(:'kate_harbour'::uuid[]) AS x),
          'search_text: kate''s sixteen harbour notes, from her shard');
SELECT is((SELECT ids FROM got WHERE who = 'leo text'),
          (SELECT array_agg(n.id ORDER BY n.id) FROM numbered AS n WHERE n.n IN (5, 10)),
          'search_text: leo finds the two harbour notes shared with him (kate''s shard), no other of hers');
SELECT is((SELECT ids FROM got WHERE who = 'leo typo'),
          (SELECT array_agg(n.id ORDER BY n.id) FROM numbered AS n WHERE n.n > 1000),
          'search_text with a misspelt word (the trigram fallback): leo''s five garden notes');
SELECT is(cardinality((SELECT ids FROM got WHERE who = 'kate hybrid')), 5, 'search_hybrid: five for kate');
SELECT is((SELECT ids FROM got WHERE who = 'kate text large'), (SELECT array_agg(x ORDER BY x) FROM unnest(:'kate_harbour'::uuid[]) AS x),
          'search_text for a large caller (the index of her own words): the same sixteen');
SELECT ok((SELECT ids <@ :'kate_harbour'::uuid[] AND cardinality(ids) = 3 FROM got WHERE who = 'kate typo large'),
          'search_text with a misspelt word for a large caller (trigram nearest neighbours): three harbour notes');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.actor IN (:'kate', :'leo') AND a.function IN ('search', 'search_text', 'search_hybrid') AND a.sqlstate IS NULL),
          12::bigint, 'the twelve searches are in the access log');

SELECT * FROM finish();
