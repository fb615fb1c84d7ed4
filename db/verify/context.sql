-- Verify memoriesdb:context on pg
BEGIN;
SELECT 'memoriesdb.current_user_id()'::regprocedure;
SELECT 'memoriesdb_internal.raise_not_found(text, uuid)'::regprocedure;
SELECT 'memoriesdb_internal.context_vouched_by()'::regprocedure;
ROLLBACK;
