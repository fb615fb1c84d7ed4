-- Verify memoriesdb:context_checked_setting on pg
BEGIN;
SELECT 1/has_parameter_privilege('memoriesdb_owner', 'memoriesdb.context_checked', 'SET')::int;
ROLLBACK;
