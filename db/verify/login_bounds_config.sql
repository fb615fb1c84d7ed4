-- Verify memoriesdb:login_bounds_config on pg
BEGIN;
SELECT 1/count(*) FROM memoriesdb.config WHERE key = 'login_bounds' AND value ? 'memoriesdb_app';
ROLLBACK;
