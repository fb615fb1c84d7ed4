-- Verify memoriesdb:query_cache_entries on pg
BEGIN;
SELECT owner_id, digest, model, vector, used_at, created_at FROM memoriesdb_internal.query_cache WHERE false;
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb_internal.query_cache'::regclass, 'memoriesdb_internal.query_cache_key'::regclass)
   AND relrowsecurity AND relforcerowsecurity;
SELECT 1 / (count(*) = 1)::int FROM memoriesdb_internal.query_cache_key;
SELECT 1 / (count(*) = 3)::int FROM memoriesdb.config
 WHERE key IN ('query_cache_max_entries', 'query_cache_max_dimensions', 'query_cache_max_query_chars');
ROLLBACK;
