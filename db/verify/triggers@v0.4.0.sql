-- Verify memoriesdb:triggers on pg
BEGIN;
SELECT 1/(count(*) = 0)::int FROM pg_catalog.pg_class AS c
 WHERE c.relnamespace = 'memoriesdb'::regnamespace AND c.relkind = 'r'
   AND c.relname NOT IN ('audit_log', 'audit_seals', 'access_log', 'access_log_sink', 'access_refusal_bursts')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = c.oid AND t.tgname = 'stamp');
SELECT 1/count(*) FROM pg_catalog.pg_trigger WHERE tgname = 'seal' AND tgrelid = 'memoriesdb.audit_log'::regclass;
SELECT 1/count(*) FROM pg_catalog.pg_trigger WHERE tgname = 'text_index' AND tgrelid = 'memoriesdb.memories'::regclass;
ROLLBACK;
