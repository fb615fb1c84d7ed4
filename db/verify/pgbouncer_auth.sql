-- Verify memoriesdb:pgbouncer_auth on pg
BEGIN;
-- the lookup exists, runs as a superuser (it reads pg_shadow) with a pinned search_path, and PUBLIC cannot call it
SELECT 1/count(*) FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_roles AS o ON o.oid = p.proowner
 WHERE p.oid = 'memoriesdb_pgbouncer.user_lookup(text)'::regprocedure
   AND p.prosecdef AND o.rolsuper AND p.proconfig = ARRAY['search_path=pg_catalog, pg_temp']
   AND NOT has_function_privilege('public', p.oid, 'EXECUTE');
-- the lookup role is no superuser and bypasses nothing
SELECT 1/count(*) FROM pg_catalog.pg_roles
 WHERE rolname = 'memoriesdb_pgbouncer_auth' AND NOT (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication);
ROLLBACK;
