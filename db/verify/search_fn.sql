-- Verify memoriesdb:search_fn on pg
BEGIN;
SELECT 'memoriesdb_internal.check_query_vector(public.vector)'::regprocedure;
SELECT 'memoriesdb_internal.check_search_filter(jsonb)'::regprocedure;
SELECT 'memoriesdb_internal.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[])'::regprocedure,
       'memoriesdb_internal.filter_holds(memoriesdb.memories, jsonb, text, timestamptz, timestamptz, uuid, uuid[])'::regprocedure;
SELECT 'memoriesdb_internal.linked_ids(jsonb)'::regprocedure;
SELECT 'memoriesdb_internal.visible_memories(uuid)'::regprocedure;
SELECT 'memoriesdb_internal.visible_count(bigint)'::regprocedure;
SELECT 'memoriesdb_internal.query_fingerprint(text, public.vector, integer, jsonb, text)'::regprocedure;
SELECT 'memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)'::regprocedure;
SELECT 'memoriesdb.search(public.vector, integer, jsonb, real)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.search(public.vector, integer, jsonb, real)'::regprocedure;
SELECT 1/(strpos(prosrc, 'statement_timestamp()') > 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.visible_memories(uuid)'::regprocedure;
ROLLBACK;
