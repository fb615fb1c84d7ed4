-- Input bounds: metadata, edge metadata and edge type descriptions have configured size
-- limits (MDB05); content under max_content_bytes is accepted even when the trigram or
-- full-text index could not hold all of it (the indexes hold what fits, search still works).
BEGIN;
SELECT plan(49);

-- the fields of the error a statement raises (run as the caller's role and context)
CREATE FUNCTION pg_temp.error_of(stmt text, OUT state text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END $$;
-- n pseudo-random 7-letter words, the same every run: the worst case for a trigram or
-- full-text index (every word new), unlike prose
CREATE FUNCTION pg_temp.random_words(n integer, seed text DEFAULT '') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(w.word, ' ' ORDER BY w.g) FROM (
    SELECT g, (SELECT string_agg(chr(97 + get_byte(d.b, i) % 26), '' ORDER BY i) FROM generate_series(0, 6) AS i) AS word
      FROM generate_series(1, n) AS g, LATERAL (SELECT decode(md5(seed || g::text), 'hex') AS b) AS d) AS w
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

-- the settings and their defaults
SELECT results_eq($$ SELECT key, value FROM memoriesdb.config
                      WHERE key IN ('max_metadata_bytes', 'max_edge_metadata_bytes', 'max_edge_type_description_chars') ORDER BY key $$,
  $$ VALUES ('max_edge_metadata_bytes'::text, '16384'::jsonb), ('max_edge_type_description_chars', '1000'), ('max_metadata_bytes', '65536') $$,
  'the three bounds are settings, with their defaults');

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.remember('a memory') AS m1 \gset
SELECT memoriesdb.remember('another memory') AS m2 \gset
SELECT (SELECT count(*) FROM memoriesdb.list_memories()) AS n_memories \gset

-- 1. memory metadata: its JSON text at most max_metadata_bytes (65536) bytes
-- {"k": "xx…"} is 9 bytes of JSON around the string
SELECT throws_ok($$ SELECT memoriesdb.remember('x', jsonb_build_object('k', repeat('x', 5000000))) $$,
  'MDB05', 'metadata too large', '5 MB of metadata is refused');
SELECT lives_ok($$ SELECT memoriesdb.remember('at the limit', jsonb_build_object('k', repeat('x', 65536 - 9))) $$,
  'metadata of exactly max_metadata_bytes is accepted');
SELECT throws_ok($$ SELECT memoriesdb.remember('x', jsonb_build_object('k', repeat('x', 65536 - 8))) $$,
  'MDB05', 'metadata too large', 'one byte more is refused');
SELECT throws_ok($$ SELECT memoriesdb.remember('x', jsonb_build_object('k', repeat('é', 32764))) $$,
  'MDB05', 'metadata too large', 'the bound is in bytes (UTF-8), not characters');
SELECT results_eq($$ SELECT state, detail, hint FROM pg_temp.error_of('SELECT memoriesdb.remember(''x'', jsonb_build_object(''k'', repeat(''x'', 70000)))') $$,
  $$ VALUES ('MDB05'::text, '70009 bytes of JSON; the limit is 65536'::text, 'keep large data in the content or in another memory, or raise config max_metadata_bytes'::text) $$,
  'the error says the size, the limit and the setting');
SELECT lives_ok($$ SELECT memoriesdb.remember('x', '{"a": [1, 2, 3], "b": {"c": "d"}}') $$, 'ordinary metadata is accepted as before');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, metadata => jsonb_build_object('k', repeat('x', 65536))) $$, :'m1'),
  'MDB05', 'metadata too large', 'revise refuses oversized metadata');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'new content', jsonb_build_object('k', repeat('x', 65536))) $$, :'m1'),
  'MDB05', 'metadata too large', 'revise refuses oversized metadata with new content');
SELECT is((SELECT revision FROM memoriesdb.recall(:'m1')), 1, 'a refused revision changes nothing');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), :n_memories::bigint + 2, 'refused remembers wrote nothing');
SELECT lives_ok(format($$ SELECT memoriesdb.revise(%L, metadata => jsonb_build_object('k', repeat('x', 65536 - 9))) $$, :'m1'),
  'revise accepts metadata of exactly the limit');

-- the bound is read from the settings at every call
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '100' WHERE key = 'max_metadata_bytes';
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT memoriesdb.remember('x', jsonb_build_object('k', repeat('x', 100))) $$,
  'MDB05', 'metadata too large', 'a lowered max_metadata_bytes applies at once');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '65536' WHERE key = 'max_metadata_bytes';
SELECT tests.act_as(:'alice');

-- 2. edge metadata: at most max_edge_metadata_bytes (16384)
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to', 1, jsonb_build_object('k', repeat('x', 5000000))) $$, :'m1', :'m2'),
  'MDB05', 'edge metadata too large', '5 MB of edge metadata is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to', 1, jsonb_build_object('k', repeat('x', 16384 - 8))) $$, :'m1', :'m2'),
  'MDB05', 'edge metadata too large', 'one byte over max_edge_metadata_bytes is refused');
SELECT results_eq(format($$ SELECT state, detail, hint FROM pg_temp.error_of(%L) $$,
                         format($$ SELECT memoriesdb.link(%L, %L, 'related_to', 1, jsonb_build_object('k', repeat('x', 20000))) $$, :'m1', :'m2')),
  $$ VALUES ('MDB05'::text, '20009 bytes of JSON; the limit is 16384'::text, 'keep large data in a memory, or raise config max_edge_metadata_bytes'::text) $$,
  'the edge error says the size, the limit and the setting');
SELECT is((SELECT count(*) FROM memoriesdb.list_edges()), 0::bigint, 'refused links wrote nothing');
SELECT lives_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to', 1, jsonb_build_object('k', repeat('x', 16384 - 9))) $$, :'m1', :'m2'),
  'edge metadata of exactly the limit is accepted');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to', 1, '[1]') $$, :'m2', :'m1'),
  'MDB06', 'metadata must be a JSON object', 'edge metadata must still be an object');

-- 3. edge type descriptions (read by every tenant): at most max_edge_type_description_chars (1000)
SELECT throws_ok($$ SELECT memoriesdb.create_edge_type('huge', repeat('x', 5000000)) $$,
  'MDB05', 'edge type description too long', '5 MB of description is refused');
SELECT throws_ok($$ SELECT memoriesdb.create_edge_type('long_one', repeat('x', 1001)) $$,
  'MDB05', 'edge type description too long', 'one character over the limit is refused');
SELECT results_eq($$ SELECT state, detail, hint FROM pg_temp.error_of('SELECT memoriesdb.create_edge_type(''long_two'', repeat(''x'', 1500))') $$,
  $$ VALUES ('MDB05'::text, '1500 characters; the limit is 1000'::text, 'describe the edge type briefly, or raise config max_edge_type_description_chars'::text) $$,
  'the description error says the length, the limit and the setting');
SELECT lives_ok($$ SELECT memoriesdb.create_edge_type('accented', repeat('é', 1000)) $$,
  'a description of exactly the limit is accepted; the bound is in characters');
SELECT lives_ok($$ SELECT memoriesdb.create_edge_type('plain') $$, 'the default description still works');
SELECT is((SELECT count(*) FROM memoriesdb.list_edge_types() WHERE name IN ('huge', 'long_one', 'long_two')), 0::bigint,
  'refused edge types wrote nothing');

-- 4. content the indexes cannot hold whole: 48 kB of random words (the trigram GiST entry
-- of all of it would need ~74 kB, past the 8 kB an index row can hold)
SELECT pg_temp.random_words(6000) AS words \gset
SELECT cmp_ok(octet_length(:'words'), '<', memoriesdb.setting('max_content_bytes')::int, 'the long content is under max_content_bytes');
SELECT lives_ok($$ SELECT memoriesdb.remember(pg_temp.random_words(6000)) $$, 'remember() accepts it');
SELECT tests.clear_context();
SELECT id AS long1 FROM memoriesdb.memories WHERE content = :'words' \gset
SELECT tests.act_as(:'alice');
SELECT is((SELECT content FROM memoriesdb.recall(:'long1')), :'words', 'and stores all of it');
SELECT lives_ok(format($$ SELECT memoriesdb.revise(%L, pg_temp.random_words(6000, 'r')) $$, :'m2'), 'revise() accepts it');
SELECT is((SELECT content FROM memoriesdb.recall(:'m2')), pg_temp.random_words(6000, 'r'), 'and stores all of it');
SELECT lives_ok(format($$ SELECT memoriesdb.revise(%L, 'short again') $$, :'m2'), 'and back to short content');

-- search still finds long memories, on both plans (few memories: exact scan; many: the indexes)
SELECT split_part(:'words', ' ', 1) AS first_word, split_part(:'words', ' ', 6000) AS last_word \gset
SELECT ok(:'long1' IN (SELECT id FROM memoriesdb.search_text(:'first_word')), 'exact plan: a word of the long memory finds it');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_text_exact_max';
SELECT tests.act_as(:'alice');
SELECT ok(:'long1' IN (SELECT id FROM memoriesdb.search_text(:'first_word')), 'index plan: its first word finds it');
SELECT ok(:'long1' IN (SELECT id FROM memoriesdb.search_text(:'last_word')), 'index plan: its last word finds it (full text)');
SELECT ok(:'long1' IN (SELECT id FROM memoriesdb.search_text(:'first_word' || 'x')), 'index plan: a typo of its first word finds it (trigrams)');

-- the trigram index holds a memory whole up to search_text_window_chars (1000) characters, the
-- window the text ranking reads (and an index row always holds it): such a memory is indexed
-- exactly as before
SELECT is(char_length(left(pg_temp.random_words(412, '1'), 1000)), 1000, 'a content of 1000 characters');
SELECT lives_ok($$ SELECT memoriesdb.remember(left(pg_temp.random_words(412, '1'), 1000)) $$, 'is accepted');
SELECT tests.clear_context();
SELECT is((SELECT content_trgm FROM memoriesdb.memories WHERE content_hash = sha256(convert_to(left(pg_temp.random_words(412, '1'), 1000), 'UTF8'))),
  NULL, 'and the trigram index holds all of it (content_trgm is NULL)');
SELECT is((SELECT content_trgm FROM memoriesdb.memories WHERE id = :'long1'), left(:'words', 1000),
  'past the window it holds the first 1000 characters');
SELECT tests.act_as(:'alice');

-- 5. content whose full-text vector would pass PostgreSQL's 1 MB tsvector limit (~800 kB of random words)
SELECT lives_ok($$ SELECT memoriesdb.remember(pg_temp.random_words(100000, 'big')) $$, 'remember() accepts ~800 kB of random words');
SELECT tests.clear_context();
SELECT id AS long2 FROM memoriesdb.memories WHERE content_hash = sha256(convert_to(pg_temp.random_words(100000, 'big'), 'UTF8')) \gset
SELECT tests.act_as(:'alice');
SELECT ok(:'long2' IN (SELECT id FROM memoriesdb.search_text(split_part(pg_temp.random_words(3, 'big'), ' ', 2))),
  'index plan: a word near its start finds it');
SELECT lives_ok(format($$ SELECT memoriesdb.revise(%L, pg_temp.random_words(100000, 'big2')) $$, :'m1'), 'revise() accepts it too');

-- memories of ordinary size are indexed exactly as before: all their content
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.memories WHERE octet_length(content) < 2000 AND content_tsv IS DISTINCT FROM to_tsvector('english'::regconfig, content)),
  0::bigint, 'content_tsv of ordinary memories is their whole full-text vector');
SELECT ok((SELECT content_tsv FROM memoriesdb.memories WHERE id = :'long1') = to_tsvector('english'::regconfig, :'words'),
  'a long memory whose full-text vector fits has all of it');
SELECT ok((SELECT content_tsv IS NOT NULL AND length(content_tsv) > 1000 FROM memoriesdb.memories WHERE id = :'long2'),
  'one whose full-text vector cannot fit has a part of it');
SELECT is((SELECT count(*) FROM memoriesdb.memories WHERE octet_length(content) <= 1000 AND content_trgm IS NOT NULL),
  0::bigint, 'the trigram index holds ordinary memories whole');
SELECT results_eq(format($$ SELECT content_tsv, content_trgm FROM memoriesdb.memories WHERE id = %L $$, :'m2'),
  $$ VALUES (to_tsvector('english'::regconfig, 'short again'), NULL::text) $$, 'content_tsv and content_trgm follow revised content');
SELECT is((SELECT char_length(content_trgm) FROM memoriesdb.memories WHERE id = :'m1'), 1000, 'also when revised to long content');
UPDATE memoriesdb.memories SET embedding = tests.axis(1), embedding_model = 't' WHERE id = :'m1';
SELECT results_eq(format($$ SELECT content_tsv = memoriesdb_internal.content_tsvector(content), char_length(content_trgm) FROM memoriesdb.memories WHERE id = %L $$, :'m1'),
  $$ VALUES (true, 1000) $$, 'an update that leaves content alone leaves them alone');

SELECT * FROM finish();
ROLLBACK;
