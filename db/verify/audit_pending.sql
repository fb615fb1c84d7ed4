-- Verify memoriesdb:audit_pending on pg
BEGIN;
SELECT chain, txid, created_at FROM memoriesdb_internal.audit_pending WHERE false;
SELECT 1 / count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb_internal.audit_pending'::regclass AND relrowsecurity AND relforcerowsecurity;
SELECT chain, txid, since FROM memoriesdb.audit_waiting WHERE false;
ROLLBACK;
