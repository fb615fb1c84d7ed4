-- Verify memoriesdb:search_text_fn on pg
BEGIN;
SELECT 'memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[])'::regprocedure;
SELECT 'memoriesdb_internal.text_ranking(text, integer, jsonb)'::regprocedure;
SELECT 'memoriesdb.search_text(text, integer, jsonb)'::regprocedure;
SELECT 'memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb_internal.text_ranking(text, integer, jsonb)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.search_text(text, integer, jsonb)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer)'::regprocedure;
ROLLBACK;
