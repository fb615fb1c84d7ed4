-- Revert memoriesdb:edge_type_links from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DROP TABLE memoriesdb_internal.edge_type_links;
COMMIT;
