-- Verify memoriesdb:api_only_content_reads on pg
BEGIN;
SELECT 1/(NOT has_column_privilege('memoriesdb_app', 'memoriesdb.memories', 'content', 'select'))::int;
SELECT 1/has_column_privilege('memoriesdb_app', 'memoriesdb.memories', 'owner_id', 'select')::int;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.vector_ranking(public.vector, integer, jsonb, real)', 'execute'))::int;
SELECT 1/count(*) FROM pg_catalog.pg_proc
 WHERE oid = 'memoriesdb.recall(uuid)'::regprocedure AND prosecdef AND proowner = 'memoriesdb_reader'::regrole;
SELECT 1/(NOT rolbypassrls)::int FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_reader';
ROLLBACK;
