-- Every statement the runner sends, by name (db.q loads them; whole-line comments are not sent).
-- The workers and the user-facing commands call API functions only. {name} placeholders are
-- identifiers, filled by db.composed.

-- ---------------------------------------------------------------------------------------------
-- The workers (worker.py, vindex.py, service.py), as memoriesdb_worker

-- name: listen
LISTEN {channel};

-- name: citus_has_search_statistics
-- a ledger distributed on Citus (db/citus/distribute.sql) has it; a single node has not
SELECT to_regprocedure('memoriesdb.citus_refresh_search_statistics()') IS NOT NULL AS present;

-- name: citus_refresh_search_statistics
SELECT memoriesdb.citus_refresh_search_statistics() AS shards;

-- name: embedding_dim
SELECT (memoriesdb.setting('embedding_dim'))::int AS dim;

-- name: claim_embedding_jobs
SELECT memory_id, lease_id, content, attempts
  FROM memoriesdb.claim_embedding_jobs(%(batch_size)s, make_interval(secs => %(lease_seconds)s), %(worker)s);

-- name: claim_model_embedding_jobs
-- every job with its model (name, provider, dimension): the active model's first, then the filling ones
SELECT memory_id, lease_id, content, attempts, model, provider, dimension
  FROM memoriesdb.claim_model_embedding_jobs(%(batch_size)s, make_interval(secs => %(lease_seconds)s), %(worker)s);

-- name: configured_model_dim
-- the dimension of the model served by the worker's own provider (NULL: none is registered, or it is retired)
SELECT max(dimension) AS dim FROM memoriesdb.model_progress() WHERE provider = 'configured' AND state <> 'retired';

-- name: embedding_caps
-- what one claim may take (config, worker_bounds); NULL on a ledger older than v0.3
SELECT (memoriesdb.setting('embedding_max_batch_size'))::int AS max_batch_size,
       (memoriesdb.setting('embedding_max_lease_seconds'))::float8 AS max_lease_seconds;

-- name: renew_embedding_leases
SELECT memoriesdb.renew_embedding_leases(%(memory_ids)s::uuid[], %(lease_ids)s::uuid[], make_interval(secs => %(lease_seconds)s)) AS renewed;

-- name: complete_embedding_jobs
SELECT memory_id, outcome
  FROM memoriesdb.complete_embedding_jobs(%(memory_ids)s::uuid[], %(lease_ids)s::uuid[], %(embeddings)s::vector[], %(model)s);

-- name: fail_embedding_job
SELECT memoriesdb.fail_embedding_job(%(memory_id)s, %(lease_id)s, %(error)s, %(permanent)s) AS outcome;

-- name: release_embedding_jobs
SELECT memoriesdb.release_embedding_jobs(%(memory_ids)s::uuid[], %(lease_ids)s::uuid[]) AS released;

-- name: defer_embedding_jobs
SELECT memoriesdb.defer_embedding_jobs(%(memory_ids)s::uuid[], %(lease_ids)s::uuid[], %(error)s, make_interval(secs => %(delay_seconds)s)) AS deferred;

-- name: requeue_dead_embedding_jobs
SELECT memoriesdb.requeue_dead_embedding_jobs() AS requeued;

-- name: requeue_dead_embedding_jobs_by_id
SELECT memory_id, outcome FROM memoriesdb.requeue_dead_embedding_jobs(%(memory_ids)s::uuid[]);

-- name: requeue_dead_model_embedding_jobs
-- the dead jobs of one model back: of these memories, or every one of the model (memory_ids NULL)
SELECT memory_id, outcome FROM memoriesdb.requeue_dead_embedding_jobs(%(memory_ids)s::uuid[], %(model)s);

-- name: reclaim_expired_embedding_leases
SELECT memoriesdb.reclaim_expired_embedding_leases() AS reclaimed;

-- name: run_vindexing
SELECT refreshed, rows_coalesced, duration_ms FROM memoriesdb.run_vindexing(%(worker)s);

-- ---------------------------------------------------------------------------------------------
-- Queue and access-log status (status.py, and the workers' metrics)

-- name: embedding_queue_status
SELECT pending, leased, dead, oldest_pending FROM memoriesdb.embedding_queue_status();

-- name: embedding_queue_health
SELECT oldest_lease_at, oldest_lease_age, oldest_lease_holder, holders, last_error, last_error_at
  FROM memoriesdb.embedding_queue_health();

-- name: dead_embedding_jobs
-- each dead job with its model, newest first (model NULL: every model's)
SELECT memory_id, model_name AS model, attempts, dead_at, last_error FROM memoriesdb.dead_embedding_jobs(%(max_rows)s, %(model)s::text);

-- name: embedding_models
SELECT model, memories, newest FROM memoriesdb.embedding_models();

-- name: model_progress
SELECT model, provider, dimension, state, done, total, pending, leased, dead, activated_at
  FROM memoriesdb.model_progress();

-- name: add_model
SELECT model_id, jobs FROM memoriesdb.add_model(%(name)s, %(provider)s, %(dimension)s);

-- name: calibrate_search
-- search_ef_search from the active model's index's measured recall@10 (a row per ef_search tried)
SELECT ef_search, recall, index_ms, exact_ms, chosen
  FROM memoriesdb.calibrate_search(%(samples)s::integer, %(target)s::real, %(apply)s);

-- name: calibrate_search_fraction
-- search_hnsw_min_fraction: the smallest share of the table at which the index still finds the nearest rows (a row per share tried)
SELECT round(share::numeric, 4)::float8 AS share, rows_in_share, recall, index_ms, chosen
  FROM memoriesdb.calibrate_search_fraction(%(samples)s::integer, %(target)s::real, %(apply)s, %(ef_search)s::integer);

-- name: activate_model
SELECT model, previous, memories FROM memoriesdb.activate_model(%(name)s);

-- name: pause_model
SELECT memoriesdb.pause_model(%(name)s) AS state;

-- name: resume_model
SELECT memoriesdb.resume_model(%(name)s) AS state;

-- name: retire_model
SELECT vectors, jobs FROM memoriesdb.retire_model(%(name)s);

-- name: import_embeddings
-- memoriesdb import-embeddings: one batch (at most 5000 rows); each row's outcome, in input order
SELECT memory_id, outcome
  FROM memoriesdb.import_embeddings(%(model)s, %(memory_ids)s::uuid[], %(content_hashes)s::text[], %(embeddings)s::vector[]);

-- name: model_dimension
SELECT dimension FROM memoriesdb.model_progress() WHERE model = %(model)s;

-- name: vindexing_status
SELECT pending, oldest_pending, last_refresh_at, last_refresh_ms FROM memoriesdb.vindexing_status();

-- name: access_refusals
SELECT function, sqlstate, attempts, actors, no_context, last_at FROM memoriesdb.access_refusals(%(since)s::interval);

-- ---------------------------------------------------------------------------------------------
-- The user-facing API (ingest.py, search.py, demo.py), as memoriesdb_app

-- name: authenticate
SELECT memoriesdb.authenticate(%(api_key)s) AS user_id;

-- name: act_as
SELECT set_config('app.current_user', %(user_id)s::text, true);

-- name: can_vouch
-- a ledger on Citus (db/citus/distribute.sql): a backend vouches with vouch(), which reaches every node
SELECT to_regprocedure('memoriesdb.vouch(uuid)') IS NOT NULL AS present;

-- name: vouch
SELECT memoriesdb.vouch(%(user_id)s::uuid) AS user_id;

-- name: create_user
SELECT memoriesdb.create_user(%(handle)s, %(display_name)s) AS id;

-- name: create_api_key
SELECT memoriesdb.create_api_key(%(user_id)s) AS api_key;

-- name: remember
SELECT memoriesdb.remember(%(content)s, %(metadata)s::jsonb) AS id;

-- name: remember_once
SELECT memory_id, created FROM memoriesdb.remember_once(%(content)s, %(metadata)s::jsonb, %(key)s);

-- name: search
SELECT id, similarity, content, metadata, owner_id
  FROM memoriesdb.search(%(query)s::vector, %(k)s, %(filter)s::jsonb);

-- name: search_model
-- search() with the embedding model named (the active one: as search(); another: its own vectors)
SELECT id, similarity, content, metadata, owner_id
  FROM memoriesdb.search(%(query)s::vector, %(model)s::text, %(k)s, %(filter)s::jsonb);

-- name: search_model_info
-- which provider embeds a registered model's queries, of which dimension (MDB16: no such model)
SELECT model, provider, dimension, state FROM memoriesdb.search_model_info(%(model)s);

-- name: cached_query_vector
-- the context user's cached vector of a normalised query, or NULL (query_cache.sql)
SELECT memoriesdb.cached_query_vector(%(model)s, %(query)s) AS v;

-- name: cache_query_vector
SELECT memoriesdb.cache_query_vector(%(model)s, %(query)s, %(v)s::vector) AS stored;

-- name: share
-- a grant when the grantee accepted the sender (accept_sender), else an offer the grantee must accept
SELECT memoriesdb.share(%(memory_id)s, %(grantee)s) AS grant_id;

-- name: offers
-- the context user's pending offers: who offers which memory, never its content
SELECT id, kind, sender, memory_id, level, offered_at, expires_at FROM memoriesdb.offers();

-- name: accept_offer
SELECT memoriesdb.accept_offer(%(offer_id)s) AS memory_id;

-- name: recall
SELECT id, owner_id, content, metadata FROM memoriesdb.recall(%(memory_id)s);

-- name: another_memory
-- a visible memory's id other than the one given (list_memories(): ids, no contents)
SELECT id FROM memoriesdb.list_memories() WHERE id <> %(memory_id)s LIMIT 1;

-- name: flush_access_log
SELECT memoriesdb.flush_access_log() AS flushed;

-- name: access_history
SELECT outcome, function, actor, sqlstate FROM memoriesdb.access_history(%(memory_id)s);

-- ---------------------------------------------------------------------------------------------
-- The auditor (demo.py), over the admin connection

-- name: as_auditor
SET ROLE memoriesdb_auditor;

-- name: verify_audit_chain
SELECT ok, rows_checked, seals_checked, first_broken_id, problem FROM memoriesdb.verify_audit_chain();

-- ---------------------------------------------------------------------------------------------
-- Checkpoints (anchor.py, verify_audit.py): taken as memoriesdb_worker, verified as memoriesdb_auditor

-- name: audit_checkpoint
SELECT memoriesdb.audit_checkpoint() AS checkpoint;

-- name: audit_seal_pending
-- the audit rows that waited for their chain (held by another transaction at their commit), sealed
SELECT memoriesdb.audit_seal_pending(%(max_seals)s) AS sealed;

-- name: verify_checkpoint
-- the checkpoint's part of verify_audit_chain(checkpoint); the log's part: verify_audit_chain() once
SELECT ok, first_broken_id, problem FROM memoriesdb.verify_checkpoint(%(checkpoint)s::jsonb);

-- name: audit_problems
SELECT audit_id, problem FROM memoriesdb.audit_problems(%(checkpoint)s::jsonb);

-- ---------------------------------------------------------------------------------------------
-- Deployment helpers (admin.py), as the superuser; sqitch itself deploys the ledger

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %(dbname)s;

-- name: create_database
CREATE DATABASE {dbname};

-- name: role_exists
SELECT 1 FROM pg_roles WHERE rolname = %(role)s;

-- name: create_login
CREATE ROLE {login} LOGIN;

-- name: grant_role
GRANT {role} TO {login};

-- name: configure_login
SELECT memoriesdb.configure_login(%(login)s);

-- ---------------------------------------------------------------------------------------------
-- PgBouncer's admin console (simple query protocol), for status.py

-- name: pgbouncer_pools
SHOW POOLS;

-- name: citus_cluster
-- deploy --citus: the citus extension in this database, its active primary workers, whether the ledger is distributed
SELECT (SELECT e.extversion FROM pg_extension AS e WHERE e.extname = 'citus') AS citus,
       (SELECT count(*) FROM pg_dist_node AS n WHERE n.groupid <> 0 AND n.noderole = 'primary' AND n.isactive) AS workers,
       (SELECT count(*) FROM pg_dist_partition AS p WHERE p.logicalrelid = to_regclass('memoriesdb.memories')) > 0 AS distributed;

-- name: citus_cluster_no_extension
SELECT NULL::text AS citus, 0::bigint AS workers, false AS distributed;

-- name: citus_worker_logins
-- the roles Citus opens the workers' connections as log in there (and only there: on the coordinator nobody can);
-- the workers' pg_hba.conf admits them from the cluster's nodes only (docs/citus.md, "How the deploy works" 3)
SELECT w.nodename, w.nodeport, w.success, w.result FROM run_command_on_workers($$
  SET citus.enable_alter_role_propagation = off;
  ALTER ROLE memoriesdb_owner LOGIN; ALTER ROLE memoriesdb_reader LOGIN; ALTER ROLE memoriesdb_app LOGIN;
  ALTER ROLE memoriesdb_backend LOGIN; ALTER ROLE memoriesdb_worker LOGIN; ALTER ROLE memoriesdb_auditor LOGIN$$) AS w;

-- name: citus_guard_transaction_ids
-- Citus's functions that set or list distributed transaction ids: for the roles Citus connects as only (a client that
-- could assign one replays another session's context proof; docs/citus.md section 1); per database and node, one
-- transaction on each (a simple query of several statements)
SELECT d.nodename, d.nodeport, n.success, n.result FROM run_command_on_all_nodes($$
  SET LOCAL citus.enable_ddl_propagation = off;
  REVOKE EXECUTE ON FUNCTION pg_catalog.assign_distributed_transaction_id(integer, bigint, timestamptz),
         pg_catalog.get_all_active_transactions() FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION pg_catalog.assign_distributed_transaction_id(integer, bigint, timestamptz),
        pg_catalog.get_all_active_transactions() TO memoriesdb_owner, memoriesdb_reader, memoriesdb_worker, memoriesdb_auditor$$) AS n
  JOIN pg_dist_node AS d ON d.nodeid = n.nodeid;

-- name: model_index_rebuild
-- (the deployer) the statements that rebuild a model's HNSW index with today's graph settings, in order
SELECT step, action, statement FROM memoriesdb_internal.model_index_rebuild(%(name)s);

-- name: model_index_info
-- (the deployer) a model's HNSW index: its size and the options it was built with
SELECT pg_relation_size(i.oid) AS bytes, coalesce(array_to_string(i.reloptions, ', '), '') AS options
  FROM pg_class AS i
 WHERE i.oid = to_regclass('memoriesdb.' || quote_ident(memoriesdb_internal.model_index_name(
         (memoriesdb_internal.model_named(%(name)s)).id)));

-- name: index_build_progress
-- a CREATE INDEX's progress, seen from another connection
SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total
  FROM pg_stat_progress_create_index WHERE pid = %(pid)s;

-- name: model_vector_count
-- (the deployer) how many vectors a model's index holds: the build's total (pgvector reports tuples done only)
SELECT count(*) AS vectors FROM memoriesdb.embeddings
 WHERE model_id = (memoriesdb_internal.model_named(%(name)s)).id;

-- name: reindex_lock
-- (the deployer) one rebuild of a model's index at a time: a session lock, held until the rebuild's connection closes
SELECT pg_try_advisory_lock(hashtextextended('memoriesdb models reindex ' || %(name)s, 0)) AS locked;
