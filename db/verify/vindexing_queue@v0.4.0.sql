-- Verify memoriesdb:vindexing_queue on pg
BEGIN;
SELECT 'memoriesdb_internal.enqueue_vindexing()'::regprocedure;
SELECT 'memoriesdb.vindexing_status()'::regprocedure;
ROLLBACK;
