-- Revert memoriesdb:reader_policies from pg
BEGIN;
ALTER POLICY memories_visible ON memoriesdb.memories TO memoriesdb_app;
ALTER POLICY memory_revisions_visible ON memoriesdb.memory_revisions TO memoriesdb_app;
ALTER POLICY memory_grants_parties ON memoriesdb.memory_grants TO memoriesdb_app;
ALTER POLICY memory_transfers_visible ON memoriesdb.memory_transfers TO memoriesdb_app;
ALTER POLICY memory_edges_visible ON memoriesdb.memory_edges TO memoriesdb_app;
ALTER POLICY edge_types_read ON memoriesdb.edge_types TO memoriesdb_app;
COMMIT;
