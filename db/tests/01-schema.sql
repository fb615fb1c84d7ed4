-- Contract: tables, ownership, row-level security, privileges, comments.
BEGIN;
SELECT plan(36);

SELECT has_schema('memoriesdb');
SELECT tables_are('memoriesdb', ARRAY[
  'config', 'audit_log', 'audit_seals', 'users', 'api_keys', 'memories', 'memory_revisions',
  'memory_grants', 'memory_transfers', 'edge_types', 'memory_edges', 'idempotency_keys',
  'embedding_schedule', 'vindexing_schedule', 'vindexing_runs', 'access_log', 'access_log_sink',
  'memory_offers', 'accepted_senders', 'access_refusal_bursts', 'embedding_models', 'embeddings']);
SELECT extensions_are(ARRAY['plpgsql', 'uuid-ossp', 'pgcrypto', 'vector', 'pg_trgm', 'pgtap', 'dblink']);

-- this fails the suite if row-level security is off, or not forced, on any table
SELECT is_empty($$ SELECT * FROM tests.rls_not_forced('memoriesdb') $$,
  'every table in memoriesdb has row-level security enabled and forced');

SELECT is_empty($$
  SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'memoriesdb' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i')
     AND c.relowner <> 'memoriesdb_owner'::regrole $$,
  'memoriesdb_owner owns every relation');
SELECT is_empty($$
  SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND p.proowner <> 'memoriesdb_owner'::regrole
     AND p.proname NOT IN ('append_access_log_autonomously', 'append_access_entry_autonomously', 'await_access_log_writes', 'note_key_check', 'setup_access_logger',
                           'recall', 'verify', 'provenance', 'search', 'search_text', 'search_hybrid', 'vector_ranking', 'text_ranking',
                           'model_vector_ranking', 'search_model',
                           'list_memories', 'list_grants', 'list_edges', 'list_edge_types') $$,
  'memoriesdb_owner owns every function but those of the access logger and the read functions');
SELECT is_empty($$
  SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND p.proname IN ('recall', 'verify', 'provenance', 'search', 'search_text', 'search_hybrid', 'vector_ranking', 'text_ranking', 'model_vector_ranking')
     AND NOT (p.prosecdef AND p.proowner = 'memoriesdb_reader'::regrole) $$,
  'the read functions are SECURITY DEFINER, owned by memoriesdb_reader');
SELECT is_empty($$
  SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND p.proname IN ('append_access_log_autonomously', 'append_access_entry_autonomously', 'await_access_log_writes', 'note_key_check', 'setup_access_logger')
     AND (NOT r.rolsuper OR has_function_privilege('memoriesdb_app', p.oid, 'EXECUTE')
          OR has_function_privilege('memoriesdb_worker', p.oid, 'EXECUTE')
          OR has_function_privilege('memoriesdb_auditor', p.oid, 'EXECUTE')) $$,
  'the access logger''s autonomous write and set-up are owned by a superuser (dblink needs it) and no client may call them');
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = 'memoriesdb_dblink' AND (has_function_privilege('memoriesdb_app', p.oid, 'EXECUTE')
                                            OR has_function_privilege('public', p.oid, 'EXECUTE'))
   UNION ALL
  SELECT NULL WHERE has_schema_privilege('memoriesdb_app', 'memoriesdb_dblink', 'USAGE') $$,
  'no client may use dblink (it would borrow the access logger''s connection)');
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = 'memoriesdb_owner'), false, 'the owner cannot log in');
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   CROSS JOIN (SELECT s.logger_role FROM memoriesdb.access_log_sink s) AS l
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND has_function_privilege(l.logger_role, p.oid, 'EXECUTE')
     AND p.proname <> 'append_access_entry' $$,
  'the access logger''s login may execute nothing but append_access_entry');
SELECT is_empty($$ SELECT rolname FROM pg_roles WHERE rolname LIKE 'memoriesdb\_%' AND (rolsuper OR rolcreaterole OR rolcreatedb
                                                            OR (rolbypassrls AND rolname <> 'memoriesdb_owner')) $$,
  'no MemoriesDB role is a superuser, creates roles or databases; only the NOLOGIN owner bypasses RLS');

SELECT is_empty($$
  SELECT c.relname, r.rolname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   CROSS JOIN (VALUES ('memoriesdb_app'), ('memoriesdb_worker'), ('memoriesdb_auditor')) AS r(rolname)
   WHERE n.nspname = 'memoriesdb' AND c.relkind = 'r'
     AND has_table_privilege(r.rolname, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') $$,
  'no client role may write to, truncate or alter any table');
SELECT is_empty($$
  SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'memoriesdb' AND c.relkind IN ('r', 'm', 'v') AND has_table_privilege('memoriesdb_worker', c.oid, 'SELECT') $$,
  'the worker reads no table directly');
SELECT is_empty($$
  SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'memoriesdb' AND c.relkind IN ('r', 'm')
     AND c.relname IN ('embedding_schedule', 'vindexing_schedule', 'vindexing_runs', 'config', 'audit_seals')
     AND has_table_privilege('memoriesdb_app', c.oid, 'SELECT') $$,
  'the app role cannot read the queues, the config or the seals');

SELECT is_empty($$
  SELECT c.relname, r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   CROSS JOIN unnest(ARRAY['memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor', 'public']) AS r
   WHERE n.nspname = 'memoriesdb' AND c.relkind = 'm' AND has_table_privilege(r, c.oid, 'SELECT') $$,
  'no client may read a materialized view (they ignore RLS)');
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND has_function_privilege('public', p.oid, 'EXECUTE') $$,
  'PUBLIC may execute no memoriesdb or memoriesdb_internal function');
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND p.prosecdef
     AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false) $$,
  'every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp');
-- memoriesdb.context_checked (a context's proof, checked once per API call) is believed by
-- current_user_id() only because every function a client may enter resets it: one that did not
-- would let a client's own set_config('memoriesdb.context_checked', '<victim>|<anything>') act as
-- the victim (02-context.sql tries it). Exempt: the two that never read the context.
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname LIKE 'memoriesdb%' AND p.prosecdef
     AND p.oid NOT IN ('memoriesdb.setting(text)'::regprocedure, 'memoriesdb.context_proven(text, text)'::regprocedure)
     AND EXISTS (SELECT 1 FROM unnest(ARRAY['memoriesdb_app', 'memoriesdb_backend', 'memoriesdb_worker', 'memoriesdb_auditor', 'public']) AS r
                  WHERE has_function_privilege(r, p.oid, 'EXECUTE'))
     AND NOT coalesce(p.proconfig @> ARRAY['memoriesdb.context_checked='], false) $$,
  'every SECURITY DEFINER function a client may call resets memoriesdb.context_checked on entry');
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p
   WHERE p.oid IN ('memoriesdb.setting(text)'::regprocedure, 'memoriesdb.context_proven(text, text)'::regprocedure)
     AND (p.prosrc ~ 'current_user_id|context_checked|context_user' OR NOT p.prosecdef) $$,
  'the two exempt (setting(), context_proven()) never read the context');

SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND obj_description(p.oid, 'pg_proc') IS NULL
     AND (has_function_privilege('memoriesdb_app', p.oid, 'EXECUTE')
       OR has_function_privilege('memoriesdb_worker', p.oid, 'EXECUTE')
       OR has_function_privilege('memoriesdb_auditor', p.oid, 'EXECUTE')) $$,
  'every function a client may call has a COMMENT');
SELECT is_empty($$
  SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'memoriesdb' AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') IS NULL $$,
  'every table has a COMMENT');

SELECT is_empty($$
  SELECT c.relname, col FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   CROSS JOIN unnest(ARRAY['created_at', 'created_by', 'updated_at', 'updated_by']) AS col
   WHERE n.nspname = 'memoriesdb' AND c.relkind = 'r' AND c.relname NOT IN ('audit_log', 'audit_seals', 'access_log', 'access_log_sink', 'access_refusal_bursts')
     AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = col AND NOT a.attisdropped) $$,
  'every ledger table carries created_at, created_by, updated_at, updated_by');
SELECT is_empty($$
  SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'memoriesdb' AND c.relkind = 'r' AND c.relname NOT IN ('audit_log', 'audit_seals', 'access_log', 'access_log_sink', 'access_refusal_bursts')
     AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'stamp') $$,
  'every ledger table has the stamp trigger');
SELECT is_empty($$
  SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'memoriesdb' AND c.relkind = 'r'
     AND c.relname NOT IN ('audit_log', 'audit_seals', 'access_log', 'access_log_sink', 'access_refusal_bursts', 'embedding_schedule', 'vindexing_schedule', 'vindexing_runs', 'embeddings')
     AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'audit') $$,
  'every ledger table has the audit trigger');

-- what clients may call (privileges decide who) and the machinery no client may reach
SELECT functions_are('memoriesdb', ARRAY[
  'current_user_id', 'verify_audit_chain', 'audit_head', 'audit_checkpoint', 'audit_seal_pending', 'audit_problems', 'audit_receipts', 'verify_receipt', 'verify_checkpoint', 'setting', 'create_user', 'create_api_key',
  'revoke_api_key', 'authenticate', 'api_keys_list', 'context_proven', 'claim_embedding_jobs', 'claim_model_embedding_jobs', 'complete_embedding_job', 'complete_embedding_jobs',
  'fail_embedding_job', 'release_embedding_jobs', 'renew_embedding_leases', 'reclaim_expired_embedding_leases',
  'requeue_dead_embedding_jobs', 'defer_embedding_jobs', 'embedding_queue_health',
  'embedding_queue_status', 'dead_embedding_jobs', 'embedding_models', 'vindexing_status', 'remember', 'remember_once', 'revise',
  'forget', 'recall', 'verify', 'provenance', 'share', 'unshare', 'transfer', 'create_edge_type', 'link', 'unlink',
  'search', 'search_text', 'search_hybrid', 'neighbors', 'path', 'run_vindexing', 'setup_access_logger',
  'access_history', 'access_refusals', 'flush_access_log',
  'who_could_read', 'recall_as_of',
  'cached_query_vector', 'cache_query_vector', 'clear_query_cache',
  'accept_offer', 'decline_offer', 'withdraw_offer', 'offers', 'offers_sent', 'accept_sender', 'forget_sender', 'trusted_senders',
  'list_memories', 'list_grants', 'list_edges', 'list_edge_types',
  -- the model registry (models_api.sql)
  'add_model', 'activate_model', 'pause_model', 'resume_model', 'retire_model', 'model_progress', 'import_embeddings',
  'search_model_info',
  -- the runner's (memoriesdb calibrate-search)
  'calibrate_search', 'calibrate_search_fraction',
  -- administrators only (no client role may execute them)
  'configure_login', 'unbounded_logins']);
SELECT functions_are('memoriesdb_internal', ARRAY[
  'raise_not_found', 'stamp_row', 'audit_canonical', 'audit_hash_row', 'refuse_change', 'audit_seal_hash',
  'audit_genesis', 'audit_common_chain', 'audit_chain_name', 'audit_chain_of', 'audit_merkle_root', 'audit_findings', 'check_checkpoint', 'audit_seal_at', 'audit_chain_end', 'audit_checkpoint_findings', 'audit_verdict', 'audit_seal_now', 'audit_lock_chain', 'audit_unsealed', 'audit_adopt', 'audit_seal', 'audit_strip', 'audit_row', 'require_user', 'context_user', 'lifted_bounds', 'bounds_kept', 'auth_prefix_hash', 'api_key_proven', 'access_level',
  'enqueue_embedding', 'notify_embedding', 'checked_lease', 'check_embedding', 'enqueue_vindexing', 'check_content', 'check_metadata',
  'check_json_size', 'trgm_prefix', 'content_tsvector', 'set_text_index_columns', 'words_of', 'keep_memory_words', 'rebuild_memory_words',
  'require_owner', 'require_other_user', 'reaches', 'check_query_vector', 'check_search_filter', 'matches_filter', 'filter_holds',
  'linked_ids', 'owner_word_keys', 'visible_memories', 'visible_count', 'visible_counts', 'filter_sample', 'filter_matching', 'exact_ranking', 'search_plan', 'search_count_cap', 'choose_search_plan', 'query_fingerprint', 'calibration_sample', 'recall_misses', 'vector_ranking', 'fulltext_ranking',
  'text_ranking', 'visible_to', 'check_traversal', 'append_access_log', 'await_access_log_writes',
  'append_access_log_autonomously', 'calling_api_function', 'record_refusal', 'record_read', 'login_kind',
  'accepts_from', 'effect_share', 'effect_transfer', 'offer',
  'access_log_mac', 'access_burst_mac', 'append_access_entry', 'append_access_entry_autonomously', 'note_key_check', 'write_access_entry',
  'log_read',
  'check_model_dimension', 'model_index_name', 'create_model_index', 'model_index_definition', 'model_index_rebuild', 'model_named', 'model_vector_ranking', 'search_model',
  'context_proof', 'context_vouched_by', 'login_is_admin', 'issue_api_key', 'record_auth_failure',
  'check_auth_throttle', 'disclosed_user',
  'require_custodian',
  'normalise_query', 'query_cache_digest']);
SELECT functions_are('memoriesdb_pgbouncer', ARRAY['user_lookup']);   -- PgBouncer's auth_query (20-pgbouncer-auth.sql)
SELECT is_empty($$
  SELECT r FROM unnest(ARRAY['memoriesdb_app', 'memoriesdb_backend', 'memoriesdb_worker', 'memoriesdb_auditor', 'public']) AS r
   WHERE has_schema_privilege(r, 'memoriesdb_internal', 'USAGE') $$,
  'no client role may use schema memoriesdb_internal');
SELECT is_empty($$
  SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = 'memoriesdb_internal' AND obj_description(p.oid, 'pg_proc') IS NULL $$,
  'every internal function has a COMMENT');

SELECT is_definer('memoriesdb', 'remember', ARRAY['text', 'jsonb'], 'remember is SECURITY DEFINER');
SELECT is_definer('memoriesdb', 'remember_once', ARRAY['text', 'jsonb', 'text'], 'remember_once is SECURITY DEFINER');
SELECT is((SELECT rolbypassrls OR rolcanlogin FROM pg_roles WHERE rolname = 'memoriesdb_reader'), false,
  'recall runs as memoriesdb_reader, which cannot log in and does not bypass RLS: RLS decides');
SELECT volatility_is('memoriesdb', 'current_user_id', ARRAY[]::text[], 'stable', 'current_user_id is STABLE, never IMMUTABLE');
SELECT function_privs_are('memoriesdb', 'claim_embedding_jobs', ARRAY['integer', 'interval', 'text'], 'memoriesdb_app', ARRAY[]::text[],
  'the app role cannot claim embedding jobs');
SELECT function_privs_are('memoriesdb', 'verify_audit_chain', ARRAY[]::text[], 'memoriesdb_auditor', ARRAY['EXECUTE'],
  'the auditor verifies the chain');

SELECT * FROM finish();
ROLLBACK;
