-- Citus (issue 16): memory_words, the words search_text() scores a large caller's short memories by, is distributed
-- by owner beside memories and written by the trigger on a memories shard into the colocated shard (nested
-- execution). remember() and revise() write and replace them, transfer() moves them to the receiver's shard with
-- the memory (its INSERT there, its DELETE here), forget() removes them; the large-caller plan finds the memory by
-- them. Run by scripts/test.sh --citus (each call commits: test_setup.psql).
\ir ../test_setup.psql
SELECT plan(9);

SELECT memoriesdb.create_user('ann' || (random() * 1e9)::bigint) AS ann \gset
SELECT pg_temp.user_apart('ben', :'ann') AS ben \gset
SELECT memoriesdb.create_api_key(:'ann') AS ka \gset
SELECT memoriesdb.create_api_key(:'ben') AS kb \gset

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.accept_sender(:'ann') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('saffron risotto with parmesan, saffron again') AS m1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.remember('saffron tea at dawn') AS m2 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.revise(:'m2', 'mint tea at dawn') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;

SELECT results_eq(format($$ SELECT word, tf, dl FROM memoriesdb_internal.memory_words WHERE owner_id = %L AND memory_id = %L ORDER BY word $$, :'ann', :'m1'),
  $$ VALUES ('parmesan', 1, 3), ('risotto', 1, 3), ('saffron', 2, 3) $$,
  'remember(): the memory''s words on its owner''s shard, with their frequency and its length');
SELECT results_eq(format($$ SELECT word FROM memoriesdb_internal.memory_words WHERE memory_id = %L ORDER BY word $$, :'m2'),
  $$ VALUES ('dawn'), ('mint'), ('tea') $$, 'revise(): the old words gone (saffron), the new written');

SET SESSION AUTHORIZATION mdb_citus_test_app;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT memoriesdb.transfer(:'m1', :'ben') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;
-- (read first, then compared: a pgTAP call with a distributed subquery in it would be pushed to a worker)
SELECT array_agg(DISTINCT owner_id)::text AS owners FROM memoriesdb_internal.memory_words WHERE memory_id = :'m1' \gset
SELECT count(*) AS moved FROM memoriesdb_internal.memory_words WHERE memory_id = :'m1' AND owner_id = :'ben' \gset
SELECT is(:'owners', ARRAY[:'ben']::uuid[]::text, 'transfer(): the words are the receiver''s');
SELECT is(:'moved'::bigint, 3::bigint, '... all three, on the receiver''s shard (on the other worker)');

-- ben's search as a large caller (search_text_exact_max 0): its short memories scored from memory_words
UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_text_exact_max';
SET SESSION AUTHORIZATION mdb_citus_test_app;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT results_eq($$ SELECT id FROM memoriesdb.search_text('saffron risotto', 1) $$, ARRAY[:'m1']::uuid[],
  'the large-caller plan finds the transferred memory by its words on the receiver''s shard');
SELECT is(current_setting('memoriesdb.search_text_plan'), 'index visible=1', '... by the index plan');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ka') AS _ \gset
SELECT is_empty($$ SELECT 1 FROM memoriesdb.search_text('saffron risotto', 1) $$, 'the giver finds it no more');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kb') AS _ \gset
SELECT memoriesdb.forget(:'m1') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;
UPDATE memoriesdb.config SET value = '2000' WHERE key = 'search_text_exact_max';
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb_internal.memory_words WHERE memory_id = %L $$, :'m1'), 'forget(): its words are gone');
SELECT count(*) AS left_rows FROM memoriesdb_internal.memory_words WHERE owner_id IN (:'ann', :'ben') \gset
SELECT is(:'left_rows'::bigint, 3::bigint, 'and nothing else of theirs is left but the other memory''s three words');

SELECT * FROM finish();
