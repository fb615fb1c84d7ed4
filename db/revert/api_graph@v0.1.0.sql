-- Revert memoriesdb:api_graph from pg
BEGIN;
DROP FUNCTION memoriesdb.unlink(uuid);
DROP FUNCTION memoriesdb.link(uuid, uuid, text, real, jsonb);
DROP FUNCTION memoriesdb.reaches(uuid, uuid, text, boolean);
DROP FUNCTION memoriesdb.create_edge_type(text, text, boolean, boolean);
COMMIT;
