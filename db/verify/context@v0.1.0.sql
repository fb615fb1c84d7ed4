-- Verify memoriesdb:context on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.current_user_id()', 'execute')::int;
SELECT 1/(provolatile = 's')::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.current_user_id()'::regprocedure;
SELECT set_config('app.current_user', 'not-a-uuid', true);
SELECT 1/(memoriesdb.current_user_id() IS NULL)::int;
ROLLBACK;
