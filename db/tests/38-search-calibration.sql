-- calibrate_search(): search_ef_search measured on the database's own vectors (issue 16: recall at every size);
-- calibrate_search_fraction(): search_hnsw_min_fraction likewise.
-- Timing-free: which ef_search values it tries, which it keeps, that the index (not a scan) answered its probes,
-- and who may call it.
BEGIN;
SELECT plan(34);
SELECT setseed(0.17);

-- one tenant, 3,000 vectors crowded in 6 clusters (dense: the index needs a longer candidate list than 40)
SELECT memoriesdb.create_user('calibration') AS uid \gset
CREATE TEMP TABLE center AS
  SELECT c, array_agg(random() - 0.5 ORDER BY d)::real[] AS v FROM generate_series(1, 6) c, generate_series(1, 384) d GROUP BY c;
SET LOCAL session_replication_role = replica;   -- bulk fixture: no audit or queue rows
INSERT INTO memoriesdb.memories (owner_id, content, content_hash, embedding, embedding_model, created_at, created_by, updated_at, updated_by)
SELECT :'uid', 'c', sha256('c'),
       public.l2_normalize((SELECT array_agg(ce.v[d] + (random() - 0.5) * 0.9 ORDER BY d) FROM generate_series(1, 384) d)::real[]::vector),
       'seeded', now(), :'uid', now(), :'uid'
  FROM generate_series(1, 3000) AS i JOIN center ce ON ce.c = 1 + i % 6;
SET LOCAL session_replication_role = origin;
INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding)
SELECT m.id, em.id, m.content_hash, m.embedding FROM memoriesdb.memories AS m, memoriesdb.embedding_models AS em
 WHERE m.embedding_model = 'seeded' AND em.state = 'active';
-- a deliberately poor graph (m 4, ef_construction 16), so that a candidate list of 40 misses rows and the ladder climbs
DO $$
DECLARE ix record;
BEGIN
  SELECT indexname, indexdef INTO ix FROM pg_indexes
   WHERE schemaname = 'memoriesdb' AND tablename = 'embeddings' AND indexdef LIKE '%USING hnsw%';
  EXECUTE format('DROP INDEX memoriesdb.%I', ix.indexname);
  EXECUTE regexp_replace(regexp_replace(ix.indexdef, ' WITH \([^)]*\)', ''), ' WHERE ', ' WITH (m = 4, ef_construction = 16) WHERE ');
END $$;
ANALYZE memoriesdb.embeddings;

SELECT throws_ok($$SELECT * FROM memoriesdb.calibrate_search(0)$$, 'MDB12', 'invalid calibration', 'samples must be 1 to 1000');
SELECT throws_ok($$SELECT * FROM memoriesdb.calibrate_search(10, 1.5)$$, 'MDB12', 'invalid calibration', 'target must be in (0, 1]');

UPDATE memoriesdb.config SET value = '100' WHERE key = 'search_ef_search';
CREATE TEMP TABLE dry AS SELECT * FROM memoriesdb.calibrate_search(10, 0.9, false);
SELECT is(memoriesdb.setting('search_ef_search')::int, 100, 'apply => false: search_ef_search unchanged');

CREATE TEMP TABLE idx_before AS
  SELECT coalesce(sum(s.idx_scan), 0) AS n FROM pg_stat_xact_user_tables AS s
   WHERE s.schemaname = 'memoriesdb' AND s.relname = 'embeddings';   -- its only index scans here: the HNSW probes'
CREATE TEMP TABLE cal AS SELECT row_number() OVER () AS step, c.* FROM memoriesdb.calibrate_search(20, 0.9) AS c;
SELECT diag(string_agg(format('ef_search %s: recall@10 %s, %s ms (exact %s ms)%s', ef_search, round(recall::numeric, 3),
            round(index_ms::numeric, 2), round(exact_ms::numeric, 2), CASE WHEN chosen THEN ' <- chosen' END), E'\n' ORDER BY step)) FROM cal;
SELECT is((SELECT array_agg(ef_search ORDER BY step) FROM cal),
          (ARRAY[40, 100, 200, 400, 800, 1000])[1:(SELECT count(*) FROM cal)::int],
          'the ladder is tried from the shortest candidate list up');
SELECT is((SELECT count(*) FROM cal WHERE chosen), 1::bigint, 'one ef_search is chosen');
SELECT is((SELECT step FROM cal WHERE chosen), (SELECT max(step) FROM cal), 'it is the last one tried');
SELECT ok((SELECT bool_and(recall < 0.9::real) FROM cal WHERE NOT chosen) IS NOT FALSE, 'every shorter list missed the target');
SELECT ok((SELECT recall >= 0.9::real OR ef_search = 1000 FROM cal WHERE chosen), 'the chosen one reaches it (or is the longest there is)');
SELECT is(memoriesdb.setting('search_ef_search')::int, (SELECT ef_search FROM cal WHERE chosen), 'search_ef_search is set to it');
-- the probes ran on the model's HNSW index: a scan would find the exact rows at every ef_search and calibrate nothing
SELECT cmp_ok(((SELECT coalesce(sum(s.idx_scan), 0) FROM pg_stat_xact_user_tables AS s
                WHERE s.schemaname = 'memoriesdb' AND s.relname = 'embeddings')
              - (SELECT n FROM idx_before))::bigint, '>=', 20 * (SELECT count(*) FROM cal), 'every probe of every ef_search read the HNSW index');
SELECT ok(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.calibrate_search(integer, real, boolean)', 'EXECUTE'),
          'a client cannot calibrate (it sets what every tenant''s search reads)');
SELECT ok(has_function_privilege('memoriesdb_worker', 'memoriesdb.calibrate_search(integer, real, boolean)', 'EXECUTE'),
          'the runner can (memoriesdb calibrate-search)');

-- calibrate_search_fraction(): the smallest share of the table at which the index plan still finds the nearest rows
SELECT throws_ok($$SELECT * FROM memoriesdb.calibrate_search_fraction(0)$$, 'MDB12', 'invalid calibration', 'fraction: samples must be 1 to 1000');
SELECT throws_ok($$SELECT * FROM memoriesdb.calibrate_search_fraction(5, 0)$$, 'MDB12', 'invalid calibration', 'fraction: target must be in (0, 1]');
UPDATE memoriesdb.config SET value = '1000' WHERE key = 'search_ef_search';   -- a candidate list as long as pgvector allows
UPDATE memoriesdb.config SET value = '0.5' WHERE key = 'search_hnsw_min_fraction';
CREATE TEMP TABLE fdry AS SELECT * FROM memoriesdb.calibrate_search_fraction(10, 0.6, false);
SELECT is(memoriesdb.setting('search_hnsw_min_fraction')::real, 0.5::real, 'fraction, apply => false: search_hnsw_min_fraction unchanged');
-- the model's HNSW index itself (the table's scans would count a btree's too)
CREATE TEMP TABLE hnsw_ix AS
  SELECT c.oid AS ix FROM pg_catalog.pg_index AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_am AS a ON a.oid = c.relam
   WHERE i.indrelid = 'memoriesdb.embeddings'::regclass AND a.amname = 'hnsw';
CREATE TEMP TABLE fidx_before AS SELECT pg_stat_get_xact_numscans(ix) AS n FROM hnsw_ix;
-- target 0.6, 20 samples: this deliberately poor graph (m 4) finds 0.89-0.99 of a share's nearest rows at ef_search
-- 1000 (its levels are drawn at random, whatever setseed() says: the margin is for the graph that comes out)
CREATE TEMP TABLE frac AS SELECT row_number() OVER () AS step, f.* FROM memoriesdb.calibrate_search_fraction(20, 0.6) AS f;
-- the ladder's shares that hold at least 100 of the 3,000 (the ids are random: 0.03 holds about 92)
CREATE TEMP TABLE held AS
  WITH l AS (
    SELECT l.share, l.o, (SELECT count(*) FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id
                          WHERE em.state = 'active'
                            AND ((get_byte(uuid_send(e.memory_id), 14) * 256 + get_byte(uuid_send(e.memory_id), 15)) & 1023)
                                < round(l.share * 1024)) AS n
      FROM unnest(ARRAY[0.3, 0.1, 0.03, 0.01, 0.003, 0.001]::real[]) WITH ORDINALITY AS l(share, o))
  SELECT l.share, l.n FROM l WHERE l.o < coalesce((SELECT min(x.o) FROM l AS x WHERE x.n < 100), 7);
SELECT is((SELECT array_agg(share ORDER BY step) FROM frac), (SELECT array_agg(share ORDER BY share DESC) FROM held),
          'the shares are tried from the largest down, while they hold 100 rows (0.3 and 0.1 of 3,000, 0.03 when it holds 100)');
SELECT is((SELECT array_agg(rows_in_share ORDER BY step) FROM frac), (SELECT array_agg(n ORDER BY share DESC) FROM held),
          'rows_in_share counts the memories the share picks');
SELECT is((SELECT share FROM frac WHERE chosen), (SELECT min(share) FROM held),
          'with the longest candidate list every share tried reaches the target: the smallest is chosen');
SELECT ok((SELECT bool_and(recall >= 0.58::real) FROM frac), 'each share kept is within 0.02 of the target (recall_misses())');
SELECT is(memoriesdb.setting('search_hnsw_min_fraction')::real, (SELECT min(share) FROM held), 'search_hnsw_min_fraction is set to it');
SELECT cmp_ok((SELECT pg_stat_get_xact_numscans(ix) FROM hnsw_ix) - (SELECT n FROM fidx_before),
              '>=', 20 * (SELECT count(*) FROM frac), 'every probe of every share read the HNSW index');
-- the poor graph's shortest candidate list (40, recall 0.67 over all rows above) with an iterative scan that may read
-- only 20 tuples more misses a 30% share's nearest rows: no share reaches the target, and only a caller who sees the
-- whole table would take the index plan
UPDATE memoriesdb.config SET value = '20' WHERE key = 'search_max_scan_tuples';
SET LOCAL client_min_messages = error;   -- the WARNING is asserted through the rows
CREATE TEMP TABLE fmiss AS SELECT row_number() OVER () AS step, f.* FROM memoriesdb.calibrate_search_fraction(10, 0.99, ef_search => 40) AS f;
RESET client_min_messages;
SELECT is(memoriesdb.setting('search_ef_search')::int, 1000, 'ef_search => 40 is measured with, not stored (calibrate_search() sets that)');
SELECT results_eq($$SELECT share, chosen FROM fmiss ORDER BY step$$, $$VALUES (0.3::real, false), (1::real, true)$$,
                  'a 20-tuple budget misses at the largest share: it is reported, and 1 is chosen');
SELECT ok((SELECT recall < 0.99::real FROM fmiss WHERE step = 1), 'its recall is below the target');
SELECT is(memoriesdb.setting('search_hnsw_min_fraction')::real, 1::real, 'search_hnsw_min_fraction is 1: the exact plan for every caller who sees less than all');
-- a share is given up only when its recall misses the target beyond the sampling error (recall_misses()): at
-- 1,000,000 memories 20 samples measured 0.935 at share 0.3 (the superuser's plan there: 0.952) and the index was
-- given up for every caller below the whole table (a 30% tenant's search 24x slower)
SELECT is(memoriesdb_internal.recall_misses(187, 200, 0.95), false, '0.935 of 200 neighbours: within the sampling error of 0.95, kept');
SELECT is(memoriesdb_internal.recall_misses(118, 200, 0.95), true, '0.59 of 200: a miss');
SELECT is(memoriesdb_internal.recall_misses(930, 1000, 0.95), true, '0.93 of 1,000: a miss (the error shrinks with the samples)');
SELECT ok(NOT memoriesdb_internal.recall_misses(200, 200, 0.95) AND NOT memoriesdb_internal.recall_misses(0, 0, 0.95),
          'all found, or none sought: no miss');
SELECT is(memoriesdb_internal.recall_misses(185, 200, 0.95), true, '0.925 of 200: within the sampling error, but short by more than 0.02: a miss');
SELECT ok((SELECT prosrc FROM pg_proc WHERE oid = 'memoriesdb.calibrate_search_fraction(integer, real, boolean, integer)'::regprocedure)
          LIKE '%EXIT WHEN memoriesdb_internal.recall_misses(found, wanted, target);%',
          'calibrate_search_fraction() stops at a share by recall_misses()');
-- a table whose largest share holds fewer than 100 vectors, though 0.3 of all of them would be more (found by the
-- red team: the share is picked by id bits, not by count): nothing measured, nothing set, not a 1 that would make
-- every search exact for good
DELETE FROM memoriesdb.embeddings AS e
 WHERE ((get_byte(uuid_send(e.memory_id), 14) * 256 + get_byte(uuid_send(e.memory_id), 15)) & 1023) < 307
   AND e.memory_id NOT IN (SELECT x.memory_id FROM memoriesdb.embeddings AS x
                            WHERE ((get_byte(uuid_send(x.memory_id), 14) * 256 + get_byte(uuid_send(x.memory_id), 15)) & 1023) < 307
                            LIMIT 50);
UPDATE memoriesdb.config SET value = '0.5' WHERE key = 'search_hnsw_min_fraction';
SET LOCAL client_min_messages = warning;   -- the NOTICE says why
SELECT is_empty($$SELECT * FROM memoriesdb.calibrate_search_fraction(10, 0.6)$$,
                'a largest share of 50 vectors (of some 2,150): no share is measured');
RESET client_min_messages;
SELECT is(memoriesdb.setting('search_hnsw_min_fraction')::real, 0.5::real, '... and search_hnsw_min_fraction is kept');
SELECT ok(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.calibrate_search_fraction(integer, real, boolean, integer)', 'EXECUTE')
          AND has_function_privilege('memoriesdb_worker', 'memoriesdb.calibrate_search_fraction(integer, real, boolean, integer)', 'EXECUTE'),
          'fraction: the runner can calibrate it, a client cannot');

SELECT * FROM finish();
ROLLBACK;
