-- The security model as the database has it: per role, exactly the functions it
-- may execute and the tables (or columns) it may select. It fails on any
-- difference, so a grant added or lost anywhere shows up here; the README's API
-- table is the same list, and db/deploy/privileges.sql is where it is made.
BEGIN;
SELECT plan(13);

CREATE FUNCTION pg_temp.executable(r text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal', 'memoriesdb_dblink') AND has_function_privilege(r, p.oid, 'EXECUTE') $$;
-- a table, or the columns of it, the role may select
CREATE FUNCTION pg_temp.selectable(r text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT n.nspname || '.' || c.relname ||
         CASE WHEN has_table_privilege(r, c.oid, 'SELECT') THEN ''
              ELSE '(' || (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                              AND has_column_privilege(r, c.oid, a.attnum, 'SELECT')) || ')' END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND c.relkind IN ('r', 'v', 'm', 'p')
     AND has_any_column_privilege(r, c.oid, 'SELECT') $$;

-- memoriesdb_app: the application
SELECT set_eq($$ SELECT * FROM pg_temp.executable('memoriesdb_app') $$, ARRAY[
    'memoriesdb.accept_offer', 'memoriesdb.accept_sender', 'memoriesdb.decline_offer', 'memoriesdb.forget_sender',
    'memoriesdb.offers', 'memoriesdb.offers_sent', 'memoriesdb.trusted_senders', 'memoriesdb.withdraw_offer',
    'memoriesdb.access_history', 'memoriesdb.api_keys_list', 'memoriesdb.authenticate', 'memoriesdb.create_api_key',
    'memoriesdb.create_edge_type', 'memoriesdb.context_proven', 'memoriesdb.current_user_id',
    'memoriesdb.flush_access_log', 'memoriesdb.forget', 'memoriesdb.link', 'memoriesdb.neighbors', 'memoriesdb.path',
    'memoriesdb.provenance', 'memoriesdb.recall', 'memoriesdb.remember', 'memoriesdb.remember_once', 'memoriesdb.revise',
    'memoriesdb.revoke_api_key', 'memoriesdb.search', 'memoriesdb.search_hybrid', 'memoriesdb.search_text',
    'memoriesdb.setting', 'memoriesdb.share', 'memoriesdb.transfer', 'memoriesdb.unlink', 'memoriesdb.unshare',
    'memoriesdb.verify', 'memoriesdb.list_memories', 'memoriesdb.list_grants', 'memoriesdb.list_edges',
    'memoriesdb.list_edge_types', 'memoriesdb.audit_receipts', 'memoriesdb.verify_receipt',
    'memoriesdb.who_could_read', 'memoriesdb.recall_as_of',
    'memoriesdb.cached_query_vector', 'memoriesdb.cache_query_vector', 'memoriesdb.clear_query_cache',
    'memoriesdb.search_model_info'],
  'memoriesdb_app executes exactly these functions');
SELECT is_empty($$ SELECT * FROM pg_temp.selectable('memoriesdb_app') $$,
  'memoriesdb_app selects no table or column: what exists through list_*(), contents through the logged reads');

-- memoriesdb_backend: a trusted application server: the app's, and create_user
SELECT set_eq($$ SELECT * FROM pg_temp.executable('memoriesdb_backend') EXCEPT SELECT * FROM pg_temp.executable('memoriesdb_app') $$,
  ARRAY['memoriesdb.create_user'], 'memoriesdb_backend executes what the app does, and create_user');
SELECT set_eq($$ SELECT * FROM pg_temp.selectable('memoriesdb_backend') $$, $$ SELECT * FROM pg_temp.selectable('memoriesdb_app') $$,
  'memoriesdb_backend selects what the app does');

-- memoriesdb_worker: the runner
SELECT set_eq($$ SELECT * FROM pg_temp.executable('memoriesdb_worker') $$, ARRAY[
    'memoriesdb.access_refusals', 'memoriesdb.claim_embedding_jobs', 'memoriesdb.complete_embedding_job',
    'memoriesdb.complete_embedding_jobs', 'memoriesdb.context_proven', 'memoriesdb.current_user_id', 'memoriesdb.dead_embedding_jobs',
    'memoriesdb.defer_embedding_jobs', 'memoriesdb.embedding_queue_health',
    'memoriesdb.embedding_models', 'memoriesdb.embedding_queue_status', 'memoriesdb.fail_embedding_job',
    'memoriesdb.reclaim_expired_embedding_leases', 'memoriesdb.release_embedding_jobs',
    'memoriesdb.renew_embedding_leases', 'memoriesdb.requeue_dead_embedding_jobs', 'memoriesdb.run_vindexing', 'memoriesdb.setting',
    'memoriesdb.vindexing_status', 'memoriesdb.audit_checkpoint', 'memoriesdb.audit_seal_pending', 'memoriesdb.calibrate_search',
    'memoriesdb.calibrate_search_fraction',
    'memoriesdb.claim_model_embedding_jobs', 'memoriesdb.add_model', 'memoriesdb.activate_model', 'memoriesdb.pause_model',
    'memoriesdb.resume_model', 'memoriesdb.retire_model', 'memoriesdb.model_progress',
    'memoriesdb.import_embeddings'],
  'memoriesdb_worker executes exactly these functions');
SELECT is_empty($$ SELECT * FROM pg_temp.selectable('memoriesdb_worker') $$, 'memoriesdb_worker selects no table');

-- memoriesdb_auditor: the auditor
SELECT set_eq($$ SELECT * FROM pg_temp.executable('memoriesdb_auditor') $$, ARRAY[
    'memoriesdb.access_refusals', 'memoriesdb.audit_head', 'memoriesdb.context_proven', 'memoriesdb.current_user_id',
    'memoriesdb.flush_access_log', 'memoriesdb.setting', 'memoriesdb.verify_audit_chain',
    'memoriesdb.audit_checkpoint', 'memoriesdb.audit_problems', 'memoriesdb.verify_receipt', 'memoriesdb.verify_checkpoint', 'memoriesdb.audit_seal_pending'],
  'memoriesdb_auditor executes exactly these functions');
SELECT set_eq($$ SELECT * FROM pg_temp.selectable('memoriesdb_auditor') $$, ARRAY[
    'memoriesdb.access_log', 'memoriesdb.access_refusal_bursts', 'memoriesdb.audit_log', 'memoriesdb.audit_seals',
    'memoriesdb.audit_waiting'],
  'memoriesdb_auditor selects exactly these tables and columns');

-- public: PUBLIC, i.e. every login
SELECT is_empty($$ SELECT * FROM pg_temp.executable('public') $$, 'public executes no function');
SELECT is_empty($$ SELECT * FROM pg_temp.selectable('public') $$, 'public selects no table');

-- memoriesdb_reader: the owner of the read functions (no login)
SELECT set_eq($$ SELECT * FROM pg_temp.executable('memoriesdb_reader') $$, ARRAY[
    'memoriesdb.context_proven', 'memoriesdb.current_user_id', 'memoriesdb.provenance', 'memoriesdb.recall', 'memoriesdb.search',
    'memoriesdb.list_memories', 'memoriesdb.list_grants', 'memoriesdb.list_edges', 'memoriesdb.list_edge_types',
    'memoriesdb.search_hybrid', 'memoriesdb.search_text', 'memoriesdb.setting', 'memoriesdb.verify',
    'memoriesdb_internal.check_embedding', 'memoriesdb_internal.check_query_vector',
    'memoriesdb_internal.check_search_filter', 'memoriesdb_internal.context_user', 'memoriesdb_internal.disclosed_user', 'memoriesdb_internal.fulltext_ranking',
    'memoriesdb_internal.linked_ids', 'memoriesdb_internal.matches_filter', 'memoriesdb_internal.filter_holds', 'memoriesdb_internal.query_fingerprint',
    'memoriesdb_internal.raise_not_found', 'memoriesdb_internal.record_read', 'memoriesdb_internal.record_refusal',
    'memoriesdb_internal.text_ranking', 'memoriesdb_internal.vector_ranking', 'memoriesdb_internal.visible_count',
    'memoriesdb_internal.visible_memories', 'memoriesdb_internal.model_vector_ranking', 'memoriesdb_internal.search_model',
    'memoriesdb_internal.visible_counts', 'memoriesdb_internal.filter_sample', 'memoriesdb_internal.search_plan',
    'memoriesdb_internal.search_count_cap',
    'memoriesdb_internal.choose_search_plan', 'memoriesdb_internal.exact_ranking',
    'memoriesdb_internal.filter_matching'],
  'memoriesdb_reader executes exactly these functions');
SELECT set_eq($$ SELECT * FROM pg_temp.selectable('memoriesdb_reader') $$, ARRAY[
    'memoriesdb.edge_types', 'memoriesdb.memories', 'memoriesdb.memory_edges', 'memoriesdb.memory_grants',
    'memoriesdb.memory_revisions', 'memoriesdb.memory_transfers', 'memoriesdb.embeddings', 'memoriesdb.embedding_models'],
  'memoriesdb_reader selects exactly these tables and columns');

-- memoriesdb_pgbouncer_auth: PgBouncer's auth_user (the lookup: 20-pgbouncer-auth.sql)
SELECT is_empty($$ SELECT * FROM pg_temp.executable('memoriesdb_pgbouncer_auth') UNION ALL SELECT * FROM pg_temp.selectable('memoriesdb_pgbouncer_auth') $$,
  'memoriesdb_pgbouncer_auth executes no ledger function and selects no ledger table');

SELECT * FROM finish();
ROLLBACK;
