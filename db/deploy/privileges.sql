-- Deploy memoriesdb:privileges to pg
-- Reworked after @v0.4.0 (released version: privileges@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: privileges@v0.2.0
-- requires: embedding_queue
-- requires: api_history
-- requires: query_cache
-- requires: models_api
-- requires: model_search
-- The security model in one place: everything any role other than an object's
-- owner may do in this database. Re-deployable: it first takes every privilege
-- back, then grants exactly what is listed here, so the list below is the whole
-- truth (db/tests/01-schema.sql compares it, role by role, with the database).
-- Change it with `sqitch rework privileges`; a new function is executable by
-- nobody but its owner until it is listed here.
--
-- Owners (set where each object is defined):
--   memoriesdb_owner   every table, view and function, unless named below
--   memoriesdb_reader  the read functions recall, verify, provenance, search,
--                      search_text, search_hybrid and the rankings behind them:
--                      SECURITY DEFINER without BYPASSRLS, so row-level security
--                      shows them what the context user may see
--   deploying superuser  the access log's dblink drivers and setup_access_logger()
--   memoriesdb_log_<hash of the database name>  (made by setup_access_logger())
--                      may execute memoriesdb_internal.append_access_entry() only,
--                      which takes only entries whose MAC verifies
--   deploying superuser  memoriesdb_pgbouncer.user_lookup() (it reads pg_shadow)
BEGIN;

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

-- 3. memoriesdb_app: the application (untrusted client). No table, no column:
--    what exists and whose it is through the list_* functions (no contents),
--    contents only through the logged read functions, writes only through the API.
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.context_proven(text, text), memoriesdb.setting(text),
  -- users and keys
  memoriesdb.create_api_key(uuid), memoriesdb.create_api_key(uuid, timestamptz), memoriesdb.api_keys_list(),
  memoriesdb.revoke_api_key(text), memoriesdb.revoke_api_key(uuid), memoriesdb.authenticate(text),
  -- memories
  memoriesdb.remember(text, jsonb), memoriesdb.remember_once(text, jsonb, text),
  memoriesdb.revise(uuid, text, jsonb), memoriesdb.forget(uuid),
  memoriesdb.recall(uuid), memoriesdb.verify(uuid), memoriesdb.provenance(uuid), memoriesdb.list_memories(),
  -- the history as of a time (api_history.sql): for the current owner, checked inside
  memoriesdb.who_could_read(uuid, timestamptz), memoriesdb.recall_as_of(uuid, timestamptz),
  -- sharing and custody
  memoriesdb.share(uuid, uuid, text, timestamptz), memoriesdb.unshare(uuid, uuid), memoriesdb.transfer(uuid, uuid, text),
  memoriesdb.list_grants(uuid),
  memoriesdb.accept_offer(uuid), memoriesdb.decline_offer(uuid), memoriesdb.offers(), memoriesdb.offers_sent(),
  memoriesdb.withdraw_offer(uuid), memoriesdb.accept_sender(uuid), memoriesdb.forget_sender(uuid), memoriesdb.trusted_senders(),
  -- graph
  memoriesdb.create_edge_type(text, text, boolean, boolean), memoriesdb.link(uuid, uuid, text, real, jsonb),
  memoriesdb.unlink(uuid), memoriesdb.neighbors(uuid, integer, text[], text), memoriesdb.path(uuid, uuid, integer),
  memoriesdb.list_edges(uuid), memoriesdb.list_edge_types(),
  -- search
  memoriesdb.search(public.vector, integer, jsonb, real), memoriesdb.search_text(text, integer, jsonb),
  memoriesdb.search_hybrid(text, public.vector, integer, jsonb, real, real, integer),
  -- search by a named embedding model (model_search.sql)
  memoriesdb.search(public.vector, text, integer, jsonb, real),
  memoriesdb.search_hybrid(text, public.vector, text, integer, jsonb, real, real, integer),
  memoriesdb.search_model_info(text),
  -- access log
  memoriesdb.access_history(uuid, timestamptz), memoriesdb.flush_access_log(),
  -- the query-vector cache (query_cache.sql): the context user's own entries only
  memoriesdb.cached_query_vector(text, text), memoriesdb.cache_query_vector(text, text, public.vector),
  memoriesdb.clear_query_cache(text),
  -- receipts of one's own writes
  memoriesdb.audit_receipts(uuid), memoriesdb.verify_receipt(jsonb, jsonb)
  TO memoriesdb_app;

-- 3b. memoriesdb_backend: a trusted application server that authenticates its
--    users itself. Everything the app may do (by membership), and its bare
--    set_config('app.current_user', <uuid>, true) is believed (current_user_id()
--    checks the membership of session_user); it creates users.
DO $$
BEGIN
  IF NOT pg_catalog.pg_has_role('memoriesdb_backend', 'memoriesdb_app', 'MEMBER') THEN   -- cluster-wide: once
    GRANT memoriesdb_app TO memoriesdb_backend;
  END IF;
END
$$;
GRANT EXECUTE ON FUNCTION memoriesdb.create_user(text, text) TO memoriesdb_backend;

-- 4. memoriesdb_worker: the runner. The queues' functions; no table.
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.context_proven(text, text), memoriesdb.setting(text),
  memoriesdb.claim_embedding_jobs(integer, interval, text),
  memoriesdb.claim_model_embedding_jobs(integer, interval, text, text[]),
  memoriesdb.complete_embedding_job(uuid, uuid, public.vector, text),
  memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text),
  memoriesdb.fail_embedding_job(uuid, uuid, text, boolean), memoriesdb.release_embedding_jobs(uuid[], uuid[]),
  memoriesdb.defer_embedding_jobs(uuid[], uuid[], text, interval), memoriesdb.embedding_queue_health(),
  memoriesdb.renew_embedding_leases(uuid[], uuid[], interval),
  memoriesdb.reclaim_expired_embedding_leases(), memoriesdb.requeue_dead_embedding_jobs(),
  memoriesdb.requeue_dead_embedding_jobs(uuid[]),
  memoriesdb.dead_embedding_jobs(integer), memoriesdb.embedding_models(), memoriesdb.embedding_queue_status(),
  memoriesdb.run_vindexing(text), memoriesdb.vindexing_status(),
  -- the model registry (models_api.sql): the runner's `memoriesdb models ...` and `reembed`
  memoriesdb.add_model(text, text, integer), memoriesdb.activate_model(text), memoriesdb.pause_model(text),
  memoriesdb.resume_model(text), memoriesdb.retire_model(text), memoriesdb.model_progress(),
  memoriesdb.import_embeddings(text, uuid[], text[], public.vector[]),  -- memoriesdb import-embeddings
  memoriesdb.dead_embedding_jobs(integer, text), memoriesdb.requeue_dead_embedding_jobs(uuid[], text),  -- dead jobs by model
  memoriesdb.access_refusals(interval),
  memoriesdb.audit_checkpoint(),  -- memoriesdb anchor (worker all): signs it outside the database
  memoriesdb.calibrate_search(integer, real, boolean),  -- memoriesdb calibrate-search: search_ef_search from the index's measured recall
  memoriesdb.calibrate_search_fraction(integer, real, boolean, integer),  -- and search_hnsw_min_fraction, likewise
  memoriesdb.audit_seal_pending(integer)   -- after each batch, and before each checkpoint
  TO memoriesdb_worker;

-- 5. memoriesdb_auditor: the whole audit log, its chain, and the access log.
GRANT SELECT ON memoriesdb.audit_log, memoriesdb.audit_seals, memoriesdb.audit_waiting, memoriesdb.access_log, memoriesdb.access_refusal_bursts TO memoriesdb_auditor;
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.context_proven(text, text), memoriesdb.setting(text),
  memoriesdb.verify_audit_chain(), memoriesdb.audit_head(),
  memoriesdb.verify_audit_chain(jsonb), memoriesdb.audit_problems(jsonb), memoriesdb.audit_checkpoint(),
  memoriesdb.verify_checkpoint(jsonb),
  memoriesdb.verify_receipt(jsonb, jsonb), memoriesdb.audit_seal_pending(integer),
  memoriesdb.access_refusals(interval), memoriesdb.flush_access_log()
  TO memoriesdb_auditor;

-- 6. memoriesdb_reader (no login; owns the read functions): the rows of memories
--    and their relations, bound by the same policies as the application, and
--    the helpers the read functions call.
GRANT SELECT ON memoriesdb.memories, memoriesdb.memory_revisions, memoriesdb.memory_grants,
                memoriesdb.memory_transfers, memoriesdb.memory_edges, memoriesdb.edge_types,
                memoriesdb.embeddings, memoriesdb.embedding_models TO memoriesdb_reader;
GRANT EXECUTE ON FUNCTION
  memoriesdb.current_user_id(), memoriesdb.context_proven(text, text), memoriesdb.setting(text),
  memoriesdb_internal.context_user(),
  memoriesdb_internal.raise_not_found(text, uuid), memoriesdb_internal.record_refusal(text, uuid),
  memoriesdb_internal.disclosed_user(uuid, uuid, uuid),
  memoriesdb_internal.record_read(text, uuid[], bytea),
  memoriesdb_internal.query_fingerprint(text, public.vector, integer, jsonb, text),
  memoriesdb_internal.check_query_vector(public.vector), memoriesdb_internal.check_embedding(public.vector),
  memoriesdb_internal.check_embedding(public.vector, integer),
  memoriesdb_internal.check_search_filter(jsonb),
  memoriesdb_internal.matches_filter(memoriesdb.memories, jsonb, uuid, uuid[]),
  memoriesdb_internal.filter_holds(memoriesdb.memories, jsonb, text, timestamptz, timestamptz, uuid, uuid[]),
  memoriesdb_internal.linked_ids(jsonb), memoriesdb_internal.visible_memories(uuid),
  memoriesdb_internal.visible_count(bigint), memoriesdb_internal.visible_counts(bigint, boolean),
  memoriesdb_internal.filter_sample(jsonb, uuid, uuid[], integer),
  memoriesdb_internal.filter_matching(integer, integer, double precision, uuid[]),
  memoriesdb_internal.exact_ranking(public.vector, integer, uuid, jsonb, text, timestamptz, timestamptz, uuid[], real),
  memoriesdb_internal.search_plan(bigint, double precision, double precision, integer),
  memoriesdb_internal.search_count_cap(double precision, integer),
  memoriesdb_internal.choose_search_plan(jsonb, uuid, uuid[], integer),
  memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean)
  TO memoriesdb_reader;

-- 7. memoriesdb_owner: the access log's dblink drivers (owned by the deploying superuser), and
--    whether this session's logger connection is open (authenticate(), before it answers a key:
--    the names of the session's dblink connections, nothing else of dblink).
GRANT EXECUTE ON FUNCTION
  memoriesdb_internal.await_access_log_writes(),
  memoriesdb_internal.append_access_entry_autonomously(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea, text)
  TO memoriesdb_owner;
-- note_key_check() is made by access_log_fn, which the plan deploys after this change (and grants it
-- there): granted here once it exists, so that a redeploy of this file, which takes everything back
-- first, gives it back
DO $$
BEGIN
  IF pg_catalog.to_regprocedure('memoriesdb_internal.note_key_check(text)') IS NOT NULL THEN
    GRANT EXECUTE ON FUNCTION memoriesdb_internal.note_key_check(text) TO memoriesdb_owner;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA memoriesdb_dblink TO memoriesdb_owner;
GRANT EXECUTE ON FUNCTION memoriesdb_dblink.dblink_get_connections() TO memoriesdb_owner;

-- 8. memoriesdb_pgbouncer_auth: PgBouncer's auth_user (pgbouncer_auth.sql). The
--    secret lookup and nothing else; no ledger schema.
REVOKE ALL ON SCHEMA memoriesdb_pgbouncer FROM PUBLIC;
REVOKE ALL ON FUNCTION memoriesdb_pgbouncer.user_lookup(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA memoriesdb_pgbouncer TO memoriesdb_pgbouncer_auth;
GRANT EXECUTE ON FUNCTION memoriesdb_pgbouncer.user_lookup(text) TO memoriesdb_pgbouncer_auth;

COMMIT;
