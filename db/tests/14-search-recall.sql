-- Recall of search() against exact search over what each tenant may see, on fixed
-- seeded clustered vectors: a small tenant among many, and a large tenant on the
-- HNSW plan. (Latency is measured in bench/search.py, never asserted here.)
BEGIN;
SELECT plan(7);
SELECT setseed(0.42);

-- 40 tenants: one large (1,500 memories), one small (12), the rest 60 each
CREATE TEMP TABLE tenant AS
  SELECT n, memoriesdb.create_user('recall' || n) AS id, CASE n WHEN 1 THEN 1500 WHEN 2 THEN 12 ELSE 60 END AS size
    FROM generate_series(1, 40) AS n;
CREATE TEMP TABLE center AS
  SELECT c, array_agg(random() - 0.5 ORDER BY d)::real[] AS v FROM generate_series(1, 25) c, generate_series(1, 384) d GROUP BY c;
SET LOCAL session_replication_role = replica;   -- bulk fixture: no audit or queue rows for 4,000 memories
INSERT INTO memoriesdb.memories (owner_id, content, content_hash, embedding, embedding_model, created_at, created_by, updated_at, updated_by)
SELECT t.id, 'r', sha256('r'),
       public.l2_normalize((SELECT array_agg(ce.v[d] + (random() - 0.5) * 0.7 ORDER BY d) FROM generate_series(1, 384) d)::real[]::vector),
       'seeded', now(), t.id, now(), t.id
  FROM tenant t CROSS JOIN LATERAL generate_series(1, t.size) AS i
  JOIN center ce ON ce.c = 1 + (hashtext(t.n || '-' || i) & 2147483647) % 25;
SET LOCAL session_replication_role = origin;
-- the large-caller plan reads the active model's vectors in embeddings (its HNSW index), as a worker stores them
INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding)
SELECT m.id, em.id, m.content_hash, m.embedding FROM memoriesdb.memories AS m, memoriesdb.embedding_models AS em
 WHERE m.embedding_model = 'seeded' AND em.state = 'active';
ANALYZE memoriesdb.memories;
CREATE TEMP TABLE query AS
  SELECT q, public.l2_normalize((SELECT array_agg(ce.v[d] + (random() - 0.5) * 0.7 ORDER BY d) FROM generate_series(1, 384) d)::real[]::vector) AS v
    FROM generate_series(1, 20) q JOIN center ce ON ce.c = 1 + q % 25;
GRANT SELECT ON tenant, query TO memoriesdb_app;

CREATE FUNCTION pg_temp.recall(tenant_n int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
  uid uuid := (SELECT id FROM tenant WHERE n = tenant_n);
  total numeric := 0;
  r record;
  got uuid[]; truth uuid[];
BEGIN
  FOR r IN SELECT * FROM query LOOP
    PERFORM tests.act_as(uid);
    SELECT array_agg(s.id) INTO got FROM memoriesdb.search(r.v, 10) AS s;
    PERFORM tests.clear_context();
    SELECT array_agg(m.id) INTO truth FROM (SELECT id FROM memoriesdb.memories WHERE owner_id = uid
                                             ORDER BY (embedding <#> r.v) + 0 LIMIT 10) m;
    total := total + (SELECT count(*) FROM unnest(got) g WHERE g = ANY (truth))::numeric / cardinality(truth);
  END LOOP;
  RETURN total / (SELECT count(*) FROM query);
END $$;

SELECT cmp_ok(pg_temp.recall(2), '>=', 0.95, 'small tenant (12 of 4,000): recall@10 >= 0.95 (exact plan)');
SELECT cmp_ok(pg_temp.recall(1), '>=', 0.95, 'large tenant: recall@10 >= 0.95 (the plan search() chooses)');
UPDATE memoriesdb.config SET value = '100' WHERE key = 'search_exact_max';
UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_hnsw_tuple_cost';   -- the index plan for the large tenant
SET LOCAL enable_seqscan = off;   -- on 4,000 rows the planner would sort instead: make it use the HNSW index
-- HNSW is approximate and its graph is randomised: this asserts the plan works (no
-- short or foreign lists) with a margin; bench/search.py measures 0.98-1.0 at 100,000
SELECT diag('HNSW plan recall@10: ' || round(pg_temp.recall(1), 3));
SELECT cmp_ok(pg_temp.recall(1), '>=', 0.90, 'large tenant on the HNSW plan with iterative scan: recall@10 >= 0.90');
-- with no filter the index plan reads embeddings alone (their policy is the only condition, no join with memories);
-- with a filter that keeps every row ({"scope": "all"}) it joins memories: the same lists, the caller's own rows only
CREATE TEMP TABLE both_plans AS SELECT q.q, NULL::uuid[] AS plain, NULL::uuid[] AS joined, NULL::text AS plan FROM query AS q;
GRANT ALL ON both_plans TO memoriesdb_app;
DO $$
DECLARE r record;
BEGIN
  PERFORM tests.act_as((SELECT id FROM tenant WHERE n = 1));
  FOR r IN SELECT * FROM query LOOP
    UPDATE both_plans SET plain = (SELECT array_agg(s.id) FROM memoriesdb.search(r.v, 10) AS s),
                          plan = current_setting('memoriesdb.search_plan'),
                          joined = (SELECT array_agg(s.id) FROM memoriesdb.search(r.v, 10, '{"scope": "all"}') AS s)
     WHERE q = r.q;
  END LOOP;
  PERFORM tests.clear_context();
END $$;
SELECT is((SELECT count(*) FROM both_plans WHERE plan LIKE 'hnsw%' AND plan NOT LIKE '%exact'), 20::bigint,
          'every unfiltered search of the large tenant took the index plan');
SELECT is((SELECT count(*) FROM both_plans WHERE plain IS DISTINCT FROM joined OR cardinality(plain) <> 10), 0::bigint,
          'index plan: no filter (embeddings alone) and {"scope": "all"} (joined with memories) give the same 10 rows');
SELECT is((SELECT count(*) FROM both_plans AS b, unnest(b.plain) AS i JOIN memoriesdb.memories AS m ON m.id = i
            WHERE m.owner_id <> (SELECT id FROM tenant WHERE n = 1)), 0::bigint,
          'index plan with no filter: only the caller''s own memories');
RESET enable_seqscan;
SELECT cmp_ok(pg_temp.recall(3), '>=', 0.95, 'a 60-memory tenant stays exact and complete (recall 1 expected)');

SELECT * FROM finish();
ROLLBACK;
