-- Verify memoriesdb:row_stamps on pg
BEGIN;
SELECT 'memoriesdb_internal.stamp_row()'::regprocedure;
ROLLBACK;
