-- search_text() and search_hybrid().
BEGIN;
SELECT plan(16);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.memory_of(:'alice', 'Alice drinks a double espresso every morning', '{"topic": "habits"}') AS coffee \gset
SELECT tests.memory_of(:'alice', 'The billing service deploys on Thursdays') AS billing \gset
SELECT tests.memory_of(:'alice', 'Her cat hates the vacuum cleaner') AS cat \gset
SELECT tests.memory_of(:'bob', 'Bob drinks espresso too') AS bob_coffee \gset
-- vectors by hand: "coffee" on axis 1, "billing" on axis 2, "cat" on axis 3
UPDATE memoriesdb.memories SET embedding = tests.axis(1), embedding_model = 't' WHERE id IN (:'coffee', :'bob_coffee');
UPDATE memoriesdb.memories SET embedding = tests.axis(2), embedding_model = 't' WHERE id = :'billing';
UPDATE memoriesdb.memories SET embedding = public.l2_normalize(tests.axis(3) + tests.axis(1, 0.2)), embedding_model = 't' WHERE id = :'cat';

SELECT tests.act_as(:'alice');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('espresso', 1) $$, ARRAY['Alice drinks a double espresso every morning'], 'a word finds its memory');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('expresso', 1) $$, ARRAY['Alice drinks a double espresso every morning'], 'a typo still matches (trigrams)');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('deploying', 1) $$, ARRAY['The billing service deploys on Thursdays'], 'stemming: deploying finds deploys');
SELECT is_empty($$ SELECT 1 FROM memoriesdb.search_text('zebra quantum') $$, 'unrelated words find nothing');
SELECT is_empty($$ SELECT 1 FROM memoriesdb.search_text('espresso') WHERE content LIKE 'Bob%' $$, 'bob''s memory is not among alice''s results');
SELECT ok((SELECT score FROM memoriesdb.search_text('double espresso every morning') LIMIT 1)
        > (SELECT score FROM memoriesdb.search_text('dubble expreso') LIMIT 1), 'an exact phrase outranks a near miss');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('espresso', 10, '{"metadata": {"topic": "work"}}') $$, ARRAY[]::text[], 'filters apply');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text('  ') $$, 'MDB12', 'query is empty', 'an empty query is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text('x', 10, '{"bogus": 1}') $$, 'MDB12', 'unknown filter key', 'unknown filter keys are refused');

-- hybrid: a paraphrase (vector) and an exact word (text) both surface
SELECT results_eq($$ SELECT content FROM memoriesdb.search_hybrid('vacuum', tests.axis(1), 2) $$,
  ARRAY['Her cat hates the vacuum cleaner', 'Alice drinks a double espresso every morning'],
  'hybrid: the memory in both rankings first, then the best vector match');
SELECT results_eq($$ SELECT vector_rank, text_rank FROM memoriesdb.search_hybrid('vacuum', tests.axis(1), 10) WHERE content LIKE 'Her cat%' $$,
  $$ VALUES (2, 1) $$, 'the fused row carries both ranks');
SELECT ok((SELECT abs(score - (1.0/4 + 1.0/3)) < 1e-6 FROM memoriesdb.search_hybrid('vacuum', tests.axis(1), 10) WHERE content LIKE 'Her cat%'),
  'score = 1/(2 + vector rank) + 1/(2 + text rank): rrf_k defaults to 2 (bench/results/search_quality.md)');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_hybrid('vacuum', tests.axis(1), 1, '{}', 0, 1) $$,
  ARRAY['Her cat hates the vacuum cleaner'], 'weights: text only');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_hybrid('vacuum', tests.axis(1), 1, '{}', 1, 0) $$,
  ARRAY['Alice drinks a double espresso every morning'], 'weights: vector only');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('x', tests.axis(1), 10, '{}', 0, 0) $$, 'MDB12', 'invalid fusion parameters', 'weights cannot both be 0');

-- the large-caller plan (GIN indexes) keeps to the same rules
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '0' WHERE key IN ('search_exact_max', 'search_text_exact_max', 'search_hnsw_tuple_cost', 'search_hnsw_min_fraction');
SELECT tests.act_as(:'bob');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('espresso') $$, ARRAY['Bob drinks espresso too'], 'index plan: bob finds only his own');

SELECT * FROM finish();
ROLLBACK;
