-- Verify memoriesdb:users on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb.users'::regclass, 'memoriesdb.api_keys'::regclass)
   AND relrowsecurity AND relforcerowsecurity HAVING count(*) = 2;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.authenticate(text)', 'execute')::int;
SELECT 1/(NOT has_function_privilege('memoriesdb_worker', 'memoriesdb.create_user(text, text)', 'execute'))::int;
ROLLBACK;
