-- Verify memoriesdb:embedding_queue on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb.embedding_schedule'::regclass AND relrowsecurity AND relforcerowsecurity;
SELECT 1/has_function_privilege('memoriesdb_worker', 'memoriesdb.claim_embedding_jobs(integer, interval, text)', 'execute')::int;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.claim_embedding_jobs(integer, interval, text)', 'execute'))::int;
SELECT 1/(NOT has_table_privilege('memoriesdb_worker', 'memoriesdb.memories', 'select'))::int;
ROLLBACK;
