-- Revert memoriesdb:input_limits from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.config WHERE key IN ('max_metadata_bytes', 'max_edge_metadata_bytes', 'max_edge_type_description_chars');
COMMIT;
