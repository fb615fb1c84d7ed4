-- Verify memoriesdb:vindexing_queue on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb.vindexing_schedule'::regclass, 'memoriesdb.vindexing_runs'::regclass)
   AND relrowsecurity AND relforcerowsecurity HAVING count(*) = 2;
SELECT 1/has_function_privilege('memoriesdb_worker', 'memoriesdb.vindexing_status()', 'execute')::int;
ROLLBACK;
