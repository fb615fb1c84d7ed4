-- Verify memoriesdb:logins on pg
BEGIN;
SELECT 'memoriesdb.configure_login(name)'::regprocedure, 'memoriesdb.unbounded_logins()'::regprocedure;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.configure_login(name)', 'EXECUTE'))::int;
ROLLBACK;
