-- Verify memoriesdb:users on pg
BEGIN;
SELECT 'memoriesdb_internal.require_user()'::regprocedure;
SELECT 'memoriesdb.create_user(text, text)'::regprocedure;
SELECT 'memoriesdb.create_api_key(uuid)'::regprocedure;
SELECT 'memoriesdb.revoke_api_key(text)'::regprocedure;
SELECT 'memoriesdb.authenticate(text)'::regprocedure;
ROLLBACK;
