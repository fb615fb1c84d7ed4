-- Deploy memoriesdb:search_plan_config to pg
-- requires: config
-- requires: search_fn@v0.4.0
-- Settings of search()'s plan choice (issue 16; memoriesdb_internal.search_plan(), search_fn.sql). Run once.
-- The values are derived from bench/search.py's measurements (README, "Search plans").
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('search_hnsw_tuple_cost', '20', 'search(): the cost of one tuple of the HNSW index scan, in rows of the exact plan (measured by bench/search.py on the active model''s index on embeddings: 19-32 at 100,000 and 1,000,000; 7 was measured on memories.embedding''s own index and let a 1% tenant of 1,000,000 take the index at 1.9x the exact plan''s cost, recall 0.90); 0 makes the index win whenever the other rules allow it'),
  ('search_hnsw_min_fraction', '0.03', 'search(): the smallest share of the table (the caller''s rows passing its filter) for which the HNSW plan is considered: below it its recall@10 falls under 0.95 (bench/search.py)'),
  ('search_filter_sample', '500', 'search(): how many of the caller''s rows are sampled to estimate a filter''s selectivity (only when it could change the plan)'),
  ('search_hnsw_m', '32', 'the m (links per node) of each model''s HNSW index, when it is built (create_model_index(): add_model(), activation); an index keeps what it was built with. 32 with ef_construction 128 reached recall@10 0.99 at 1,000,000 memories where pgvector''s 16 and 64 stayed at 0.94 (bench/results/search_1m.md)'),
  ('search_hnsw_ef_construction', '128', 'the ef_construction (candidate list while building) of each model''s HNSW index, when it is built; see search_hnsw_m');
UPDATE memoriesdb.config
   SET value = '700',
       description = 'search(): callers who can see at most this many memories always get the exact plan, uncounted past it (above it, the cost model of search_hnsw_tuple_cost and search_hnsw_min_fraction decides; it can never pick the index below search_hnsw_tuple_cost * search_ef_search)'
 WHERE key = 'search_exact_max' AND value = '20000';

COMMIT;
