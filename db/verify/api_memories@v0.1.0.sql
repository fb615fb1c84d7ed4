-- Verify memoriesdb:api_memories on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.remember(text, jsonb)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.recall(uuid)', 'execute')::int;
SELECT 1/(NOT has_function_privilege('memoriesdb_worker', 'memoriesdb.remember(text, jsonb)', 'execute'))::int;
SELECT 1/(prosecdef AND proconfig IS NOT NULL)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.remember(text, jsonb)'::regprocedure;
-- (recall's SECURITY INVOKER is not checked here: api_only_content_reads makes it a definer owned by memoriesdb_reader)
ROLLBACK;
