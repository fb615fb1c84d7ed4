-- Verify memoriesdb:config on pg
BEGIN;
SELECT 'memoriesdb.setting(text)'::regprocedure;
ROLLBACK;
