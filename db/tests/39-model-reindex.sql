-- model_index_rebuild(): the statements that rebuild a model's HNSW index with today's graph settings
-- (issue 16: an index keeps what it was built with). CREATE INDEX CONCURRENTLY cannot run here (nor in any
-- transaction): runner/tests/test_models.py runs them through `memoriesdb models reindex`; here, which
-- steps are asked for in each state a run can leave, and with which parameters.
BEGIN;
SELECT plan(13);

SELECT em.name AS model, em.id AS model_id, em.dimension, memoriesdb_internal.model_index_name(em.id) AS ix
  FROM memoriesdb.embedding_models AS em WHERE em.state = 'active' \gset

-- a fresh rebuild: build a copy concurrently with today's settings, drop the old one concurrently, rename
UPDATE memoriesdb.config SET value = '8' WHERE key = 'search_hnsw_m';
UPDATE memoriesdb.config SET value = '40' WHERE key = 'search_hnsw_ef_construction';
SELECT results_eq(
  format('SELECT step, left(statement, 40) FROM memoriesdb_internal.model_index_rebuild(%L)', :'model'),
  format($$VALUES (1, left('CREATE INDEX CONCURRENTLY %1$s_rebuild ON', 40)),
                  (2, left('DROP INDEX CONCURRENTLY IF EXISTS memoriesdb.%1$s', 40)),
                  (3, left('ALTER INDEX memoriesdb.%1$s_rebuild RENAME', 40))$$, :'ix'),
  'no copy yet: build a copy, drop the old index, rename the copy (in that order)');
SELECT matches(statement, 'WITH \(m = 8, ef_construction = 40\) WHERE model_id = ''' || :'model_id' || '''::uuid$',
               'the copy is built with today''s search_hnsw_m and search_hnsw_ef_construction, for the model''s rows')
  FROM memoriesdb_internal.model_index_rebuild(:'model') WHERE step = 1;
SELECT is(statement, format('ALTER INDEX memoriesdb.%I_rebuild RENAME TO %I', :'ix', :'ix'), 'the copy takes the old name (what search and retire_model() find)')
  FROM memoriesdb_internal.model_index_rebuild(:'model') WHERE step = 3;
SELECT is(
  (SELECT regexp_replace(statement, '^CREATE INDEX CONCURRENTLY \S+ ', '') FROM memoriesdb_internal.model_index_rebuild(:'model') WHERE step = 1),
  memoriesdb_internal.model_index_definition(:'model_id'::uuid, :dimension),
  'the copy''s definition is the one create_model_index() builds from');
-- a copy left by an earlier run (stopped while building, or before the swap): dropped first, built again
CREATE INDEX embeddings_scratch_rebuild ON memoriesdb.embeddings (memory_id);   -- any index under the copy's name
ALTER INDEX memoriesdb.embeddings_scratch_rebuild RENAME TO placeholder_rebuild;
SELECT format('ALTER INDEX memoriesdb.placeholder_rebuild RENAME TO %I', :'ix' || '_rebuild') AS rename_copy \gset
:rename_copy;
SELECT results_eq(
  format('SELECT step, action FROM memoriesdb_internal.model_index_rebuild(%L)', :'model'),
  $$VALUES (1, 'drop the copy an earlier run left'), (2, 'build a new index beside the old one (searches go on)'),
           (3, 'drop the old index (searches use the new one)'), (4, 'name the new index')$$,
  'a copy beside the index: dropped, then the full rebuild');
SELECT is((SELECT statement FROM memoriesdb_internal.model_index_rebuild(:'model') WHERE step = 1),
          format('DROP INDEX CONCURRENTLY IF EXISTS memoriesdb.%I', :'ix' || '_rebuild'), 'the copy is dropped by its name');

-- stopped after the old index was dropped: the copy is whole, only the rename is left
SELECT format('DROP INDEX memoriesdb.%I', :'ix') AS drop_live \gset
:drop_live;
SELECT results_eq(
  format('SELECT step, statement FROM memoriesdb_internal.model_index_rebuild(%L)', :'model'),
  format($$VALUES (1, 'ALTER INDEX memoriesdb.%1$s_rebuild RENAME TO %1$s')$$, :'ix'),
  'the old index gone and a whole copy there: only the rename');

-- no index at all (neither): built and named
SELECT format('DROP INDEX memoriesdb.%I', :'ix' || '_rebuild') AS drop_copy \gset
:drop_copy;
SELECT results_eq(
  format('SELECT step, left(statement, 26) FROM memoriesdb_internal.model_index_rebuild(%L)', :'model'),
  $$VALUES (1, 'CREATE INDEX CONCURRENTLY '), (2, 'ALTER INDEX memoriesdb.emb')$$,
  'no index: built and named');

-- refusals
SELECT throws_ok($$SELECT * FROM memoriesdb_internal.model_index_rebuild('no-such-model')$$, 'MDB16', 'no such embedding model',
                 'no such model: MDB16');
SELECT memoriesdb.add_model('to-retire', 'configured', 8) \gset
SELECT memoriesdb.retire_model('to-retire') \gset
SELECT throws_ok($$SELECT * FROM memoriesdb_internal.model_index_rebuild('to-retire')$$, 'MDB31', 'a retired model has no index to rebuild',
                 'a retired model: MDB31');
SELECT matches((SELECT statement FROM memoriesdb_internal.model_index_rebuild(:'model') WHERE step = 1), '^CREATE INDEX CONCURRENTLY ',
               'the statements build concurrently (searches and writes go on)');

-- only the deployer: no client, backend or worker role may ask (it names the index DDL to run as its owner)
SELECT ok(NOT has_function_privilege(r, 'memoriesdb_internal.model_index_rebuild(text)', 'EXECUTE'), r || ' may not call it')
  FROM unnest(ARRAY['memoriesdb_app', 'memoriesdb_worker']) AS r;

SELECT * FROM finish();
ROLLBACK;
