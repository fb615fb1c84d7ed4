-- Revert memoriesdb:memory_edges from pg
BEGIN;
DROP TABLE memoriesdb.memory_edges;
DROP TABLE memoriesdb.edge_types;
COMMIT;
