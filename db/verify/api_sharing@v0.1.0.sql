-- Verify memoriesdb:api_sharing on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.share(uuid, uuid, text, timestamptz)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.transfer(uuid, uuid, text)', 'execute')::int;
ROLLBACK;
