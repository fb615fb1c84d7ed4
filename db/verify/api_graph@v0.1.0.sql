-- Verify memoriesdb:api_graph on pg
BEGIN;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.link(uuid, uuid, text, real, jsonb)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.unlink(uuid)', 'execute')::int;
ROLLBACK;
