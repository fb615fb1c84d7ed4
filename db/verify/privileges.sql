-- Verify memoriesdb:privileges on pg
-- (db/tests/01-schema.sql compares every role's privileges with the list)
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.recall(uuid)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.who_could_read(uuid, timestamptz)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.recall_as_of(uuid, timestamptz)', 'execute')::int;
SELECT 1/(NOT has_schema_privilege('memoriesdb_app', 'memoriesdb_internal', 'usage'))::int;
SELECT 1/(NOT has_schema_privilege('memoriesdb_worker', 'memoriesdb_internal', 'usage'))::int;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb_internal.record_read(text, uuid[], bytea)', 'execute'))::int;
SELECT 1/(NOT has_column_privilege('memoriesdb_app', 'memoriesdb.memories', 'content', 'select'))::int;
SELECT 1/has_function_privilege('memoriesdb_worker', 'memoriesdb.claim_embedding_jobs(integer, interval, text)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_worker', 'memoriesdb.renew_embedding_leases(uuid[], uuid[], interval)', 'execute')::int;
SELECT 1/(NOT has_function_privilege('memoriesdb_app', 'memoriesdb.renew_embedding_leases(uuid[], uuid[], interval)', 'execute'))::int;
SELECT 1/has_function_privilege('memoriesdb_auditor', 'memoriesdb.verify_audit_chain()', 'execute')::int;
SELECT 1/(count(*) = 0)::int FROM pg_catalog.pg_proc AS p, aclexplode(p.proacl) AS a
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace) AND a.grantee = 0;
SELECT 1/has_function_privilege('memoriesdb_pgbouncer_auth', 'memoriesdb_pgbouncer.user_lookup(text)', 'execute')::int;
ROLLBACK;
