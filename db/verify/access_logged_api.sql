-- Verify memoriesdb:access_logged_api on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.search(public.vector, integer, jsonb, real)', 'execute')::int;
SELECT 'memoriesdb.vector_ranking(public.vector, integer, jsonb, real)'::regprocedure;
SELECT 1/(strpos(pg_catalog.pg_get_functiondef('memoriesdb.recall(uuid)'::regprocedure), 'record_read') > 0)::int;
ROLLBACK;
