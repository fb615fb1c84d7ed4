-- Verify memoriesdb:memory_graph on pg
BEGIN;
SELECT 'memoriesdb_internal.visible_to(uuid, uuid)'::regprocedure;
SELECT 'memoriesdb_internal.check_traversal(integer, text[], text)'::regprocedure;
SELECT 'memoriesdb.neighbors(uuid, integer, text[], text)'::regprocedure;
SELECT 'memoriesdb.path(uuid, uuid, integer)'::regprocedure;
SELECT 'memoriesdb.run_vindexing(text)'::regprocedure;
SELECT 1/(strpos(prosrc, 'vindexing_lock') > 0 AND strpos(prosrc, 'pg_try_advisory') = 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.run_vindexing(text)'::regprocedure;
ROLLBACK;
