-- The access log has no side doors: no client reads a ledger table, reaches the
-- log's machinery or writes an entry the log would show as genuine; the worker's
-- reads are on it; link() reveals no hidden edge. (Fail closed and refusal
-- storms need committed sessions: runner/tests/test_access_log_doors.py.)
BEGIN;
SELECT plan(28);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.memory_of(:'alice', 'alice keeps the code under the blue vase') AS a1 \gset
SELECT tests.memory_of(:'alice', 'shared p') AS p \gset
SELECT tests.memory_of(:'alice', 'shared q') AS q \gset
SELECT tests.memory_of(:'alice', 'hidden h') AS h \gset
SELECT logger_role AS logger FROM memoriesdb.access_log_sink \gset
CREATE FUNCTION pg_temp.genuine(l memoriesdb.access_log) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RETURN l.mac = memoriesdb_internal.access_log_mac(l.entry_id, l.at, l.actor, l.db_role, l.vouched_by, l.application_name,
                                                    l.function, l.memory_ids, l.query_hash, l.sqlstate);
END $$;

-- 1. no client role reads a ledger table: contents, hashes, plans ------------
CREATE FUNCTION pg_temp.selectable(r text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND c.relkind IN ('r', 'v', 'm', 'p')
     AND has_any_column_privilege(r, c.oid, 'SELECT') $$;
SELECT is_empty($$ SELECT r, t FROM unnest(ARRAY['memoriesdb_app', 'memoriesdb_worker', 'public']) AS r, pg_temp.selectable(r) AS t $$,
  'memoriesdb_app, memoriesdb_worker and PUBLIC select no table, view or column of the ledger');
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');   -- bob takes alice's shares without an offer each
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'p', :'bob');
SELECT memoriesdb.share(:'q', :'bob');
SELECT tests.act_as(:'bob');
SELECT throws_ok($$ SELECT content_hash FROM memoriesdb.memories $$, '42501', NULL,
  'a client cannot read content hashes (and guess a shared memory''s text offline, unlogged)');
SELECT throws_ok($$ EXPLAIN ANALYZE SELECT id FROM memoriesdb.memories WHERE owner_id IS NOT NULL $$, '42501', NULL,
  'nor count hidden rows through a plan (Rows Removed by Filter)');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.memory_edges $$, '42501', NULL, 'nor read edges directly');
SELECT is_empty($$ SELECT attname FROM pg_stats WHERE schemaname = 'memoriesdb' $$,
  'nor the planner''s statistics of any ledger column (pg_stats shows only columns one may select)');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.users $$, '42501', NULL, 'nor users');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.audit_log $$, '42501', NULL, 'nor the audit log');
SELECT set_eq($$ SELECT id FROM memoriesdb.list_memories() $$, format('VALUES (%L::uuid), (%L::uuid)', :'p', :'q'),
  'list_memories() lists what the caller may see: bob sees the two memories shared with him');
SELECT tests.clear_context();

-- 2. no client reaches the log's machinery ------------------------------------
SELECT is_empty($$
  SELECT r, f FROM unnest(ARRAY['memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor', 'public']) AS r,
         unnest(ARRAY['memoriesdb_internal.record_refusal(text, uuid)', 'memoriesdb_internal.record_read(text, uuid[], bytea)',
                      'memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean)',
                      'memoriesdb_internal.append_access_entry(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea)',
                      'memoriesdb_internal.write_access_entry(text, uuid[], bytea, text, text)',
                      'memoriesdb_internal.access_log_mac(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text)']) AS f
   WHERE has_function_privilege(r, f::regprocedure, 'EXECUTE') $$,
  'no client role executes record_refusal, record_read, fulltext_ranking or the log''s writers');
SELECT tests.act_as(:'bob');
CREATE FUNCTION pg_temp.recall(m uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM memoriesdb_internal.record_refusal(NULL, m); END $$;
SELECT throws_ok(format('SELECT pg_temp.recall(%L)', :'a1'), '42501', NULL,
  'a client cannot write a "read" into another owner''s history with record_refusal(NULL, …), not even from a function named recall');
SELECT throws_ok($$ SELECT * FROM memoriesdb_internal.fulltext_ranking('vase'::tsquery, '{vase}', 1, 10, '{}', NULL, true) $$, '42501', NULL,
  'a client cannot probe hidden memories with fulltext_ranking()');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS l WHERE l.memory_ids @> ARRAY[:'a1'::uuid] AND l.sqlstate IS NULL), 0::bigint,
  'no read of alice''s memory is on the log');

-- 3. logging in as the logger role makes no genuine entry ----------------------
SET SESSION AUTHORIZATION :"logger";
SELECT throws_ok(format($$ SELECT memoriesdb_internal.append_access_log(now() - interval '30 days', %L, 'memoriesdb_client', '',
                                   'recall', ARRAY[%L]::uuid[], NULL, NULL) $$, :'bob', :'a1'), '42501', NULL,
  'the logger login cannot append a back-dated, unauthenticated entry (v0.3.0''s entry point is no longer its own)');
RESET SESSION AUTHORIZATION;
SELECT throws_ok(format($$ SELECT memoriesdb_internal.append_access_log(now() - interval '30 days', %L, 'memoriesdb_client', '',
                                   'recall', ARRAY[%L]::uuid[], NULL, NULL) $$, :'bob', :'a1'), 'MDB24', NULL,
  'and that entry point accepts nothing from anybody');
SET SESSION AUTHORIZATION :"logger";
SELECT throws_ok(format($$ SELECT memoriesdb_internal.append_access_entry(gen_random_uuid(), now() - interval '30 days', %L,
                                   'memoriesdb_client', NULL, '', 'recall', ARRAY[%L]::uuid[], NULL, NULL, sha256('guess')) $$, :'bob', :'a1'),
  'MDB24', NULL, 'nor an entry with a MAC it made up');
SELECT throws_ok($$ SELECT mac_key FROM memoriesdb.access_log_sink $$, '42501', NULL, 'the logger cannot read the MAC key');
SELECT throws_ok($$ SELECT memoriesdb_internal.access_log_mac(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) $$, '42501', NULL,
  'nor have a MAC computed for it');
RESET SESSION AUTHORIZATION;
-- an entry made with the key (as the ledger does) goes in once, never twice
SELECT gen_random_uuid() AS e, '2026-01-01 00:00:00+00'::timestamptz AS e_at \gset
SELECT memoriesdb_internal.access_log_mac(:'e', :'e_at', :'bob', 'memoriesdb_client', NULL, '', 'recall', ARRAY[:'a1']::uuid[], NULL, 'MDB03') AS e_mac \gset
SET SESSION AUTHORIZATION :"logger";
SELECT lives_ok(format($$ SELECT memoriesdb_internal.append_access_entry(%L, %L, %L, 'memoriesdb_client', NULL, '', 'recall',
                                  ARRAY[%L]::uuid[], NULL, 'MDB03', %L) $$, :'e', :'e_at', :'bob', :'a1', :'e_mac'),
  'an entry whose MAC verifies is appended');
SELECT throws_ok(format($$ SELECT memoriesdb_internal.append_access_entry(%L, %L, %L, 'memoriesdb_client', NULL, '', 'recall',
                                   ARRAY[%L]::uuid[], NULL, 'MDB03', %L) $$, :'e', :'e_at', :'bob', :'a1', :'e_mac'), '23505', NULL,
  'the same entry cannot be appended twice (replay)');
RESET SESSION AUTHORIZATION;
-- a row that did not come through append_access_entry (here: a superuser's INSERT) is not shown
INSERT INTO memoriesdb.access_log (entry_id, at, actor, db_role, function, memory_ids, sqlstate, mac)
VALUES (gen_random_uuid(), now(), :'bob', 'memoriesdb_client', 'recall', ARRAY[:'a1']::uuid[], NULL, sha256('forged'));
SELECT tests.act_as(:'alice');
SELECT is((SELECT count(*) FROM memoriesdb.access_history(:'a1') WHERE outcome = 'read'), 0::bigint,
  'access_history() shows no entry whose MAC does not verify');
SELECT is((SELECT count(*) FROM memoriesdb.access_history(:'a1') WHERE outcome = 'refused' AND at = :'e_at'), 1::bigint,
  'and shows the authenticated one');
SELECT tests.clear_context();

-- 4. every entry the API writes is authenticated and says who vouched ---------
CREATE OR REPLACE FUNCTION memoriesdb_internal.context_vouched_by() RETURNS name LANGUAGE sql STABLE AS $$ SELECT 'backend_x'::name $$;
SELECT tests.act_as(:'alice');
SELECT content FROM memoriesdb.recall(:'a1');
SELECT tests.clear_context();
SELECT is((SELECT vouched_by::text FROM memoriesdb.access_log WHERE function = 'recall' AND actor = :'alice' ORDER BY id DESC LIMIT 1),
  'backend_x', 'an entry records context_vouched_by() of the caller''s session');
SELECT ok((SELECT bool_and(pg_temp.genuine(l)) FROM memoriesdb.access_log AS l WHERE l.memory_ids @> ARRAY[:'a1'::uuid] AND l.sqlstate IS DISTINCT FROM NULL OR l.actor = :'alice'),
  'the API''s entries verify');

-- 5. the worker's reads are the worker's entries ------------------------------
UPDATE memoriesdb.embedding_schedule SET dead_at = now() WHERE memory_id NOT IN (:'p', :'q');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
CREATE TEMP TABLE claimed AS SELECT memory_id FROM memoriesdb.claim_embedding_jobs(10, '1 minute', 'w1');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM claimed), 2::bigint, 'the worker claimed two jobs');
SELECT results_eq($$ SELECT function, db_role::text, actor, memory_ids FROM memoriesdb.access_log
                      WHERE function = 'claim_embedding_jobs' AND memory_ids @> (SELECT array_agg(memory_id) FROM claimed) $$,
  $$ SELECT 'claim_embedding_jobs'::text, session_user::text, NULL::uuid, (SELECT array_agg(memory_id ORDER BY memory_id) FROM claimed) $$,
  'one entry for the claimed batch: the function, the worker''s login, the ids whose contents it returned');

-- 6. link() decides acyclicity over the caller's visible graph ---------------
SELECT tests.act_as(:'alice');
SELECT memoriesdb.link(:'q', :'h', 'part_of'), memoriesdb.link(:'h', :'p', 'part_of');   -- q -> h -> p, h hidden from bob
SELECT tests.act_as(:'bob');
SELECT lives_ok(format($$ SELECT memoriesdb.link(%L, %L, 'part_of') $$, :'p', :'q'),
  'bob links p -> q: the path back through alice''s hidden memory is not his to see, so no MDB08 reveals it');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'part_of') $$, :'q', :'p'), 'MDB08', NULL,
  'a cycle the caller can see is still refused');
SELECT tests.act_as(:'alice');
SELECT is((SELECT count(*) FROM memoriesdb.list_edges() WHERE edge_type = 'part_of'), 3::bigint,
  'alice sees the three edges: of an acyclic type, a cycle can form only through a memory hidden from whoever closed it');
SELECT tests.clear_context();

SELECT * FROM finish();
ROLLBACK;
