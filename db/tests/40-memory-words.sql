-- memory_words (issue 16): the words of each short memory, which a large caller's search_text() scores by an
-- index-only scan. It must follow every write (remember, revise, transfer, forget; a memory growing past its
-- window or back), never be readable by a client, and the answer read from it must be the answer read from the
-- memories themselves.
BEGIN;
SELECT plan(25);

SELECT tests.create_user('rosa') AS rosa \gset
SELECT tests.create_user('tom') AS tom \gset
SELECT tests.act_as(:'tom');
SELECT memoriesdb.accept_sender(:'rosa');   -- tom takes rosa's transfers at once (offers: 22-offers.sql)
SELECT tests.clear_context();
SELECT tests.memory_of(:'rosa', 'Rosa planted tomatoes and basil in the garden, tomatoes again!') AS tomato \gset
SELECT tests.memory_of(:'rosa', 'The garden fence needs paint') AS fence \gset
SELECT tests.memory_of(:'rosa', 'Rosa bought a ticket to Lisbon') AS lisbon \gset
SELECT tests.memory_of(:'rosa', 'Basil pesto recipe: basil, pine nuts, garlic') AS pesto \gset
SELECT tests.memory_of(:'tom', 'Tom waters the garden basil daily') AS tom_basil \gset
-- the words memory_words must hold: each short memory's, rebuilt from the memories themselves
CREATE FUNCTION pg_temp.drift() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM ((SELECT owner_id, word, memory_id, tf, dl FROM memoriesdb_internal.memory_words
                         EXCEPT ALL
                         SELECT w.* FROM memoriesdb.memories AS m,
                                memoriesdb_internal.words_of(m.owner_id, m.id, m.content_tsv, m.content_trgm IS NOT NULL) AS w)
                        UNION ALL
                        (SELECT w.* FROM memoriesdb.memories AS m,
                                memoriesdb_internal.words_of(m.owner_id, m.id, m.content_tsv, m.content_trgm IS NOT NULL) AS w
                         EXCEPT ALL
                         SELECT owner_id, word, memory_id, tf, dl FROM memoriesdb_internal.memory_words)) AS x $$;

SELECT is(pg_temp.drift(), 0::bigint, 'remember: memory_words holds every word of every short memory, nothing else');
SELECT results_eq(format($$ SELECT word, tf, dl FROM memoriesdb_internal.memory_words WHERE memory_id = %L ORDER BY word $$, :'tomato'),
  $$ VALUES ('basil', 1, 5), ('garden', 1, 5), ('plant', 1, 5), ('rosa', 1, 5), ('tomato', 2, 5) $$,
  'a memory''s rows: its lexemes, how often each occurs (tomatoes twice), its distinct words (5)');

-- revise: the old words go, the new come
SELECT tests.act_as(:'rosa');
SELECT memoriesdb.revise(:'fence', 'The garden gate squeaks');
SELECT memoriesdb.revise(:'lisbon', metadata => '{"trip": true}');   -- metadata only: its rows stay
SELECT tests.clear_context();
SELECT is(pg_temp.drift(), 0::bigint, 'revise: the rows follow the new content');
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb_internal.memory_words WHERE memory_id = %L AND word IN ('fenc', 'need', 'paint') $$, :'fence'),
  '... the words it no longer holds are gone');

-- a memory past its window has no rows (a long memory is found by memories_long_owner_words), and back
UPDATE memoriesdb.config SET value = '30' WHERE key = 'search_text_window_chars';
SELECT tests.act_as(:'rosa');
SELECT memoriesdb.revise(:'pesto', 'Basil pesto recipe: basil, pine nuts, garlic, parmesan and olive oil');
SELECT tests.clear_context();
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb_internal.memory_words WHERE memory_id = %L $$, :'pesto'),
  'a memory longer than the window: no rows');
SELECT is(pg_temp.drift(), 0::bigint, '... and nothing else changed');

-- the large caller's plan (search_text_exact_max 0) reads memory_words for a query of words
UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_text_exact_max';
SELECT tests.act_as(:'rosa');
-- (k no more than the matches: a keyword query finding fewer than k adds trigram neighbours)
SELECT set_eq($$ SELECT id FROM memoriesdb.search_text('basil tomato garden', 3) $$,
  ARRAY[:'tomato', :'fence', :'pesto']::uuid[],
  'large caller: the short memories ranked from memory_words, the long one (its words in its window) found by its index');
SELECT results_eq($$ SELECT id FROM memoriesdb.search_text('olive', 1) $$, ARRAY[:'pesto']::uuid[],
  '... a word past a long memory''s window still finds it');
SELECT is(current_setting('memoriesdb.search_text_plan'), 'index visible=4', '... by the index plan');
SELECT tests.clear_context();
-- proof that the ranking read memory_words: a memory whose rows are taken away (superuser) is no longer found
-- by the large caller's plan, while the exact plan, which reads the memories, still finds it
DELETE FROM memoriesdb_internal.memory_words WHERE memory_id = :'tomato';   -- (a question of 4 words: no trigram neighbours)
SELECT tests.act_as(:'rosa');
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb.search_text('tomato zebra yacht quokka', 10) WHERE id = %L $$, :'tomato'),
  'the large caller''s plan found its short memories in memory_words (rows removed: not found)');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '2000' WHERE key = 'search_text_exact_max';
SELECT tests.act_as(:'rosa');
SELECT results_eq($$ SELECT id FROM memoriesdb.search_text('tomato zebra yacht quokka', 10) $$, ARRAY[:'tomato']::uuid[],
  '... which the exact plan, reading the memories, still finds');
SELECT tests.clear_context();
SELECT is(memoriesdb_internal.rebuild_memory_words() > 0 AND pg_temp.drift() = 0, true,
  'rebuild_memory_words() restores them');
SELECT is(memoriesdb_internal.rebuild_memory_words(), 0::bigint, '... and then has nothing to mend');
UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_text_exact_max';
-- past search_text_max_postings the matches are read from the memories (as the other plans read them): the same
-- answer, and a memory whose rows are gone is found again
SELECT tests.act_as(:'rosa');
CREATE TEMP TABLE uncapped AS SELECT id, score FROM memoriesdb.search_text('basil tomato garden', 3);
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '2' WHERE key = 'search_text_max_postings';
SELECT tests.act_as(:'rosa');
SELECT results_eq($$ SELECT id, score FROM memoriesdb.search_text('basil tomato garden', 3) $$,
  $$ SELECT id, score FROM uncapped $$, 'past search_text_max_postings (2 here): the same rows and scores, read from the memories');
SELECT tests.clear_context();
DELETE FROM memoriesdb_internal.memory_words WHERE memory_id = :'tomato';
SELECT tests.act_as(:'rosa');
SELECT set_eq($$ SELECT id FROM memoriesdb.search_text('tomato rosa garden ticket', 10) $$, ARRAY[:'tomato', :'fence', :'lisbon']::uuid[],
  '... read from the memories indeed (a memory without rows is found: 3 postings left, past 2)');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '200000' WHERE key = 'search_text_max_postings';
SELECT memoriesdb_internal.rebuild_memory_words();
-- a query of negated words only: every memory without them (none of them has a query word to score)
SELECT tests.act_as(:'rosa');
SELECT set_eq($$ SELECT id FROM memoriesdb.search_text('-tomato', 10) $$, ARRAY[:'fence', :'lisbon', :'pesto']::uuid[],
  'large caller: a query of negated words only finds every memory without them (short ones too)');
SELECT tests.clear_context();
-- a phrase and a negated word are decided on the memories themselves (no posting holds the order of words)
SELECT tests.act_as(:'rosa');
SELECT results_eq($$ SELECT id FROM memoriesdb.search_text('basil -tomato', 1) $$, ARRAY[:'pesto']::uuid[],
  'large caller: a negated word excludes (decided on the memories)');
SELECT results_eq($$ SELECT id FROM memoriesdb.search_text('"garden gate"', 1) $$, ARRAY[:'fence']::uuid[],
  'large caller: a quoted phrase matches as a phrase');

-- another tenant's words are never counted: tom's memories of the same words leave rosa's scores as they were
CREATE TEMP TABLE before_scores AS SELECT id, score FROM memoriesdb.search_text('basil garden', 10);
SELECT tests.clear_context();
SELECT tests.memory_of(:'tom', 'basil garden basil ' || g) FROM generate_series(1, 20) AS g;
SELECT tests.act_as(:'rosa');
SELECT results_eq($$ SELECT id, score FROM memoriesdb.search_text('basil garden', 10) $$,
  $$ SELECT id, score FROM before_scores $$, 'large caller: another tenant''s rows change neither order nor scores');

-- transfer and forget: the rows follow the owner, and go with the memory
SELECT memoriesdb.transfer(:'tomato', :'tom');
SELECT tests.clear_context();
SELECT is((SELECT array_agg(DISTINCT owner_id) FROM memoriesdb_internal.memory_words WHERE memory_id = :'tomato'), ARRAY[:'tom']::uuid[],
  'transfer: the rows are the new owner''s');
SELECT tests.act_as(:'tom');
SELECT memoriesdb.forget(:'tomato');
SELECT tests.clear_context();
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb_internal.memory_words WHERE memory_id = %L $$, :'tomato'),
  'forget: its rows are gone');
SELECT is(pg_temp.drift(), 0::bigint, 'after all of it, memory_words is what the memories say');

-- a superuser's re-window with triggers off (README, search_bounds.sql): the trigger still never fails on such a
-- memory, and rebuild_memory_words() mends the rest
UPDATE memoriesdb.config SET value = '1000' WHERE key = 'search_text_window_chars';
SELECT tests.memory_of(:'rosa', 'short now, long after the re-window') AS rewin \gset
SELECT tests.memory_of(:'rosa', 'another short one to forget') AS rewin2 \gset
UPDATE memoriesdb.config SET value = '10' WHERE key = 'search_text_window_chars';
SET LOCAL session_replication_role = replica;
UPDATE memoriesdb.memories SET content_trgm = memoriesdb_internal.trgm_prefix(content) WHERE id IN (:'rewin', :'rewin2');
SET LOCAL session_replication_role = origin;
SELECT tests.act_as(:'rosa');
SELECT lives_ok(format($$ SELECT memoriesdb.revise(%L, 'short now') $$, :'rewin'),
  'a memory re-windowed with triggers off can be revised back under the window (its stale rows replaced: no duplicate key)');
SELECT memoriesdb.forget(:'rewin2');
SELECT tests.clear_context();
SELECT is(pg_temp.drift(), 0::bigint, '... and revised or forgotten, memory_words is what the memories say (no row left behind)');
UPDATE memoriesdb.config SET value = '1000' WHERE key = 'search_text_window_chars';

-- no client reads it
SELECT tests.act_as(:'rosa');
SELECT throws_ok($$ SELECT * FROM memoriesdb_internal.memory_words $$, '42501', NULL, 'a client cannot read memory_words');

SELECT * FROM finish();
ROLLBACK;
