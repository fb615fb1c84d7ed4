-- Verify memoriesdb:api_sharing on pg
BEGIN;
SELECT 'memoriesdb_internal.require_other_user(uuid, uuid, text)'::regprocedure;
SELECT 'memoriesdb.share(uuid, uuid, text, timestamp with time zone)'::regprocedure;
SELECT 'memoriesdb.unshare(uuid, uuid)'::regprocedure;
SELECT 'memoriesdb.transfer(uuid, uuid, text)'::regprocedure;
SELECT 1/(strpos(prosrc, 'statement_timestamp()') > 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.share(uuid, uuid, text, timestamptz)'::regprocedure;
SELECT 'memoriesdb.list_grants(uuid)'::regprocedure;
ROLLBACK;
