-- search()'s plan choice (issue 16): from the fraction and count of the table the caller can
-- see and its filter's selectivity, never from an absolute count alone. Timing-free: the
-- plan is read from the transaction-local report memoriesdb.search_plan, and the rows of
-- a selective filter are checked against the exact answer. (Latency: bench/search.py.)
BEGIN;
SELECT plan(43);
SELECT setseed(0.16);

-- search_plan() itself, at round settings pinned here (deployed, from bench/search.py: tuple cost 20, floor 700)
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '1000'), ('search_hnsw_tuple_cost', '10'),
  ('search_hnsw_min_fraction', '0.03'), ('search_ef_search', '100'), ('search_max_scan_tuples', '50000')) AS x(k, v) WHERE key = x.k;
SELECT is(memoriesdb_internal.search_plan(99000, 99000, 100000, 10), 'hnsw', 'a 99% tenant of 100,000: the index plan');
SELECT is(memoriesdb_internal.search_plan(30000, 30000, 100000, 10), 'hnsw', 'a 30% tenant of 100,000: the index plan');
SELECT is(memoriesdb_internal.search_plan(30000, 300, 100000, 10), 'exact',
  'the same tenant with a filter keeping 1% of its rows (0.3% of the table): exact (the index scan would miss rows)');
SELECT is(memoriesdb_internal.search_plan(19950, 19950, 20000, 10), 'hnsw',
  'the case of the issue: 19,950 of 20,000 visible takes the index plan (the absolute count said exact)');
SELECT is(memoriesdb_internal.search_plan(1000, 1000, 1000, 10), 'exact', 'up to search_exact_max visible: exact, even all of the table');
SELECT is(memoriesdb_internal.search_plan(3000, 3000, 1000000, 10), 'exact', 'a 0.3% caller of 1,000,000: exact');
-- the cost boundary: 10 * max(ef 100, 4k, k / p) index tuples against the visible rows; for k = 50 of 100,000
-- that is 10 * 5,000,000 / V < V, V > 7,071.07
SELECT is(memoriesdb_internal.search_plan(7071, 7071, 100000, 50), 'exact', 'k = 50, 7,071 visible of 100,000: exact (the index costs more)');
SELECT is(memoriesdb_internal.search_plan(7072, 7072, 100000, 50), 'hnsw', 'k = 50, 7,072 visible: the index plan');
SELECT is(memoriesdb_internal.search_plan(50000, 2999, 100000, 10), 'exact', 'matching 2.999% of the table: below search_hnsw_min_fraction');
SELECT is(memoriesdb_internal.search_plan(50000, 9, 100000, 10), 'exact', 'fewer matching than k: exact');
-- the count's cap (search_count_cap()): past it the plan is the one any larger count gets. For every combination
-- of settings and sizes below, search_plan() at cap + 1 (half of them matching: a filter keeping half) is 'hnsw'
-- whenever any count is (the whole table matching half is the most favourable case: search_plan() is monotone)
CREATE FUNCTION pg_temp.cap_misses() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  c record;
  cap bigint;
  misses text := '';
BEGIN
  FOR c IN SELECT * FROM (VALUES (0), (700), (20000)) AS em(exact_max), (VALUES (0), (0.003), (0.03)) AS mf(fraction),
                         (VALUES (0), (1), (20), (32)) AS tc(cost), (VALUES (40), (200), (1000)) AS ef(ef),
                         (VALUES (1000), (50000)) AS ms(max_scan), (VALUES (2000), (100000), (1000000), (10000000)) AS t(total),
                         (VALUES (1), (10), (50)) AS kk(k) LOOP
    UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', c.exact_max::text),
      ('search_hnsw_min_fraction', c.fraction::text), ('search_hnsw_tuple_cost', c.cost::text),
      ('search_ef_search', c.ef::text), ('search_max_scan_tuples', c.max_scan::text)) AS x(k, v) WHERE key = x.k;
    cap := memoriesdb_internal.search_count_cap(c.total, c.k);
    IF memoriesdb_internal.search_plan(c.total::bigint, c.total / 2.0, c.total, c.k) = 'hnsw'
       AND memoriesdb_internal.search_plan(cap + 1, (cap + 1) / 2.0, c.total, c.k) <> 'hnsw' THEN
      misses := misses || CASE WHEN length(misses) < 400 THEN format('%s cap %s; ', c, cap) ELSE '.' END;
    END IF;
  END LOOP;
  RETURN misses;
END $$;
SELECT is(pg_temp.cap_misses(), '', 'past search_count_cap() the count no longer changes the plan, at every setting (a floor of 0 included)');
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '700'), ('search_hnsw_tuple_cost', '20'),
  ('search_hnsw_min_fraction', '0.003'), ('search_ef_search', '200'), ('search_max_scan_tuples', '50000')) AS x(k, v) WHERE key = x.k;
SELECT is(memoriesdb_internal.search_count_cap(1000000, 10), 20000::bigint,
  'at 1,000,000 with the floor calibrated to 0.003, tuple cost 20, ef 200: counted to 20,000 (sqrt(2 * 20 * 10 * 1,000,000)), not 6,000');
UPDATE memoriesdb.config SET value = '1e20' WHERE key = 'search_hnsw_tuple_cost';
SELECT is(memoriesdb_internal.search_count_cap(1000000, 10), 700::bigint,
  'a tuple cost that rules the index out: counted only to search_exact_max (no overflow, no count that could not change the plan)');
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '1000'), ('search_hnsw_tuple_cost', '10'),
  ('search_hnsw_min_fraction', '0.03'), ('search_ef_search', '100'), ('search_max_scan_tuples', '50000')) AS x(k, v) WHERE key = x.k;
-- the matching rows from a sample's counts (filter_matching()): the whole when the sample was, else the smoothed share
SELECT is(memoriesdb_internal.filter_matching(100, 7, 100, NULL), 7::double precision, 'a sample of all 100 visible rows, 7 passing: 7');
SELECT is(round(memoriesdb_internal.filter_matching(500, 0, 5000, NULL)::numeric, 2), 4.99,
  'none of 500 sampled of 5,000: 5000 * 0.5 / 501, a few rather than none');
SELECT is(memoriesdb_internal.filter_matching(500, 400, 5000, ARRAY[gen_random_uuid(), gen_random_uuid()]), 2::double precision,
  'at most the linked ids');

-- a table of 2,000: a 99% tenant (1,980), a grantee of 20 of its memories; 1% of the tenant's rows tagged rare
CREATE TEMP TABLE tenant AS SELECT memoriesdb.create_user('plan-big') AS big, memoriesdb.create_user('plan-small') AS small;
CREATE TEMP TABLE center AS
  SELECT c, array_agg(random() - 0.5 ORDER BY d)::real[] AS v FROM generate_series(1, 10) c, generate_series(1, 384) d GROUP BY c;
SET LOCAL session_replication_role = replica;   -- bulk fixture: no audit or queue rows
INSERT INTO memoriesdb.memories (owner_id, content, content_hash, metadata, embedding, embedding_model, created_at, created_by, updated_at, updated_by)
SELECT CASE WHEN i <= 1980 THEN t.big ELSE t.small END, 'p' || i, sha256(convert_to('p' || i, 'UTF8')),
       CASE WHEN i % 99 = 0 AND i <= 1980 THEN '{"tag": "rare"}' ELSE '{}' END::jsonb,
       public.l2_normalize((SELECT array_agg(ce.v[d] + (random() - 0.5) * 0.7 ORDER BY d) FROM generate_series(1, 384) d)::real[]::vector),
       'seeded', now(), t.big, now(), t.big
  FROM tenant t CROSS JOIN generate_series(1, 2000) AS i JOIN center ce ON ce.c = 1 + i % 10;
INSERT INTO memoriesdb.memory_grants (memory_id, grantee_id, owner_id, permission, created_at, created_by, updated_at)
SELECT m.id, t.small, t.big, 'read', now(), t.big, now()
  FROM tenant t JOIN memoriesdb.memories m ON m.owner_id = t.big ORDER BY m.content LIMIT 20;
-- the index plan reads the active model's vectors in embeddings (its HNSW index), as a worker stores them
INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding, created_at, updated_at)
SELECT m.id, em.id, m.content_hash, m.embedding, now(), now() FROM memoriesdb.memories AS m, memoriesdb.embedding_models AS em
 WHERE m.embedding_model = 'seeded' AND em.state = 'active';
SET LOCAL session_replication_role = origin;
ANALYZE memoriesdb.memories;
ANALYZE memoriesdb.memory_grants;
ANALYZE memoriesdb.embeddings;
SELECT big, small FROM tenant \gset
SELECT public.l2_normalize((SELECT array_agg(ce.v[d] ORDER BY d) FROM generate_series(1, 384) d)::real[]::vector)::text AS q
  FROM center ce WHERE c = 3 \gset
GRANT SELECT ON tenant TO memoriesdb_app;
-- a tuple cost of 5 and a floor of 100 put the boundary where a table of 2,000 shows both sides of it
UPDATE memoriesdb.config SET value = '5' WHERE key = 'search_hnsw_tuple_cost';
UPDATE memoriesdb.config SET value = '100' WHERE key = 'search_exact_max';

CREATE FUNCTION pg_temp.exact_ids(uid uuid, q vector, meta jsonb) RETURNS uuid[] LANGUAGE sql AS $$
  SELECT array_agg(id) FROM (SELECT m.id FROM memoriesdb.memories m
    WHERE m.owner_id = uid AND m.metadata @> meta ORDER BY (m.embedding <#> q) + 0 LIMIT 10) x
$$;
CREATE TEMP TABLE got (ids uuid[], plan text);
GRANT ALL ON got TO memoriesdb_app;

SELECT tests.act_as(:'big');
INSERT INTO got SELECT array_agg(id), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10);
SELECT tests.clear_context();
SELECT alike((SELECT plan FROM got), 'hnsw visible=1980 %', 'the 99% tenant takes the index plan (reported in memoriesdb.search_plan)');
SELECT unalike((SELECT plan FROM got), '%-> exact', '... which finds k rows itself (no fallback to the exact plan)');
SELECT is(cardinality((SELECT ids FROM got)), 10, '... and gets k rows');
DELETE FROM got;

-- a filter keeping 1% of the tenant's rows (20): sampled, the index plan is refused
SELECT tests.act_as(:'big');
INSERT INTO got SELECT array_agg(id ORDER BY similarity DESC), current_setting('memoriesdb.search_plan')
  FROM memoriesdb.search(:'q', 10, '{"metadata": {"tag": "rare"}}');
SELECT tests.clear_context();
SELECT alike((SELECT plan FROM got), 'exact visible=1980 matching=% total=%',
  'the same tenant with a 1% metadata filter: exact, from the sampled selectivity');
SELECT cmp_ok((SELECT split_part(split_part(plan, 'matching=', 2), ' ', 1)::int FROM got), '<', 60,
  '... the sample puts the matching rows near 20 (of 1,980)');
SELECT is((SELECT ids FROM got), pg_temp.exact_ids(:'big', :'q', '{"tag": "rare"}'),
  '... and returns the 10 nearest of the 20 matching rows, as the exact scan orders them');
DELETE FROM got;

-- the small tenant: owns 20, holds grants on 20 of big's: 40 visible of 2,000 (2%), exact
SELECT tests.act_as(:'small');
INSERT INTO got SELECT array_agg(id), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10);
SELECT tests.clear_context();
SELECT alike((SELECT plan FROM got), 'exact visible=40 %', 'a tenant owning 20 and seeing 20 shared memories: 40 visible, exact');
-- the exact plan computes each visible row's distance once: the sort key is the column it returns (ordered by the
-- distance and returning its negation, with min_similarity tested on it too, it was computed two or three times a row)
SET LOCAL track_functions = 'all';   -- counts the C function behind <#> in this transaction
CREATE FUNCTION pg_temp.distance_calls() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(pg_stat_get_xact_function_calls('public.vector_negative_inner_product(public.vector, public.vector)'::regprocedure), 0)
$$;
SELECT pg_temp.distance_calls() AS calls_before \gset
SELECT tests.act_as(:'small');
SELECT count(*) FROM memoriesdb.search(:'q', 10) \gset searched_
SELECT tests.clear_context();
SELECT is(pg_temp.distance_calls() - :calls_before, 40::bigint, 'the exact plan computes the distance of each of the 40 visible rows once');
SELECT pg_temp.distance_calls() AS calls_before \gset
SELECT tests.act_as(:'small');
SELECT count(*) FROM memoriesdb.search(:'q', 10, '{}', -1) \gset searched_
SELECT tests.clear_context();
SELECT is(pg_temp.distance_calls() - :calls_before, 40::bigint, '... and with min_similarity, once too');
SELECT tests.act_as(:'big');
INSERT INTO got SELECT array_agg(id), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10, '{"scope": "shared"}');
SELECT tests.clear_context();
SELECT alike((SELECT plan FROM got ORDER BY plan LIMIT 1), 'exact visible=0 %', 'scope shared counts the grants only (none for the owner)');
-- the exact plan ranks the caller's own rows and its grants' each apart, k of each, and merges them: the answer is
-- the k nearest of all it may see (here the small tenant's 20 and its 20 grants' rows both among them)
DELETE FROM got;
SELECT tests.act_as(:'small');
INSERT INTO got SELECT array_agg(id ORDER BY similarity DESC, id), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10);
SELECT tests.clear_context();
SELECT is((SELECT ids FROM got),
          (SELECT array_agg(id ORDER BY d, id) FROM (
             SELECT m.id, (m.embedding <#> :'q') + 0 AS d FROM memoriesdb.memories m
              WHERE m.owner_id = :'small' OR m.id IN (SELECT memory_id FROM memoriesdb.memory_grants WHERE grantee_id = :'small')
              ORDER BY 2, 1 LIMIT 10) x),
  'the exact plan: the 10 nearest of the caller''s own rows and its grants'' together');
SELECT is((SELECT count(DISTINCT m.owner_id) FROM got, memoriesdb.memories m WHERE m.id = ANY (got.ids)), 2::bigint,
  '... (its own rows and its grants'' both among them)');
-- and each branch hands up k rows, not every visible row: over visible_memories()' UNION ALL the whole rows of all of
-- them rose through a Subquery Scan, an Append and a Result to one sort; a scope filter rules a branch out for the
-- whole query (a one-time filter: the branch's scan never runs). The plans as the superuser prepares them (generic)
CREATE FUNCTION pg_temp.exact_plan(uid uuid, scope text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  found text := '';
BEGIN
  SET LOCAL plan_cache_mode = force_generic_plan;   -- as vector_ranking() plans it
  PREPARE pg_temp_exact2(public.vector, uuid, text) AS
    SELECT * FROM memoriesdb_internal.exact_ranking($1, 10, $2, NULL, $3, NULL, NULL, NULL, NULL);
  FOR line IN EXECUTE format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE pg_temp_exact2(%L, %L, %L)',
                             tests.axis(1)::text, uid, scope) LOOP
    found := found || line || E'\n';
  END LOOP;
  DEALLOCATE pg_temp_exact2;
  RESET plan_cache_mode;
  RETURN found;
END $$;
-- (the rows each branch handed up: at most k, fewer when the merge above stopped early)
SELECT cmp_ok(substring(pg_temp.exact_plan(:'big', NULL) FROM '"\*SELECT\* 1" \(actual rows=(\d+)')::int, '<=', 10,
  'the exact plan of a 1,980-memory tenant: at most k rows rise from its own rows'' branch, not 1,980');
SELECT cmp_ok(greatest(substring(pg_temp.exact_plan(:'small', NULL) FROM '"\*SELECT\* 1" \(actual rows=(\d+)')::int,
                       substring(pg_temp.exact_plan(:'small', NULL) FROM '"\*SELECT\* 2" \(actual rows=(\d+)')::int), '<=', 10,
  '... and from each of a grantee''s branches (20 own rows, 20 granted), at most k each');
SELECT ok(pg_temp.exact_plan(:'small', 'shared') ~ '''shared''::text\)\)\n\s*->  [^\n]*never executed',
  '... with scope shared its own rows are never read');
SELECT ok(pg_temp.exact_plan(:'small', 'own') ~ '''own''::text\)\)\n\s*->  [^\n]*never executed',
  '... with scope own its grants never');


-- a filtered caller with more than ten samples' worth of rows is sampled before its rows are counted up to the cap
-- (search_count_cap()): a filter whose sampled share is below search_hnsw_min_fraction makes the plan exact whatever
-- the count, which is then spared. Here the cap is 200 (twice 0.05 of 2,000, and sqrt(2 * 1 * 10 * 2,000) at a tuple
-- cost of 1), ten samples of 19 are 190; a tenant of 300 the statistics do not know yet, none of its rows tagged rare
-- (0.5 / 20 < 0.05)
DELETE FROM got;
UPDATE memoriesdb.config SET value = '0.05' WHERE key = 'search_hnsw_min_fraction';
UPDATE memoriesdb.config SET value = '1' WHERE key = 'search_hnsw_tuple_cost';
UPDATE memoriesdb.config SET value = '19' WHERE key = 'search_filter_sample';
SELECT memoriesdb.create_user('plan-new') AS newcomer \gset
SET LOCAL session_replication_role = replica;
INSERT INTO memoriesdb.memories (owner_id, content, content_hash, metadata, embedding, embedding_model, created_at, created_by, updated_at, updated_by)
SELECT :'newcomer', 'n' || i, sha256(convert_to('n' || i, 'UTF8')), '{}',
       public.l2_normalize((SELECT array_agg(ce.v[d] + (random() - 0.5) * 0.7 ORDER BY d) FROM generate_series(1, 384) d)::real[]::vector),
       'seeded', now(), :'newcomer', now(), :'newcomer'
  FROM generate_series(1, 300) AS i JOIN center ce ON ce.c = 1 + i % 10;
INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding, created_at, updated_at)
SELECT m.id, em.id, m.content_hash, m.embedding, now(), now() FROM memoriesdb.memories AS m, memoriesdb.embedding_models AS em
 WHERE m.owner_id = :'newcomer' AND em.state = 'active';
SET LOCAL session_replication_role = origin;
SELECT tests.act_as(:'newcomer');
INSERT INTO got SELECT array_agg(id), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10, '{"metadata": {"tag": "rare"}}');
SELECT tests.clear_context();
SELECT alike((SELECT plan FROM got), 'exact visible=191 matching=%',
  'a selective filter, sampled first: exact, its rows counted only past ten samples (191: "more than 190"), not up to the cap');
SELECT is((SELECT ids FROM got), NULL, '... and the exact answer (none of its rows passes)');
DELETE FROM got;
SELECT tests.act_as(:'newcomer');
INSERT INTO got SELECT array_agg(id), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10, '{"metadata": {}}');
SELECT tests.clear_context();
SELECT cmp_ok((SELECT split_part(split_part(plan, 'visible=', 2), ' ', 1)::int FROM got), '>', 200,
  'a filter that keeps every row (share at or above search_hnsw_min_fraction): counted up to the cap (200), which may decide');
SELECT is(cardinality((SELECT ids FROM got)), 10, '... and k rows');
DELETE FROM got;

-- with no floor at all (search_exact_max 0, search_hnsw_min_fraction 0) the caller is still counted far enough to
-- take the index: the count stopped at 2 * 0 * total and every search was exact
UPDATE memoriesdb.config SET value = v::jsonb FROM (VALUES ('search_exact_max', '0'), ('search_hnsw_tuple_cost', '1'),
  ('search_hnsw_min_fraction', '0')) AS x(k, v) WHERE key = x.k;
SELECT tests.act_as(:'newcomer');
INSERT INTO got SELECT array_agg(id), current_setting('memoriesdb.search_plan') FROM memoriesdb.search(:'q', 10);
SELECT tests.clear_context();
SELECT alike((SELECT plan FROM got), 'hnsw %', 'no floor: a 300-memory tenant takes the index, counted far enough (to search_count_cap())');
SELECT unalike((SELECT plan FROM got), '%-> exact', '... which finds its k rows itself');
SELECT is(cardinality((SELECT ids FROM got)), 10, '... and k rows');
DELETE FROM got;

-- the exact plan reads a row's created_at only for a filter with dates (a plan made once for every filter tests what
-- it names on every row it passes, and a row's created_at lies past its ~2 KB vector): vector_ranking() passes the
-- dates as NULL constants otherwise, which the inlined exact_ranking() folds away. Its plan as vector_ranking()'s
-- statements are planned (generic: parameters for the rest)
CREATE FUNCTION pg_temp.filters_of(dates text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  found text := '';
BEGIN
  SET LOCAL plan_cache_mode = force_generic_plan;
  EXECUTE format('PREPARE pg_temp_exact(public.vector, uuid, jsonb, timestamptz) AS
    SELECT * FROM memoriesdb_internal.exact_ranking($1, 10, $2, $3, NULL, %s, NULL, NULL, NULL)', dates);
  FOR line IN EXECUTE format('EXPLAIN (VERBOSE) EXECUTE pg_temp_exact(%L, %L, %L, NULL)', tests.axis(1)::text,
                             gen_random_uuid(), '{"tag": "rare"}') LOOP
    IF line LIKE '%Filter:%' OR line LIKE '%Function Scan%' THEN found := found || line || E'\n'; END IF;
  END LOOP;
  DEALLOCATE pg_temp_exact;
  RETURN found;
END $$;
SELECT unalike(pg_temp.filters_of('NULL'), '%created_at%', 'the exact plan without dates never tests created_at');
SELECT unalike(pg_temp.filters_of('NULL'), '%Function Scan%', '... exact_ranking() is inlined (its body planned with the caller''s values)');
SELECT alike(pg_temp.filters_of('$4'), '%created_at > $4%', 'with a date, it does');
SELECT ok((SELECT prosrc FROM pg_proc WHERE oid = 'memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)'::regprocedure)
          LIKE '%IF f_after IS NULL AND f_before IS NULL THEN%exact_ranking(q, k, uid, f_meta, f_scope, NULL, NULL, linked, min_similarity)%',
  '... and vector_ranking() calls it so for a filter without dates');

SELECT * FROM finish();
ROLLBACK;
