-- Revert memoriesdb:search_plan_config from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.config WHERE key IN ('search_hnsw_tuple_cost', 'search_hnsw_min_fraction', 'search_filter_sample',
                                            'search_hnsw_m', 'search_hnsw_ef_construction');
UPDATE memoriesdb.config
   SET value = '20000',
       description = 'search(): callers who can see at most this many memories get an exact scan instead of the HNSW index'
 WHERE key = 'search_exact_max' AND value = '700';
COMMIT;
