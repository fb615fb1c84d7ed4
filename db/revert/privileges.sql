-- Revert memoriesdb:privileges from pg
-- Back to the privileges of v0.1.0: everything is taken back, then the grants
-- the v0.1.0 changes made are made again (helpers named in their current schema).
BEGIN;

DO $$
DECLARE
  o record;
BEGIN
  FOR o IN
    SELECT DISTINCT 'FUNCTION' AS kind, p.oid::regprocedure::text AS name, a.grantee
      FROM pg_catalog.pg_proc AS p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
     WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace, 'memoriesdb_dblink'::regnamespace)
       AND a.grantee <> p.proowner
    UNION
    SELECT DISTINCT 'TABLE', c.oid::regclass::text, a.grantee
      FROM pg_catalog.pg_class AS c
      LEFT JOIN pg_catalog.pg_attribute AS att ON att.attrelid = c.oid AND att.attnum > 0
      CROSS JOIN LATERAL aclexplode(coalesce(att.attacl, c.relacl, acldefault('r', c.relowner))) AS a
     WHERE c.relnamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
       AND a.grantee <> c.relowner
    UNION
    SELECT DISTINCT 'TABLE', c.oid::regclass::text, a.grantee
      FROM pg_catalog.pg_class AS c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a
     WHERE c.relnamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
       AND a.grantee <> c.relowner
    UNION
    SELECT DISTINCT 'SCHEMA', n.nspname::text, a.grantee
      FROM pg_catalog.pg_namespace AS n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS a
     WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal', 'memoriesdb_dblink')
       AND a.grantee <> n.nspowner
  LOOP
    CONTINUE WHEN o.grantee <> 0 AND pg_catalog.pg_get_userbyid(o.grantee) LIKE 'memoriesdb\_log\_%';
    EXECUTE format('REVOKE ALL ON %s %s FROM %s', o.kind, o.name,
                   CASE WHEN o.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(o.grantee)) END);
  END LOOP;
END
$$;

-- schema
REVOKE ALL ON SCHEMA memoriesdb FROM PUBLIC;
-- schema
GRANT USAGE ON SCHEMA memoriesdb TO memoriesdb_app, memoriesdb_worker, memoriesdb_auditor;
-- schema
ALTER DEFAULT PRIVILEGES FOR ROLE memoriesdb_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
-- context
GRANT EXECUTE ON FUNCTION memoriesdb.current_user_id() TO memoriesdb_app, memoriesdb_worker, memoriesdb_auditor;
-- context
GRANT EXECUTE ON FUNCTION memoriesdb_internal.raise_not_found(text, uuid) TO memoriesdb_app;
-- audit_log
GRANT SELECT ON memoriesdb.audit_log, memoriesdb.audit_seals TO memoriesdb_auditor;
-- audit_log
GRANT EXECUTE ON FUNCTION memoriesdb.verify_audit_chain() TO memoriesdb_auditor;
-- audit_log
GRANT EXECUTE ON FUNCTION memoriesdb.audit_head() TO memoriesdb_auditor;
-- config
GRANT EXECUTE ON FUNCTION memoriesdb.setting(text) TO memoriesdb_app, memoriesdb_worker, memoriesdb_auditor;
-- users
GRANT SELECT ON memoriesdb.users, memoriesdb.api_keys TO memoriesdb_app;
-- users
GRANT EXECUTE ON FUNCTION memoriesdb_internal.require_user() TO memoriesdb_app;
-- users
GRANT EXECUTE ON FUNCTION memoriesdb.create_user(text, text) TO memoriesdb_app;
-- users
GRANT EXECUTE ON FUNCTION memoriesdb.create_api_key(uuid) TO memoriesdb_app;
-- users
GRANT EXECUTE ON FUNCTION memoriesdb.revoke_api_key(text) TO memoriesdb_app;
-- users
GRANT EXECUTE ON FUNCTION memoriesdb.authenticate(text) TO memoriesdb_app;
-- memories
GRANT SELECT ON memoriesdb.memories, memoriesdb.memory_revisions TO memoriesdb_app;
-- memories
GRANT SELECT ON memoriesdb.audit_log TO memoriesdb_app;
-- memory_grants
GRANT SELECT ON memoriesdb.memory_grants TO memoriesdb_app;
-- memory_transfers
GRANT SELECT ON memoriesdb.memory_transfers TO memoriesdb_app;
-- memory_edges
GRANT SELECT ON memoriesdb.edge_types, memoriesdb.memory_edges TO memoriesdb_app;
-- embedding_queue
GRANT EXECUTE ON FUNCTION memoriesdb_internal.check_embedding(public.vector) TO memoriesdb_app, memoriesdb_worker;
-- embedding_queue
GRANT EXECUTE ON FUNCTION
  memoriesdb.claim_embedding_jobs(integer, interval, text),
  memoriesdb.complete_embedding_job(uuid, uuid, public.vector, text),
  memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text),
  memoriesdb.fail_embedding_job(uuid, uuid, text, boolean),
  memoriesdb.release_embedding_jobs(uuid[], uuid[]),
  memoriesdb.reclaim_expired_embedding_leases(),
  memoriesdb.requeue_dead_embedding_jobs(),
  memoriesdb.embedding_queue_status(),
  memoriesdb.dead_embedding_jobs(integer),
  memoriesdb.embedding_models()
TO memoriesdb_worker;
-- vindexing_queue
GRANT EXECUTE ON FUNCTION memoriesdb.vindexing_status() TO memoriesdb_worker;
-- api_memories
GRANT EXECUTE ON FUNCTION memoriesdb.remember(text, jsonb) TO memoriesdb_app;
-- api_memories
GRANT EXECUTE ON FUNCTION memoriesdb.revise(uuid, text, jsonb) TO memoriesdb_app;
-- api_memories
GRANT EXECUTE ON FUNCTION memoriesdb.forget(uuid) TO memoriesdb_app;
-- api_memories
GRANT EXECUTE ON FUNCTION memoriesdb.recall(uuid) TO memoriesdb_app;
-- api_memories
GRANT EXECUTE ON FUNCTION memoriesdb.verify(uuid) TO memoriesdb_app;
-- api_memories
GRANT EXECUTE ON FUNCTION memoriesdb.provenance(uuid) TO memoriesdb_app;
-- api_sharing
GRANT EXECUTE ON FUNCTION memoriesdb.share(uuid, uuid, text, timestamptz) TO memoriesdb_app;
-- api_sharing
GRANT EXECUTE ON FUNCTION memoriesdb.unshare(uuid, uuid) TO memoriesdb_app;
-- api_sharing
GRANT EXECUTE ON FUNCTION memoriesdb.transfer(uuid, uuid, text) TO memoriesdb_app;
-- api_graph
GRANT EXECUTE ON FUNCTION memoriesdb.create_edge_type(text, text, boolean, boolean) TO memoriesdb_app;
-- api_graph
GRANT EXECUTE ON FUNCTION memoriesdb.link(uuid, uuid, text, real, jsonb) TO memoriesdb_app;
-- api_graph
GRANT EXECUTE ON FUNCTION memoriesdb.unlink(uuid) TO memoriesdb_app;
-- search_fn
GRANT EXECUTE ON FUNCTION memoriesdb_internal.check_query_vector(public.vector) TO memoriesdb_app;
-- search_fn
GRANT EXECUTE ON FUNCTION memoriesdb_internal.check_search_filter(jsonb) TO memoriesdb_app;
-- search_fn
GRANT EXECUTE ON FUNCTION memoriesdb_internal.linked_ids(jsonb) TO memoriesdb_app;
-- search_fn
GRANT EXECUTE ON FUNCTION memoriesdb_internal.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[]) TO memoriesdb_app;
-- search_fn
GRANT EXECUTE ON FUNCTION memoriesdb_internal.visible_memories(uuid) TO memoriesdb_app;
-- search_fn
GRANT EXECUTE ON FUNCTION memoriesdb_internal.visible_count(bigint) TO memoriesdb_app;
-- search_fn
GRANT EXECUTE ON FUNCTION memoriesdb.search(public.vector, integer, jsonb, real) TO memoriesdb_app;
-- search_text_fn
GRANT EXECUTE ON FUNCTION memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[]) TO memoriesdb_app;
-- search_text_fn
GRANT EXECUTE ON FUNCTION memoriesdb.search_text(text, integer, jsonb) TO memoriesdb_app;
-- search_text_fn
GRANT EXECUTE ON FUNCTION memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer) TO memoriesdb_app;
-- memory_graph
REVOKE ALL ON memoriesdb.memory_graph FROM PUBLIC, memoriesdb_app, memoriesdb_worker, memoriesdb_auditor;
-- memory_graph
GRANT EXECUTE ON FUNCTION memoriesdb.neighbors(uuid, integer, text[], text) TO memoriesdb_app;
-- memory_graph
GRANT EXECUTE ON FUNCTION memoriesdb.path(uuid, uuid, integer) TO memoriesdb_app;
-- memory_graph
GRANT EXECUTE ON FUNCTION memoriesdb.run_vindexing(text) TO memoriesdb_worker;

COMMIT;
