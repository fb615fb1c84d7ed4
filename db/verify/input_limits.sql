-- Verify memoriesdb:input_limits on pg
BEGIN;
SELECT 1/(count(*) = 3)::int FROM memoriesdb.config
 WHERE key IN ('max_metadata_bytes', 'max_edge_metadata_bytes', 'max_edge_type_description_chars')
   AND jsonb_typeof(value) = 'number' AND value::numeric > 0;
ROLLBACK;
