-- Verify memoriesdb:users on pg
BEGIN;
SELECT 'memoriesdb_internal.require_user()'::regprocedure;
SELECT 'memoriesdb.create_user(text, text)'::regprocedure;
SELECT 'memoriesdb.create_api_key(uuid)'::regprocedure;
SELECT 'memoriesdb.revoke_api_key(text)'::regprocedure;
SELECT 'memoriesdb.authenticate(text)'::regprocedure;
SELECT 'memoriesdb.create_api_key(uuid, timestamptz)'::regprocedure;
SELECT 'memoriesdb.api_keys_list()'::regprocedure;
SELECT 'memoriesdb.revoke_api_key(uuid)'::regprocedure;
SELECT 'memoriesdb_internal.issue_api_key(uuid, timestamptz)'::regprocedure;
SELECT 'memoriesdb_internal.login_is_admin()'::regprocedure;
SELECT 'memoriesdb_internal.check_auth_throttle(bytea)'::regprocedure;
SELECT 'memoriesdb_internal.record_auth_failure(bytea)'::regprocedure;
ROLLBACK;
