-- Revert memoriesdb:internal_schema from pg
-- The helpers go back to schema memoriesdb (as v0.1.0 had them); the function
-- changes reverted before this one restored their v0.1.0 bodies.
BEGIN;

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOREACH f IN ARRAY ARRAY[
  'memoriesdb_internal.access_level(uuid, uuid)',
  'memoriesdb_internal.audit_canonical(memoriesdb.audit_log)',
  'memoriesdb_internal.audit_genesis()',
  'memoriesdb_internal.audit_hash_row()',
  'memoriesdb_internal.audit_row()',
  'memoriesdb_internal.audit_seal()',
  'memoriesdb_internal.audit_seal_hash(memoriesdb.audit_seals)',
  'memoriesdb_internal.audit_seal_now(xid8)',
  'memoriesdb_internal.audit_strip(jsonb)',
  'memoriesdb_internal.check_content(text)',
  'memoriesdb_internal.check_embedding(public.vector)',
  'memoriesdb_internal.check_metadata(jsonb)',
  'memoriesdb_internal.check_query_vector(public.vector)',
  'memoriesdb_internal.check_search_filter(jsonb)',
  'memoriesdb_internal.check_traversal(integer, text[], text)',
  'memoriesdb_internal.enqueue_embedding()',
  'memoriesdb_internal.enqueue_vindexing()',
  'memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[])',
  'memoriesdb_internal.linked_ids(jsonb)',
  'memoriesdb_internal.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[])',
  'memoriesdb_internal.notify_embedding()',
  'memoriesdb_internal.raise_not_found(text, uuid)',
  'memoriesdb_internal.reaches(uuid, uuid, text, boolean)',
  'memoriesdb_internal.refuse_change()',
  'memoriesdb_internal.require_other_user(uuid, uuid, text)',
  'memoriesdb_internal.require_owner(uuid, uuid, text)',
  'memoriesdb_internal.require_user()',
  'memoriesdb_internal.stamp_row()',
  'memoriesdb_internal.visible_count(bigint)',
  'memoriesdb_internal.visible_memories(uuid)',
  'memoriesdb_internal.visible_to(uuid, uuid)'
  ]::regprocedure[]
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET SCHEMA memoriesdb', f);
  END LOOP;
END
$$;

DROP SCHEMA memoriesdb_internal;

COMMIT;
