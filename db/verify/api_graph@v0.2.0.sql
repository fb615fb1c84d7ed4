-- Verify memoriesdb:api_graph on pg
BEGIN;
SELECT 'memoriesdb.create_edge_type(text, text, boolean, boolean)'::regprocedure;
SELECT 'memoriesdb_internal.reaches(uuid, uuid, text, boolean)'::regprocedure;
SELECT 'memoriesdb.link(uuid, uuid, text, real, jsonb)'::regprocedure;
SELECT 'memoriesdb.unlink(uuid)'::regprocedure;
ROLLBACK;
