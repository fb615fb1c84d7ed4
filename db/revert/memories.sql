-- Revert memoriesdb:memories from pg
BEGIN;
REVOKE SELECT ON memoriesdb.audit_log FROM memoriesdb_app;
DROP POLICY audit_log_memory_owner ON memoriesdb.audit_log;
DROP TABLE memoriesdb.memory_revisions;
DROP TABLE memoriesdb.memories;
COMMIT;
