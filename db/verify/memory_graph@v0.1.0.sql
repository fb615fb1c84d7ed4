-- Verify memoriesdb:memory_graph on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_indexes WHERE schemaname = 'memoriesdb' AND indexname = 'memory_graph_edge_direction';
SELECT 1/(NOT has_table_privilege('memoriesdb_app', 'memoriesdb.memory_graph', 'select'))::int;
SELECT 1/has_function_privilege('memoriesdb_app', 'memoriesdb.neighbors(uuid, integer, text[], text)', 'execute')::int;
SELECT 1/has_function_privilege('memoriesdb_worker', 'memoriesdb.run_vindexing(text)', 'execute')::int;
ROLLBACK;
