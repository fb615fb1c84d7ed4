-- Verify memoriesdb:audit_log on pg
BEGIN;
SELECT 'memoriesdb_internal.audit_canonical(memoriesdb.audit_log)'::regprocedure;
SELECT 'memoriesdb_internal.audit_hash_row()'::regprocedure;
SELECT 'memoriesdb_internal.refuse_change()'::regprocedure;
SELECT 'memoriesdb_internal.audit_seal_hash(memoriesdb.audit_seals)'::regprocedure;
SELECT 'memoriesdb_internal.audit_genesis()'::regprocedure;
SELECT 'memoriesdb_internal.audit_seal_now(xid8)'::regprocedure;
SELECT 'memoriesdb_internal.audit_seal()'::regprocedure;
SELECT 'memoriesdb_internal.audit_strip(jsonb)'::regprocedure;
SELECT 'memoriesdb_internal.audit_row()'::regprocedure;
SELECT 'memoriesdb.verify_audit_chain()'::regprocedure;
SELECT 'memoriesdb.audit_head()'::regprocedure;
SELECT 1/(strpos(prosrc, 'audit_seal_lock') > 0 AND strpos(prosrc, 'pg_advisory') = 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.audit_seal_now(xid8)'::regprocedure;
SELECT 1/(NOT memoriesdb_internal.audit_strip('{"content": "x", "content_trgm": "x", "content_tsv": "x"}') ? 'content_trgm')::int;
ROLLBACK;
