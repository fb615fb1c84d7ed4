-- Verify memoriesdb:ledger_locks on pg
BEGIN;
SELECT 1/(NOT has_table_privilege('memoriesdb_app', 'memoriesdb_internal.audit_seal_lock', 'UPDATE,DELETE,TRUNCATE'))::int;
SELECT 1/(NOT has_table_privilege('memoriesdb_worker', 'memoriesdb_internal.vindexing_lock', 'UPDATE,DELETE,TRUNCATE'))::int;
ROLLBACK;
