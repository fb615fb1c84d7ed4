-- Verify memoriesdb:memory_edges on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb.edge_types'::regclass, 'memoriesdb.memory_edges'::regclass)
   AND relrowsecurity AND relforcerowsecurity HAVING count(*) = 2;
SELECT 1/count(*) FROM memoriesdb.edge_types
 WHERE name IN ('derived_from', 'related_to', 'contradicts', 'supersedes', 'part_of') HAVING count(*) = 5;
ROLLBACK;
