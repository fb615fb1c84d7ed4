-- Every statement the runner sends, by name. The runner calls API functions only.

-- name: embedding_dim
SELECT (memoriesdb.setting('embedding_dim'))::int AS dim;

-- name: claim_embedding_jobs
SELECT memory_id, lease_id, content, attempts
  FROM memoriesdb.claim_embedding_jobs(%(batch_size)s, make_interval(secs => %(lease_seconds)s), %(worker)s);

-- name: complete_embedding_jobs
SELECT memory_id, outcome
  FROM memoriesdb.complete_embedding_jobs(%(memory_ids)s::uuid[], %(lease_ids)s::uuid[], %(embeddings)s::vector[], %(model)s);

-- name: fail_embedding_job
SELECT memoriesdb.fail_embedding_job(%(memory_id)s, %(lease_id)s, %(error)s, %(permanent)s) AS outcome;

-- name: release_embedding_jobs
SELECT memoriesdb.release_embedding_jobs(%(memory_ids)s::uuid[], %(lease_ids)s::uuid[]) AS released;

-- name: reclaim_expired_embedding_leases
SELECT memoriesdb.reclaim_expired_embedding_leases() AS reclaimed;

-- name: embedding_queue_status
SELECT pending, leased, dead, oldest_pending FROM memoriesdb.embedding_queue_status();

-- name: dead_embedding_jobs
SELECT memory_id, attempts, dead_at, last_error FROM memoriesdb.dead_embedding_jobs(%(max_rows)s);

-- name: embedding_models
SELECT model, memories, newest FROM memoriesdb.embedding_models();

-- name: vindexing_status
SELECT pending, oldest_pending, last_refresh_at, last_refresh_ms FROM memoriesdb.vindexing_status();

-- name: access_refusals
SELECT function, sqlstate, attempts, actors, no_context, last_at FROM memoriesdb.access_refusals(%(since)s::interval);

-- name: authenticate
SELECT memoriesdb.authenticate(%(api_key)s) AS user_id;

-- name: act_as
SELECT set_config('app.current_user', %(user_id)s::text, true);

-- name: remember
SELECT memoriesdb.remember(%(content)s, %(metadata)s::jsonb) AS id;

-- name: create_user
SELECT memoriesdb.create_user(%(handle)s, %(display_name)s) AS id;

-- name: create_api_key
SELECT memoriesdb.create_api_key(%(user_id)s) AS api_key;

-- name: search
SELECT id, similarity, content, metadata, owner_id
  FROM memoriesdb.search(%(query)s::vector, %(k)s, %(filter)s::jsonb);

-- name: run_vindexing
SELECT refreshed, rows_coalesced, duration_ms FROM memoriesdb.run_vindexing(%(worker)s);
