-- Deploy memoriesdb:ledger_locks to pg
-- requires: internal_schema
-- Run once. What the ledger serialises on. Advisory lock keys are public: any
-- login, even the worker, could take pg_advisory_lock(7379, 1) and stall every
-- tenant's commit forever. These tables hold no rows; the ledger takes table
-- locks on them, which only their owner may take (LOCK TABLE needs privileges
-- no client role has, and schema memoriesdb_internal is closed to clients).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb_internal.audit_seal_lock ();
COMMENT ON TABLE memoriesdb_internal.audit_seal_lock IS
  'No rows. audit_seal_now() holds an EXCLUSIVE lock on it from a transaction''s seal to the end of its commit: the one serialised step of auditing.';
CREATE TABLE memoriesdb_internal.vindexing_lock ();
COMMENT ON TABLE memoriesdb_internal.vindexing_lock IS
  'No rows. run_vindexing() takes an EXCLUSIVE lock on it (NOWAIT): one refresh of memory_graph at a time.';
ALTER TABLE memoriesdb_internal.audit_seal_lock ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE memoriesdb_internal.vindexing_lock ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

COMMIT;
