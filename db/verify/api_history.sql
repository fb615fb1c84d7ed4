-- Verify memoriesdb:api_history on pg
BEGIN;
SELECT 'memoriesdb_internal.require_custodian(uuid, timestamptz)'::regprocedure;
SELECT 1/(prosecdef AND proowner = 'memoriesdb_owner'::regrole AND provolatile = 'v')::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.who_could_read(uuid, timestamptz)'::regprocedure;
SELECT 1/(prosecdef AND proowner = 'memoriesdb_owner'::regrole AND provolatile = 'v')::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.recall_as_of(uuid, timestamptz)'::regprocedure;
-- both log their reads
SELECT 1/(position('log_read(''who_could_read''' in prosrc) > 0)::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.who_could_read(uuid, timestamptz)'::regprocedure;
SELECT 1/(position('log_read(''recall_as_of''' in prosrc) > 0)::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.recall_as_of(uuid, timestamptz)'::regprocedure;
ROLLBACK;
