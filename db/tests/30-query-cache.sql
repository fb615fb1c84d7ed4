-- The query-vector cache (issue 15): cached_query_vector() / cache_query_vector() keyed by an HMAC
-- of (context user, model, normalised query), bounded per user with least recently used out.
-- Entries are the caller's own: another user never hits, evicts or overwrites them, and no
-- query text is stored.
BEGIN;
SELECT plan(49);

SELECT has_table('memoriesdb_internal', 'query_cache', 'table memoriesdb_internal.query_cache exists');
SELECT col_is_pk('memoriesdb_internal', 'query_cache', ARRAY['owner_id', 'digest'], 'keyed by (owner, digest)');
SELECT is_empty($$ SELECT * FROM tests.rls_not_forced('memoriesdb_internal') AS t(name)
                    WHERE name IN ('query_cache', 'query_cache_key') $$, 'the cache and its key are under forced RLS');
SELECT policies_are('memoriesdb_internal', 'query_cache', ARRAY['query_cache_own'], 'one policy: the context user''s rows');
SELECT is_definer('memoriesdb', 'cached_query_vector', ARRAY['text', 'text'], 'cached_query_vector is SECURITY DEFINER');
SELECT is_definer('memoriesdb', 'cache_query_vector', ARRAY['text', 'text', 'vector'], 'cache_query_vector is SECURITY DEFINER');

SELECT tests.create_user('qc_alice') AS alice \gset
SELECT tests.create_user('qc_bob') AS bob \gset
SELECT array_agg(CASE WHEN g = 1 THEN 1 ELSE 0 END ORDER BY g)::real[]::vector AS v1,
       array_agg(CASE WHEN g = 2 THEN 1 ELSE 0 END ORDER BY g)::real[]::vector AS v2
  FROM generate_series(1, 8) AS g \gset

-- miss, store, hit
SELECT tests.act_as(:'alice');
SELECT is(memoriesdb.cached_query_vector('m', 'Where did I park?'), NULL, 'a query never stored is a miss (NULL)');
SELECT is(memoriesdb.cache_query_vector('m', 'Where did I park?', :'v1'), true, 'cache_query_vector stores it (true)');
SELECT is(memoriesdb.cached_query_vector('m', 'Where did I park?'), :'v1'::vector, 'the same query is a hit: the stored vector');
SELECT is(memoriesdb.cached_query_vector('m', E'  Where\u00a0did \t I\n park?  '), :'v1'::vector,
  'white space (runs of any kind, at either end) does not matter');
SELECT is(memoriesdb.cached_query_vector('m', E'cafe\u0301?'), NULL, 'setup: not cached yet');
SELECT is(memoriesdb.cache_query_vector('m', E'caf\u00e9?', :'v2'), true, 'a precomposed é stored');
SELECT is(memoriesdb.cached_query_vector('m', E'cafe\u0301?'), :'v2'::vector, 'the decomposed é hits it (NFC)');
SELECT is(memoriesdb.cached_query_vector('m', 'where did i park?'), NULL, 'case is kept: another case is another query');
SELECT is(memoriesdb.cached_query_vector('m2', 'Where did I park?'), NULL, 'another model is another entry');
SELECT is(memoriesdb.cache_query_vector('m', 'Where did I park?', :'v2'), true, 'storing again replaces');
SELECT is(memoriesdb.cached_query_vector('m', 'Where did I park?'), :'v2'::vector, 'the newer vector is returned');

-- another user
SELECT tests.act_as(:'bob');
SELECT is(memoriesdb.cached_query_vector('m', 'Where did I park?'), NULL, 'bob never hits alice''s entry for the same query');
SELECT is(memoriesdb.cache_query_vector('m', 'Where did I park?', :'v1'), true, 'bob stores his own');
SELECT is(memoriesdb.clear_query_cache(), 1::bigint, 'bob''s clear_query_cache() drops his one entry');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb_internal.query_cache $$, '42501', NULL, 'a client reads no cache row');
SELECT throws_ok($$ DELETE FROM memoriesdb_internal.query_cache $$, '42501', NULL, 'nor deletes any');
SELECT tests.act_as(:'alice');
SELECT is(memoriesdb.cached_query_vector('m', 'Where did I park?'), :'v2'::vector, 'alice''s entry survives bob''s store and clear');

-- what is stored (as the superuser)
SELECT tests.clear_context();
SELECT tests.act_as(:'bob');
SELECT memoriesdb.cache_query_vector('m', 'Where did I park?', :'v1');
SELECT tests.clear_context();
-- (the digest's hex could spell "caf" by chance: its bytes are searched, the other columns' text)
SELECT is_empty($$ SELECT 1 FROM memoriesdb_internal.query_cache AS c
                    WHERE (c.owner_id, c.model, c.vector, c.used_at, c.created_at)::text ~* 'park|caf'
                       OR position(convert_to('park', 'UTF8') IN c.digest) > 0
                       OR position(convert_to('caf', 'UTF8') IN c.digest) > 0 $$, 'no row holds the query text');
SELECT is_empty(format($$ SELECT 1 FROM memoriesdb_internal.query_cache AS c
                           WHERE c.digest IN (sha256(convert_to('Where did I park?', 'UTF8')),
                                              sha256(convert_to('m|Where did I park?', 'UTF8'))) $$),
  'a digest is no plain SHA-256 of the query: not testable against a guess without the key');
SELECT is((SELECT count(DISTINCT digest) FROM memoriesdb_internal.query_cache WHERE owner_id IN (:'alice', :'bob')), 3::bigint,
  'the same query of two users gives two unrelated digests (no one learns two users asked the same)');

-- the bound: least recently used out, per user
UPDATE memoriesdb.config SET value = '3' WHERE key = 'query_cache_max_entries';
SELECT tests.act_as(:'alice');
SELECT is(memoriesdb.clear_query_cache('m'), 2::bigint, 'clear_query_cache(model): alice''s two entries of m');
SELECT memoriesdb.cache_query_vector('m', 'q1', :'v1'), memoriesdb.cache_query_vector('m', 'q2', :'v1'),
       memoriesdb.cache_query_vector('m', 'q3', :'v1');
SELECT is(memoriesdb.cached_query_vector('m', 'q1'), :'v1'::vector, 'q1 hit: now the most recently used');
SELECT is(memoriesdb.cache_query_vector('m', 'q4', :'v2'), true, 'a fourth entry past a bound of 3');
SELECT is(memoriesdb.cached_query_vector('m', 'q2'), NULL, 'the least recently used (q2) is out');
SELECT ok(memoriesdb.cached_query_vector('m', 'q1') IS NOT NULL AND memoriesdb.cached_query_vector('m', 'q3') IS NOT NULL
          AND memoriesdb.cached_query_vector('m', 'q4') IS NOT NULL, 'q1 (touched), q3 and q4 stay');
SELECT memoriesdb.cache_query_vector('m', 'q4', :'v1');
SELECT ok(memoriesdb.cached_query_vector('m', 'q1') IS NOT NULL AND memoriesdb.cached_query_vector('m', 'q3') IS NOT NULL,
  'storing a cached query again evicts nothing');
SELECT tests.act_as(:'bob');
SELECT is(memoriesdb.cached_query_vector('m', 'Where did I park?'), :'v1'::vector, 'bob''s entry was not evicted by alice''s stores');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb_internal.query_cache WHERE owner_id = :'alice'), 3::bigint,
  'alice holds exactly the bound');

-- bad input
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT memoriesdb.cached_query_vector(NULL, 'q') $$, 'MDB26', 'invalid embedding model name', 'a NULL model');
SELECT throws_ok($$ SELECT memoriesdb.cached_query_vector('', 'q') $$, 'MDB26', 'invalid embedding model name', 'an empty model');
SELECT throws_ok($$ SELECT memoriesdb.cache_query_vector(E'm\nx', 'q', '[1,2]') $$, 'MDB26', 'invalid embedding model name',
  'a model with a control character');
SELECT throws_ok($$ SELECT memoriesdb.cached_query_vector(repeat('m', 201), 'q') $$, 'MDB26', 'invalid embedding model name',
  'a model of 201 characters');
SELECT throws_ok($$ SELECT memoriesdb.cached_query_vector('m', NULL) $$, 'MDB26', 'query is NULL', 'a NULL query');
SELECT throws_ok($$ SELECT memoriesdb.cache_query_vector('m', E' \t\u3000 ', '[1,2]') $$, 'MDB26', 'empty query',
  'a query of white space only');
SELECT throws_ok($$ SELECT memoriesdb.cached_query_vector('m', repeat('x', 8001)) $$, 'MDB26', 'query too long for the query cache',
  'a query past query_cache_max_query_chars');
SELECT throws_ok($$ SELECT memoriesdb.cache_query_vector('m', 'q', NULL) $$, 'MDB26', 'vector is NULL', 'a NULL vector');
SELECT throws_ok($$ SELECT memoriesdb.cache_query_vector('m', 'q', array_fill(1, ARRAY[4097])::real[]::vector) $$,
  'MDB26', 'vector too large for the query cache', 'a vector past query_cache_max_dimensions');
SELECT throws_ok($$ SELECT memoriesdb.cache_query_vector('m', 'q', '[0,0,0]') $$, 'MDB26', 'vector has no direction', 'a zero vector');
SELECT tests.act_as(NULL);
SELECT throws_ok($$ SELECT memoriesdb.cached_query_vector('m', 'q1') $$, 'MDB01', 'no user context', 'no context: no lookup');

-- off, and read-only
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '0' WHERE key = 'query_cache_max_entries';
SELECT tests.act_as(:'alice');
SELECT is(memoriesdb.cached_query_vector('m', 'q1'), NULL, 'query_cache_max_entries 0: the cache is off, every lookup a miss');
SELECT is(memoriesdb.cache_query_vector('m', 'q9', :'v1'), false, 'and nothing is stored (false)');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '3' WHERE key = 'query_cache_max_entries';
SET LOCAL transaction_read_only = on;
SELECT tests.act_as(:'alice');
SELECT ok(memoriesdb.cached_query_vector('m', 'q1') IS NOT NULL, 'a read-only transaction (a standby) still hits');
SELECT is(memoriesdb.cache_query_vector('m', 'q9', :'v1'), false, 'and stores nothing, without an error');

SELECT * FROM finish();
ROLLBACK;
