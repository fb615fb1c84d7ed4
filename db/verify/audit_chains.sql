-- Verify memoriesdb:audit_chains on pg
BEGIN;

SELECT chain FROM memoriesdb.audit_log WHERE false;
SELECT chain, chain_seq, peers FROM memoriesdb.audit_seals WHERE false;
SELECT chain, chain_seq, seal_hash FROM memoriesdb_internal.audit_chain_heads WHERE false;
SELECT 1 / count(*) FROM memoriesdb_internal.ledger_identity;
SELECT 1 / count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb_internal.audit_chain_heads'::regclass AND relrowsecurity AND relforcerowsecurity;

ROLLBACK;
