-- Revert memoriesdb:privileges from pg
-- Back to the functions of privileges as released in v0.3.0 (privileges@v0.3.0.sql).
BEGIN;

-- the grants made since v0.3.0 (the objects stay: their own changes revert them)
REVOKE USAGE ON SCHEMA memoriesdb_pgbouncer FROM memoriesdb_pgbouncer_auth;
REVOKE EXECUTE ON FUNCTION memoriesdb_pgbouncer.user_lookup(text) FROM memoriesdb_pgbouncer_auth;

-- 1. Take everything back from everybody but the owner (and the logger role,
--    whose two grants setup_access_logger() manages).
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
-- functions are not executable by PUBLIC unless granted one by one (for those
-- the owner role creates; the superuser-owned ones are covered by step 1)
ALTER DEFAULT PRIVILEGES FOR ROLE memoriesdb_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- 2. Schemas: clients see the API schema only.
GRANT USAGE ON SCHEMA memoriesdb TO memoriesdb_app, memoriesdb_worker, memoriesdb_auditor, memoriesdb_reader;
GRANT USAGE ON SCHEMA memoriesdb_internal TO memoriesdb_reader;

-- 3. memoriesdb_app: the application (untrusted client). Reads, under row-level
--    security, what exists and whose it is, never what it says: contents only
--    through the logged read functions. Writes only through the API.
GRANT SELECT ON memoriesdb.users, memoriesdb.api_keys, memoriesdb.memory_grants, memoriesdb.memory_transfers,
                memoriesdb.edge_types, memoriesdb.memory_edges TO memoriesdb_app;
GRANT SELECT (id, owner_id, content_hash, revision, embedding_model, embedded_at, embedded_hash,
              created_at, created_by, updated_at, updated_by) ON memoriesdb.memories TO memoriesdb_app;
GRANT SELECT (id, memory_id, revision, content_hash, content_changed, metadata_changed,
              created_at, created_by, updated_at, updated_by) ON memoriesdb.memory_revisions TO memoriesdb_app;
GRANT SELECT (id, created_at, created_by, db_role, application_name, txid, table_name, row_id, memory_id, op, row_hash)
  ON memoriesdb.audit_log TO memoriesdb_app;
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.setting(text),
  -- users and keys
  memoriesdb.create_user(text, text), memoriesdb.create_api_key(uuid), memoriesdb.revoke_api_key(text),
  memoriesdb.authenticate(text),
  -- memories
  memoriesdb.remember(text, jsonb), memoriesdb.revise(uuid, text, jsonb), memoriesdb.forget(uuid),
  memoriesdb.recall(uuid), memoriesdb.verify(uuid), memoriesdb.provenance(uuid),
  -- sharing and custody
  memoriesdb.share(uuid, uuid, text, timestamptz), memoriesdb.unshare(uuid, uuid), memoriesdb.transfer(uuid, uuid, text),
  -- graph
  memoriesdb.create_edge_type(text, text, boolean, boolean), memoriesdb.link(uuid, uuid, text, real, jsonb),
  memoriesdb.unlink(uuid), memoriesdb.neighbors(uuid, integer, text[], text), memoriesdb.path(uuid, uuid, integer),
  -- search
  memoriesdb.search(public.vector, integer, jsonb, real), memoriesdb.search_text(text, integer, jsonb),
  memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer),
  -- access log
  memoriesdb.access_history(uuid, timestamptz), memoriesdb.flush_access_log()
  TO memoriesdb_app;

-- 4. memoriesdb_worker: the runner. The queues' functions; no table.
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.setting(text),
  memoriesdb.claim_embedding_jobs(integer, interval, text),
  memoriesdb.complete_embedding_job(uuid, uuid, public.vector, text),
  memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text),
  memoriesdb.fail_embedding_job(uuid, uuid, text, boolean), memoriesdb.release_embedding_jobs(uuid[], uuid[]),
  memoriesdb.renew_embedding_leases(uuid[], uuid[], interval),
  memoriesdb.reclaim_expired_embedding_leases(), memoriesdb.requeue_dead_embedding_jobs(),
  memoriesdb.dead_embedding_jobs(integer), memoriesdb.embedding_models(), memoriesdb.embedding_queue_status(),
  memoriesdb.run_vindexing(text), memoriesdb.vindexing_status(),
  memoriesdb.access_refusals(interval)
  TO memoriesdb_worker;

-- 5. memoriesdb_auditor: the whole audit log, its chain, and the access log.
GRANT SELECT ON memoriesdb.audit_log, memoriesdb.audit_seals, memoriesdb.access_log TO memoriesdb_auditor;
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.setting(text),
  memoriesdb.verify_audit_chain(), memoriesdb.audit_head(),
  memoriesdb.access_refusals(interval), memoriesdb.flush_access_log()
  TO memoriesdb_auditor;

-- 6. memoriesdb_reader (no login; owns the read functions): the rows of memories
--    and their relations, bound by the same policies as the application, and
--    the helpers the read functions call.
GRANT SELECT ON memoriesdb.memories, memoriesdb.memory_revisions, memoriesdb.memory_grants,
                memoriesdb.memory_transfers, memoriesdb.memory_edges, memoriesdb.edge_types TO memoriesdb_reader;
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.setting(text),
  memoriesdb_internal.raise_not_found(text, uuid), memoriesdb_internal.record_refusal(text, uuid),
  memoriesdb_internal.record_read(text, uuid[], bytea),
  memoriesdb_internal.query_fingerprint(text, public.vector, integer, jsonb, text),
  memoriesdb_internal.check_query_vector(public.vector), memoriesdb_internal.check_embedding(public.vector),
  memoriesdb_internal.check_search_filter(jsonb),
  memoriesdb_internal.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[]),
  memoriesdb_internal.linked_ids(jsonb), memoriesdb_internal.visible_memories(uuid),
  memoriesdb_internal.visible_count(bigint),
  memoriesdb_internal.fulltext_candidates(tsquery, integer, jsonb, uuid[])
  TO memoriesdb_reader;

-- 7. memoriesdb_owner: the access log's dblink drivers (owned by the deploying superuser).
GRANT EXECUTE ON FUNCTION
  memoriesdb_internal.await_access_log_writes(),
  memoriesdb_internal.append_access_log_autonomously(timestamptz, uuid, text, text, uuid[], bytea, text, text)
  TO memoriesdb_owner;

COMMIT;
