-- Verify memoriesdb:api_graph on pg
BEGIN;
SELECT 'memoriesdb.create_edge_type(text, text, boolean, boolean)'::regprocedure;
SELECT 'memoriesdb_internal.reaches(uuid, uuid, text, boolean, uuid)'::regprocedure;
SELECT 'memoriesdb.link(uuid, uuid, text, real, jsonb)'::regprocedure;
SELECT 'memoriesdb.unlink(uuid)'::regprocedure;
-- link() serialises on the edge type's row, not on a (public) advisory lock
SELECT 1/(position('FOR NO KEY UPDATE' in prosrc) > 0 AND position('pg_advisory' in prosrc) = 0)::int
  FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.link(uuid, uuid, text, real, jsonb)'::regprocedure;
SELECT 'memoriesdb.list_edges(uuid)'::regprocedure, 'memoriesdb.list_edge_types()'::regprocedure;
ROLLBACK;
