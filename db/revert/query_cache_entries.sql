-- Revert memoriesdb:query_cache_entries from pg
-- Drops the cache (a cache: nothing is lost but hits) and its key and settings.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.config WHERE key IN ('query_cache_max_entries', 'query_cache_max_dimensions', 'query_cache_max_query_chars');
DROP TABLE memoriesdb_internal.query_cache, memoriesdb_internal.query_cache_key;
COMMIT;
