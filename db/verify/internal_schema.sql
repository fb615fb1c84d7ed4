-- Verify memoriesdb:internal_schema on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_namespace
 WHERE nspname = 'memoriesdb_internal' AND nspowner = 'memoriesdb_owner'::regrole;
SELECT 'memoriesdb_internal.raise_not_found(text, uuid)'::regprocedure;
SELECT 'memoriesdb_internal.audit_row()'::regprocedure;
ROLLBACK;
