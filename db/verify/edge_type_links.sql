-- Verify memoriesdb:edge_type_links on pg
BEGIN;
SELECT edge_type_id, links FROM memoriesdb_internal.edge_type_links WHERE false;
SELECT 1 / count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb_internal.edge_type_links'::regclass AND relrowsecurity AND relforcerowsecurity;
ROLLBACK;
