-- Revert memoriesdb:query_cache from pg
-- A new change: its functions go (privileges.sql, deployed after it, is reverted first and takes its grants with it).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP FUNCTION memoriesdb.clear_query_cache(text);
DROP FUNCTION memoriesdb.cache_query_vector(text, text, public.vector);
DROP FUNCTION memoriesdb.cached_query_vector(text, text);
DROP FUNCTION memoriesdb_internal.query_cache_digest(uuid, text, text);
DROP FUNCTION memoriesdb_internal.normalise_query(text);
COMMIT;
