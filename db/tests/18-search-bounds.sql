-- search_text() and search_hybrid() within bounds: the query's length and phrases, the
-- window of each memory the text ranking reads, the fusion parameters.
BEGIN;
SELECT plan(36);

SELECT tests.create_user('carol') AS carol \gset
SELECT tests.memory_of(:'carol', 'Carol keeps her notes about the lighthouse') AS near \gset
-- a long memory: 1200 characters of filler, then words found nowhere else
SELECT tests.memory_of(:'carol', repeat('filler text ', 100) || 'a quixotic archipelago') AS far \gset

-- the settings
SELECT is(memoriesdb.setting('search_text_max_query_chars'), '1000'::jsonb, 'queries of up to 1000 characters');
SELECT is(memoriesdb.setting('search_text_max_query_words'), '32'::jsonb, 'at most 32 words in a query');
SELECT is(memoriesdb.setting('search_text_max_phrase_ops'), '8'::jsonb, 'at most 8 phrase operators in a query');
SELECT is(memoriesdb.setting('search_text_window_chars'), '1000'::jsonb, 'the text ranking reads the first 1000 characters of a memory');
SELECT is((SELECT coalesce(content_trgm, content) FROM memoriesdb.memories WHERE id = :'far'), left(repeat('filler text ', 100), 1000),
  'the trigram index holds the same window of each memory: the first 1000 characters of a longer one');

SELECT tests.act_as(:'carol');

-- the query's length, in characters
SELECT lives_ok($$ SELECT * FROM memoriesdb.search_text(repeat('z', 1000)) $$, 'a query of 1000 characters is searched');
SELECT lives_ok($$ SELECT * FROM memoriesdb.search_text(repeat('é', 1000)) $$, 'characters, not bytes: 1000 two-byte characters are searched');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text(repeat('z', 1001)) $$, 'MDB12', 'query is too long',
  'a query of 1001 characters is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text(repeat('lighthouse ', 500)) $$, 'MDB12', 'query is too long',
  'a query of 5500 characters is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid(repeat('z', 1001), tests.axis(1)) $$, 'MDB12', 'query is too long',
  'search_hybrid refuses it too');

-- words and phrases: the full-text rank's work grows with the words, and with the square of a phrase
SELECT lives_ok($$ SELECT * FROM memoriesdb.search_text(repeat('lighthouse ', 32)) $$, 'a query of 32 words is searched');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text(repeat('lighthouse ', 33)) $$, 'MDB12', 'query has too many words',
  'a query of 33 words is refused');
SELECT lives_ok($$ SELECT * FROM memoriesdb.search_text(repeat('the ', 200) || 'lighthouse') $$,
  'stop words do not count: "the" 200 times and one word are searched');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid(repeat('lighthouse ', 33), tests.axis(1)) $$, 'MDB12',
  'query has too many words', 'search_hybrid refuses too many words too');
SELECT lives_ok($$ SELECT * FROM memoriesdb.search_text('"' || repeat('lighthouse ', 9) || '"') $$,
  'a phrase of 9 words (8 phrase operators) is searched');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text('"' || repeat('lighthouse ', 10) || '"') $$, 'MDB12',
  'query joins too many words into phrases', 'a phrase of 10 words is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text(repeat('"lighthouse keeper" ', 9)) $$, 'MDB12',
  'query joins too many words into phrases', 'so are 9 phrases of two words');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text('lighthouse-keeper-cottage-garden-gate-path-stone-wall-roof') $$, 'MDB12',
  'query joins too many words into phrases', 'and a word of many hyphenated parts (each part is a phrase word)');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('"' || repeat('lighthouse ', 10) || '"', tests.axis(1)) $$, 'MDB12',
  'query joins too many words into phrases', 'search_hybrid refuses long phrases too');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('"notes about the lighthouse"') $$,
  ARRAY['Carol keeps her notes about the lighthouse'], 'an ordinary phrase finds its memory');

-- the window: trigrams and the full-text rank read the first search_text_window_chars characters
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('lighthuose') $$,
  ARRAY['Carol keeps her notes about the lighthouse'], 'a typo of a word inside the window still matches (trigrams)');
SELECT is_empty($$ SELECT 1 FROM memoriesdb.search_text('quixotik') $$,
  'a typo of a word past the window does not: trigrams read only the window');
SELECT results_eq(format($$ SELECT id FROM memoriesdb.search_text('archipelago') $$), format($$ VALUES (%L::uuid) $$, :'far'),
  'a word past the window still matches by full text (which covers the whole memory)');
SELECT ok((SELECT score FROM memoriesdb.search_text('archipelago')) < 0.1,
  'but it adds nothing to the score: word similarity and full-text rank read the window');

-- the same rules on the large-caller plan (indexes)
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_text_exact_max';
SELECT tests.act_as(:'carol');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_text('lighthuose') $$,
  ARRAY['Carol keeps her notes about the lighthouse'], 'index plan: a typo inside the window matches');
SELECT is_empty($$ SELECT 1 FROM memoriesdb.search_text('quixotik') $$, 'index plan: a typo past the window does not');
SELECT results_eq(format($$ SELECT id FROM memoriesdb.search_text('archipelago') $$), format($$ VALUES (%L::uuid) $$, :'far'),
  'index plan: a word past the window matches by full text');

-- the bounds are settings
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '20' WHERE key = 'search_text_max_query_chars';
SELECT tests.act_as(:'carol');
SELECT lives_ok($$ SELECT * FROM memoriesdb.search_text(repeat('z', 20)) $$, 'search_text_max_query_chars = 20: 20 characters are searched');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_text(repeat('z', 21)) $$, 'MDB12', 'query is too long', '21 are refused');

-- search_hybrid's fusion parameters: finite, not negative
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('lighthouse', tests.axis(1), 10, '{}', 'NaN', 1) $$,
  'MDB12', 'invalid fusion parameters', 'vector_weight NaN is refused (every score would be NaN)');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('lighthouse', tests.axis(1), 10, '{}', 1, 'NaN') $$,
  'MDB12', 'invalid fusion parameters', 'text_weight NaN is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('lighthouse', tests.axis(1), 10, '{}', 'Infinity', 1) $$,
  'MDB12', 'invalid fusion parameters', 'an infinite vector_weight is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('lighthouse', tests.axis(1), 10, '{}', 1, 'Infinity') $$,
  'MDB12', 'invalid fusion parameters', 'an infinite text_weight is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('lighthouse', tests.axis(1), 10, '{}', 1, 1, 0) $$,
  'MDB12', 'invalid fusion parameters', 'rrf_k 0 is refused');
SELECT throws_ok($$ SELECT * FROM memoriesdb.search_hybrid('lighthouse', tests.axis(1), 10, '{}', 1, 1, 2147483647) $$,
  'MDB12', 'invalid fusion parameters', 'an rrf_k that would overflow rrf_k + rank is refused, not an integer overflow');
SELECT results_eq($$ SELECT content FROM memoriesdb.search_hybrid('lighthouse', tests.axis(1), 10, '{}', 0.5, 2, 1000000) $$,
  ARRAY['Carol keeps her notes about the lighthouse'], 'finite weights and rrf_k up to 1000000 are fused');

SELECT * FROM finish();
ROLLBACK;
