-- Revert memoriesdb:memory_graph from pg
BEGIN;
DROP FUNCTION memoriesdb.run_vindexing(text);
DROP FUNCTION memoriesdb.path(uuid, uuid, integer);
DROP FUNCTION memoriesdb.neighbors(uuid, integer, text[], text);
DROP FUNCTION memoriesdb.check_traversal(integer, text[], text);
DROP FUNCTION memoriesdb.visible_to(uuid, uuid);
DELETE FROM memoriesdb.config WHERE key IN ('graph_max_depth', 'graph_max_rows');
DROP MATERIALIZED VIEW memoriesdb.memory_graph;
COMMIT;
