-- Revert memoriesdb:identity from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP INDEX memoriesdb.access_log_auth_failures_by_prefix, memoriesdb.access_log_auth_failures_by_login;
-- before the DELETE below queues the audit log's deferred seal (no ALTER TABLE after that)
ALTER TABLE memoriesdb.audit_log DROP COLUMN vouched_by, DROP COLUMN login;
DELETE FROM memoriesdb.config WHERE key IN ('api_key_lifetime', 'auth_throttle');
ALTER TABLE memoriesdb.api_keys DROP COLUMN expires_at;
DROP TABLE memoriesdb_internal.context_key;

COMMIT;
