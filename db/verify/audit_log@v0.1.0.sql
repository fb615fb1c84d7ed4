-- Verify memoriesdb:audit_log on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb.audit_log'::regclass, 'memoriesdb.audit_seals'::regclass)
   AND relrowsecurity AND relforcerowsecurity HAVING count(*) = 2;
SELECT 1/count(*) FROM pg_catalog.pg_trigger
 WHERE tgrelid = 'memoriesdb.audit_log'::regclass AND tgname IN ('append_only', 'seal', 'hash_row') HAVING count(*) = 3;
SELECT 1/(NOT has_table_privilege('memoriesdb_app', 'memoriesdb.audit_log', 'insert'))::int;
SELECT 1/has_function_privilege('memoriesdb_auditor', 'memoriesdb.verify_audit_chain()', 'execute')::int;
ROLLBACK;
