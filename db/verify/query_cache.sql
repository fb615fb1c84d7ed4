-- Verify memoriesdb:query_cache on pg
BEGIN;
SELECT 'memoriesdb_internal.normalise_query(text)'::regprocedure, 'memoriesdb_internal.query_cache_digest(uuid, text, text)'::regprocedure;
SELECT 1/(prosecdef AND proowner = 'memoriesdb_owner'::regrole AND provolatile = 'v')::int
  FROM pg_catalog.pg_proc WHERE oid IN ('memoriesdb.cached_query_vector(text, text)'::regprocedure,
                                        'memoriesdb.cache_query_vector(text, text, public.vector)'::regprocedure,
                                        'memoriesdb.clear_query_cache(text)'::regprocedure);
SELECT 1/(memoriesdb_internal.normalise_query(E' a \u00a0\t b ') = 'a b')::int;
ROLLBACK;
