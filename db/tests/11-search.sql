-- search(): results against hand-computed expectations, isolation, filters, bad input.
BEGIN;
SELECT plan(28);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');   -- bob takes alice's shares and transfers at once (offers: 22-offers.sql)
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'east', '{"dir": "e", "tag": "x"}') AS e \gset
SELECT tests.memory_of(:'alice', 'north-east', '{"dir": "ne"}') AS ne \gset
SELECT tests.memory_of(:'alice', 'north', '{"dir": "n", "tag": "x"}') AS n \gset
SELECT tests.memory_of(:'alice', 'not embedded yet') AS pending \gset
SELECT tests.memory_of(:'bob', 'bob east') AS be \gset
-- place embeddings by hand: axis 1 = east, axis 2 = north (the worker path is tested in 08-queue)
UPDATE memoriesdb.memories SET embedding = tests.axis(1), embedding_model = 't' WHERE id IN (:'e', :'be');
UPDATE memoriesdb.memories SET embedding = public.l2_normalize(tests.axis(1) + tests.axis(2)), embedding_model = 't' WHERE id = :'ne';
UPDATE memoriesdb.memories SET embedding = tests.axis(2), embedding_model = 't' WHERE id = :'n';
-- ... and in embeddings, as the active model's (the large-caller plan reads them there, through its HNSW index)
INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding)
SELECT m.id, em.id, m.content_hash, m.embedding FROM memoriesdb.memories AS m, memoriesdb.embedding_models AS em
 WHERE m.id IN (:'e', :'be', :'ne', :'n') AND em.state = 'active';

SELECT tests.act_as(:'alice');
SELECT results_eq($$ SELECT content, round(similarity::numeric, 4) FROM memoriesdb.search(tests.axis(1)) $$,
  $$ VALUES ('east'::text, 1.0000), ('north-east', 0.7071), ('north', 0.0000) $$,
  'search ranks by cosine similarity: 1, cos 45° = 0.7071, 0');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1, 7)) $$, ARRAY['east', 'north-east', 'north'],
  'the query vector''s length does not matter');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(2), 2) $$, ARRAY['north', 'north-east'], 'k limits the results');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1), 10, '{}', 0.5) $$, ARRAY['east', 'north-east'], 'min_similarity cuts off');
SELECT results_eq(format($$ SELECT owner_id, created_by FROM memoriesdb.search(tests.axis(1), 1) $$),
  format($$ VALUES (%1$L::uuid, %1$L::uuid) $$, :'alice'), 'results carry owner and creator');
SELECT is_empty($$ SELECT 1 FROM memoriesdb.search(tests.axis(1)) WHERE content IN ('bob east', 'not embedded yet') $$,
  'neither another user''s memory nor an unembedded one is returned');

-- filters
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1), 10, '{"metadata": {"tag": "x"}}') $$, ARRAY['east', 'north'], 'metadata containment');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1), 10, '{"created_after": "2000-01-01", "created_before": "3000-01-01"}') $$,
  ARRAY['east', 'north-east', 'north'], 'created_after / created_before');
SELECT is_empty($$ SELECT 1 FROM memoriesdb.search(tests.axis(1), 10, '{"created_after": "3000-01-01"}') $$, 'created_after in the future: nothing');
SELECT memoriesdb.link(:'n', :'e', 'related_to');
SELECT results_eq(format($$ SELECT content FROM memoriesdb.search(tests.axis(1), 10, '{"linked_to": "%s"}') $$, :'e'), ARRAY['north'], 'linked_to');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1), 10, '{"scope": "shared"}') $$, ARRAY[]::text[], 'scope shared: alice has nothing shared');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1), 10, '{"metdata": {}}') $$, 'MDB12', 'unknown filter key', 'an unknown filter key is an error');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1), 10, '{"scope": "everyone"}') $$, 'MDB12', 'filter.scope must be own, shared or all', 'a bad scope is an error');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1), 10, '{"created_after": "yesterday-ish"}') $$, 'MDB12', 'invalid filter value', 'a bad timestamp is an error');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1), 10, '[]') $$, 'MDB12', 'filter must be a JSON object', 'a non-object filter is an error');

-- bad query vectors
SELECT throws_ok($$ SELECT * FROM memoriesdb.search('[1,2,3]') $$, 'MDB11', 'embedding has the wrong dimension', 'a wrong-dimension query is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1, 0)) $$, 'MDB11', 'embedding is the zero vector', 'a zero query is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search(tests.axis(1), 0) $$, 'MDB12', 'k must be between 1 and 1000', 'k is checked');

-- sharing: shared memories appear and vanish with the grant
SELECT tests.act_as(:'bob');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1)) $$, ARRAY['bob east'], 'bob finds only his own');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'ne', :'bob');
SELECT tests.act_as(:'bob');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1)) $$, ARRAY['bob east', 'north-east'], 'a shared memory appears');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1), 10, '{"scope": "own"}') $$, ARRAY['bob east'], 'scope own');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1), 10, '{"scope": "shared"}') $$, ARRAY['north-east'], 'scope shared');
SELECT tests.clear_context();
UPDATE memoriesdb.memory_grants SET expires_at = now() - interval '1 second' WHERE memory_id = :'ne';
SELECT tests.act_as(:'bob');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1)) $$, ARRAY['bob east'], 'it vanishes when the grant expires');

-- the approximate plan (HNSW + iterative scan) keeps to the same rules
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '0' WHERE key IN ('search_exact_max', 'search_hnsw_tuple_cost', 'search_hnsw_min_fraction');   -- the index whenever k can match
SELECT tests.act_as(:'bob');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1)) $$, ARRAY['bob east'], 'HNSW plan: bob still finds only his own');
SELECT tests.act_as(:'alice');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1)) $$, ARRAY['east', 'north-east', 'north'], 'HNSW plan: same ranking for alice');
SELECT results_eq($$ SELECT content FROM memoriesdb.search(tests.axis(1), 2) $$, ARRAY['east', 'north-east'], 'HNSW plan with k results: returned as found');
SELECT is(current_setting('hnsw.iterative_scan'), 'off', 'search restores the hnsw settings it changed');
SELECT tests.act_as(NULL);
SELECT is_empty($$ SELECT * FROM memoriesdb.search(tests.axis(1)) $$, 'no context: search returns nothing');

SELECT * FROM finish();
ROLLBACK;
