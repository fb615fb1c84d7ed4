-- Verify memoriesdb:row_stamps on pg
BEGIN;
SELECT 'memoriesdb.stamp_row()'::regprocedure;
ROLLBACK;
