-- Verify memoriesdb:grant_expiry_clock on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_policies
 WHERE schemaname = 'memoriesdb' AND policyname = 'memories_visible' AND qual LIKE '%statement_timestamp()%';
ROLLBACK;
