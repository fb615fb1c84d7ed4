-- Verify memoriesdb:memories on pg
BEGIN;
SELECT 1/count(*) FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb.memories'::regclass, 'memoriesdb.memory_revisions'::regclass)
   AND relrowsecurity AND relforcerowsecurity HAVING count(*) = 2;
SELECT 1/(NOT has_table_privilege('memoriesdb_app', 'memoriesdb.memories', 'insert,update,delete'))::int;
SELECT 1/(atttypmod = memoriesdb.setting('embedding_dim')::int)::int FROM pg_catalog.pg_attribute
 WHERE attrelid = 'memoriesdb.memories'::regclass AND attname = 'embedding';
ROLLBACK;
