-- Deploy memoriesdb:reader_policies to pg
-- requires: roles
-- requires: memory_edges
-- requires: memory_transfers
-- Run once. The read functions (recall, verify, provenance, search*) run as
-- memoriesdb_reader, which has no BYPASSRLS: the policies that show the
-- application what the context user may see bind the reader in the same way,
-- so a read function sees exactly what its caller may.
BEGIN;
ALTER POLICY memories_visible ON memoriesdb.memories TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_revisions_visible ON memoriesdb.memory_revisions TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_grants_parties ON memoriesdb.memory_grants TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_transfers_visible ON memoriesdb.memory_transfers TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY memory_edges_visible ON memoriesdb.memory_edges TO memoriesdb_app, memoriesdb_reader;
ALTER POLICY edge_types_read ON memoriesdb.edge_types TO memoriesdb_app, memoriesdb_reader;
COMMIT;
