-- Deploy memoriesdb:input_limits to pg
-- requires: config
-- Settings that bound what a client may store besides content (run once): memory
-- metadata, edge metadata and edge type descriptions. Without them one caller could
-- store megabytes where the other limits assume little (metadata is written again in
-- every revision and twice in the audit log; edge type descriptions are read by every
-- tenant). The API enforces them (api_memories.sql, api_graph.sql) with MDB05.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('max_metadata_bytes', '65536',
   'largest memory metadata accepted by remember() and revise(): bytes (UTF-8) of its JSON text as PostgreSQL prints it'),
  ('max_edge_metadata_bytes', '16384',
   'largest edge metadata accepted by link(): bytes (UTF-8) of its JSON text as PostgreSQL prints it'),
  ('max_edge_type_description_chars', '1000',
   'longest edge type description accepted by create_edge_type(), in characters (every tenant reads it)');

COMMIT;
