-- Deploy memoriesdb:internal_schema to pg
-- requires: schema
-- requires: roles
-- Run once. Schema memoriesdb_internal holds the ledger's machinery: helpers,
-- trigger functions, the rankings behind the logged searches, the access log's
-- writers. No client role may use it (privileges.sql grants USAGE to the roles
-- that own or run the API only), so none of it is attack surface; what clients
-- call stays in schema memoriesdb.
--
-- The helpers that v0.1.0 created in schema memoriesdb move here with ALTER
-- FUNCTION ... SET SCHEMA, which keeps each function (its triggers and its
-- privileges follow it); the function changes after this one replace their
-- bodies, and those of their callers, with the schema-qualified names.
BEGIN;

CREATE SCHEMA memoriesdb_internal AUTHORIZATION memoriesdb_owner;
COMMENT ON SCHEMA memoriesdb_internal IS
  'MemoriesDB: internal helpers, trigger functions and the unlogged rankings behind the API. No client role may use it.';

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOREACH f IN ARRAY ARRAY[
  'memoriesdb.access_level(uuid, uuid)',
  'memoriesdb.audit_canonical(memoriesdb.audit_log)',
  'memoriesdb.audit_genesis()',
  'memoriesdb.audit_hash_row()',
  'memoriesdb.audit_row()',
  'memoriesdb.audit_seal()',
  'memoriesdb.audit_seal_hash(memoriesdb.audit_seals)',
  'memoriesdb.audit_seal_now(xid8)',
  'memoriesdb.audit_strip(jsonb)',
  'memoriesdb.check_content(text)',
  'memoriesdb.check_embedding(public.vector)',
  'memoriesdb.check_metadata(jsonb)',
  'memoriesdb.check_query_vector(public.vector)',
  'memoriesdb.check_search_filter(jsonb)',
  'memoriesdb.check_traversal(integer, text[], text)',
  'memoriesdb.enqueue_embedding()',
  'memoriesdb.enqueue_vindexing()',
  'memoriesdb.fulltext_candidates(tsquery, integer, jsonb, uuid[])',
  'memoriesdb.linked_ids(jsonb)',
  'memoriesdb.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[])',
  'memoriesdb.notify_embedding()',
  'memoriesdb.raise_not_found(text, uuid)',
  'memoriesdb.reaches(uuid, uuid, text, boolean)',
  'memoriesdb.refuse_change()',
  'memoriesdb.require_other_user(uuid, uuid, text)',
  'memoriesdb.require_owner(uuid, uuid, text)',
  'memoriesdb.require_user()',
  'memoriesdb.stamp_row()',
  'memoriesdb.visible_count(bigint)',
  'memoriesdb.visible_memories(uuid)',
  'memoriesdb.visible_to(uuid, uuid)'
  ]::regprocedure[]
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET SCHEMA memoriesdb_internal', f);
  END LOOP;
END
$$;

COMMIT;
