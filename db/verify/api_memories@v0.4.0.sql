-- Verify memoriesdb:api_memories on pg
BEGIN;
SELECT 'memoriesdb_internal.check_content(text)'::regprocedure;
SELECT 'memoriesdb_internal.check_metadata(jsonb)'::regprocedure;
SELECT 'memoriesdb_internal.check_json_size(jsonb, text, text, text)'::regprocedure;
SELECT 1/(position('check_json_size' in prosrc) > 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.remember(text, jsonb)'::regprocedure;
SELECT 'memoriesdb.remember(text, jsonb)'::regprocedure;
SELECT 'memoriesdb.revise(uuid, text, jsonb)'::regprocedure;
SELECT 'memoriesdb_internal.require_owner(uuid, uuid, text)'::regprocedure;
SELECT 'memoriesdb.forget(uuid)'::regprocedure;
SELECT 'memoriesdb.recall(uuid)'::regprocedure;
SELECT 'memoriesdb.verify(uuid)'::regprocedure;
SELECT 'memoriesdb.provenance(uuid)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.recall(uuid)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.verify(uuid)'::regprocedure;
SELECT 1/(proowner = 'memoriesdb_reader'::regrole AND prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.provenance(uuid)'::regprocedure;
SELECT 1/(prosecdef)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.remember_once(text, jsonb, text)'::regprocedure;
SELECT 'memoriesdb.list_memories()'::regprocedure;
ROLLBACK;
