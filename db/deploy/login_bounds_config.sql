-- Deploy memoriesdb:login_bounds_config to pg
-- requires: config
-- Run once. The time bounds every client login gets in this database (by
-- memoriesdb.configure_login(), logins.sql). A role's own settings never reach
-- the logins it is granted to, so they are kept here, per ledger role, and
-- applied to each login. Change them with UPDATE as the owner, then run
-- configure_login() again for each login (unbounded_logins() lists the ones
-- that differ).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('login_bounds', '{
     "memoriesdb_app":     {"statement_timeout": "30s",  "idle_in_transaction_session_timeout": "60s", "lock_timeout": "10s"},
     "memoriesdb_worker":  {"statement_timeout": "10min", "idle_in_transaction_session_timeout": "60s", "lock_timeout": "30s"},
     "memoriesdb_auditor": {"statement_timeout": "30min", "idle_in_transaction_session_timeout": "10min", "lock_timeout": "30s"}}',
   'per ledger role, the statement_timeout, idle_in_transaction_session_timeout and lock_timeout that configure_login() sets on each of its logins in this database (a COMMIT''s deferred triggers, the audit seal among them, are bounded by lock_timeout only)');
COMMIT;
