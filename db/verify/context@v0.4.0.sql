-- Verify memoriesdb:context on pg
BEGIN;
SELECT 'memoriesdb.current_user_id()'::regprocedure;
SELECT 'memoriesdb_internal.raise_not_found(text, uuid)'::regprocedure;
SELECT 'memoriesdb_internal.context_proof(text, bytea, bytea)'::regprocedure;
SELECT 'memoriesdb_internal.context_vouched_by()'::regprocedure;
SELECT 'memoriesdb.context_proven(text, text)'::regprocedure;
SELECT 'memoriesdb_internal.disclosed_user(uuid, uuid, uuid)'::regprocedure;
SELECT 1 / (p.proparallel = 'r')::int FROM pg_catalog.pg_proc AS p WHERE p.oid = 'memoriesdb.current_user_id()'::regprocedure;
SELECT 1 / (p.prosecdef AND p.proparallel = 'r')::int FROM pg_catalog.pg_proc AS p WHERE p.oid = 'memoriesdb.context_proven(text, text)'::regprocedure;
ROLLBACK;
