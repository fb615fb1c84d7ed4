-- Verify memoriesdb:extensions on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_extension
 WHERE extname IN ('uuid-ossp', 'pgcrypto', 'vector', 'pg_trgm') HAVING count(*) = 4;
SELECT 1/(string_to_array(extversion, '.')::int[] >= '{0,8}')::int FROM pg_catalog.pg_extension WHERE extname = 'vector';
ROLLBACK;
