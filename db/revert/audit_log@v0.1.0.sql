-- Revert memoriesdb:audit_log from pg
BEGIN;
DROP FUNCTION memoriesdb.audit_head();
DROP FUNCTION memoriesdb.verify_audit_chain();
DROP FUNCTION memoriesdb.audit_row();
DROP FUNCTION memoriesdb.audit_strip(jsonb);
DROP FUNCTION memoriesdb.audit_canonical(memoriesdb.audit_log);
DROP FUNCTION memoriesdb.audit_seal_hash(memoriesdb.audit_seals);
DROP TABLE memoriesdb.audit_log;   -- DROP is neither DELETE nor TRUNCATE: the append-only triggers allow it
DROP TABLE memoriesdb.audit_seals;
DROP FUNCTION memoriesdb.audit_seal();
DROP FUNCTION memoriesdb.audit_seal_now(xid8);
DROP FUNCTION memoriesdb.audit_genesis();
DROP FUNCTION memoriesdb.refuse_change();
DROP FUNCTION memoriesdb.audit_hash_row();
COMMIT;
