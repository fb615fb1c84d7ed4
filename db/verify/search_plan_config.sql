-- Verify memoriesdb:search_plan_config on pg
BEGIN;
SELECT 1 / (count(*) = 5)::int FROM memoriesdb.config
 WHERE key IN ('search_hnsw_tuple_cost', 'search_hnsw_min_fraction', 'search_filter_sample', 'search_hnsw_m', 'search_hnsw_ef_construction');
ROLLBACK;
