-- Citus (issue 17): the red team of the fifth slice's context carry (section 4c of db/citus/distribute.sql;
-- docs/citus.md, section 1). An app login and a backend login attack "one context per call, on every node" and the
-- promises behind it: the access log names who read, a read that cannot be logged is refused, a client acts only
-- as a user whose key it used (or a backend vouched for) in this transaction.
--   Fixed here: the carry propagated nothing in an implicit transaction (Citus propagates a SET LOCAL only in a
--   transaction block, a DO block, or an executor level below the client's statement with
--   citus.function_opens_transaction_block on); the coordinator's connections to the workers as a superuser.
--   Fixed in Citus (scripts/citus_build.sh, db/citus/citus-13.2.2-set-local.patch): a client's SET LOCAL was
--   propagated as the whole text of the client's query: statements appended to it ran on the workers as the
--   ledger's roles.
--   Held: savepoints (RELEASE, ROLLBACK TO), cursors, prepared statements, calls per row, and the Citus settings a
--   session may change.
-- The attacks of an implicit transaction must run as the client's own top-level statement (inside throws_ok()
-- they would run an executor level down, where Citus propagated anyway): their SQLSTATE is read from psql's
-- :SQLSTATE, with ON_ERROR_STOP off for that statement. Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(32);

SELECT memoriesdb.create_user('uma' || (random() * 1e9)::bigint) AS uma \gset
SELECT pg_temp.user_apart('vic', :'uma') AS vic \gset
SELECT memoriesdb.create_api_key(:'uma') AS ku \gset
SELECT memoriesdb.create_api_key(:'vic') AS kv \gset

-- what gives an implicit transaction its distributed transaction id in the attacks below: a query on every shard from
-- a function called by the client's statement (PL/pgSQL: a UDF opens a transaction block on the workers)
SET client_min_messages = error;   -- (Citus: the temporary function stays local)
CREATE FUNCTION pg_temp.distributed_id() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
AS $$ BEGIN RETURN (SELECT count(*) FROM memoriesdb.memories); END $$;
SET client_min_messages = warning;
GRANT EXECUTE ON FUNCTION pg_temp.distributed_id() TO PUBLIC;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT memoriesdb.accept_sender(:'uma') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.remember('uma shares this with vic') AS shared \gset
SELECT memoriesdb.remember('uma keeps this to herself') AS private \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT memoriesdb.remember('vic keeps this to himself') AS vics \gset
SELECT memoriesdb.remember('vic will forget this') AS doomed \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.share(:'shared', :'vic') AS _ \gset
COMMIT;
CREATE TEMP TABLE seen (what text, v text);
GRANT INSERT ON seen TO mdb_citus_test_backend;   -- (section 7)

\set VERBOSITY terse
-- (section 2's second probe first: the logger's sink is read when the session's logger connection is opened, by its
-- first access log entry)
BEGIN;
SELECT set_config('citus.enable_local_execution', 'off', true) AS _ \gset
SELECT throws_ok($$SELECT memoriesdb.authenticate('no key')$$, NULL, NULL, 'a refusal with local execution off (its entry written)');
SELECT lives_ok($i$SET LOCAL app.probe = 'x'; DO $d$ BEGIN IF current_setting('is_superuser') = 'on' THEN
                     RAISE EXCEPTION 'a client statement ran as superuser % on port %', current_user, inet_server_port(); END IF; END $d$$i$,
                '... and no connection of the transaction is a superuser''s (the logger''s sink read on the coordinator''s own placement)');
ROLLBACK;
-- 1. Fixed: an implicit transaction (one statement, no BEGIN). pg_temp.distributed_id() assigns the distributed
-- transaction id and opens the transaction's connections (a query on every shard at the statement's level: it stands
-- for any such call; list_memories() was one until it read the caller's shards only); authenticate() one executor level down (query_to_xml runs its query
-- through SPI) is propagated to them; the proof is emptied on the coordinator; recall() at the top. Before: the
-- carry, at the top, propagated nothing: the content came back, logged with actor NULL.
\set ON_ERROR_STOP 0
SELECT pg_temp.distributed_id() AS n,
       query_to_xml(format('SELECT memoriesdb.authenticate(%L)', :'kv'), true, false, '') IS NOT NULL AS vic_below,
       set_config('app.current_user_proof', '', true) AS broken,
       (SELECT r.content FROM memoriesdb.recall(:'shared') AS r) AS implicit_read \gset
\set ON_ERROR_STOP 1
SELECT is(:'SQLSTATE'::text, 'MDB03', 'implicit transaction, proof emptied on the coordinator after an authenticate() one level down: nobody on the workers too');
-- ... two keys: vic one level down (the workers), uma at the top (the coordinator only); vic's own memory asked for.
-- Before: read as vic on the workers, logged as uma's read.
\set ON_ERROR_STOP 0
SELECT pg_temp.distributed_id() AS n,
       query_to_xml(format('SELECT memoriesdb.authenticate(%L)', :'kv'), true, false, '') IS NOT NULL AS vic_below,
       memoriesdb.authenticate(:'ku') AS uma_above,
       (SELECT r.content FROM memoriesdb.recall(:'vics') AS r) AS implicit_read \gset
\set ON_ERROR_STOP 1
SELECT is(:'SQLSTATE'::text, 'MDB03', 'implicit transaction, two keys (vic below, uma above): vic''s memory is not read as uma''s');
-- ... with citus.function_opens_transaction_block switched off between the two (a function's SET LOCAL is then not
-- propagated at any level: the carry pins it on)
\set ON_ERROR_STOP 0
SELECT pg_temp.distributed_id() AS n,
       query_to_xml(format('SELECT memoriesdb.authenticate(%L)', :'kv'), true, false, '') IS NOT NULL AS vic_below,
       set_config('citus.function_opens_transaction_block', 'off', true) AS off,
       set_config('app.current_user_proof', '', true) AS broken,
       (SELECT r.content FROM memoriesdb.recall(:'shared') AS r) AS implicit_read \gset
\set ON_ERROR_STOP 1
SELECT is(:'SQLSTATE'::text, 'MDB03', '... with citus.function_opens_transaction_block switched off in between: nobody on the workers too');
-- the honest implicit transaction: one context, the read served and logged as vic's
SELECT pg_temp.distributed_id() AS n,
       query_to_xml(format('SELECT memoriesdb.authenticate(%L)', :'kv'), true, false, '') IS NOT NULL AS vic_below,
       (SELECT r.content FROM memoriesdb.recall(:'shared') AS r) AS implicit_read \gset
SELECT is(:'implicit_read'::text, 'uma shares this with vic', 'the honest implicit transaction (authenticate one level down) reads as vic');

-- 2. Fixed: no connection to a worker as a superuser. (A client's SET LOCAL carries the rest of its query to the
-- workers, section 3 below; these probes raise only where they run as a superuser.) Before: forget() looked its
-- memory's owner up through citus_owner_of(), owned by the deploy's superuser; a refusal's access log entry read
-- the logger's sink through Citus as postgres when the client had switched local execution off.
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT memoriesdb.forget(:'doomed') AS _ \gset
SELECT lives_ok($i$SET LOCAL app.probe = 'x'; DO $d$ BEGIN IF current_setting('is_superuser') = 'on' THEN
                     RAISE EXCEPTION 'a client statement ran as superuser % on port %', current_user, inet_server_port(); END IF; END $d$$i$,
                'forget(): no connection of the transaction is a superuser''s (citus_owner_of() is the ledger owner''s)');
ROLLBACK;

-- 3. Fixed in Citus: Citus 13.2.2 sends a propagated SET LOCAL as the whole text of the client's query (utility_hook.c
-- passes queryString; several statements in one simple query, or one EXECUTE): the statements after it ran on every
-- connection of the transaction, and on those opened later, as the role each was opened for. An app login with any
-- key, or none, read and wrote the shards as memoriesdb_owner (it could read the context key and mint any user's
-- proof). The Citus scripts/citus_build.sh builds propagates the SET statement's own text (docs/citus.md, section 1);
-- scripts/test_citus.sh refuses to run on a Citus without that patch.
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT count(*) AS _ FROM memoriesdb.offers() \gset
SELECT lives_ok($i$SET LOCAL app.probe = 'x'; DO $d$ BEGIN IF current_user IN ('memoriesdb_owner', 'memoriesdb_reader') THEN
                     RAISE EXCEPTION 'a client statement ran as % on port %', current_user, inet_server_port(); END IF; END $d$$i$,
                'a client''s SET LOCAL carries no other statement to the workers (with a key: as memoriesdb_owner)');
ROLLBACK;
BEGIN;
SELECT set_config('citus.enable_local_execution', 'off', true) AS _ \gset
SELECT memoriesdb.setting('login_bounds') IS NOT NULL AS _ \gset
SELECT lives_ok($i$SET LOCAL app.probe = 'x'; DO $d$ BEGIN IF current_user IN ('memoriesdb_owner', 'memoriesdb_reader') THEN
                     RAISE EXCEPTION 'a client statement ran as % on port %', current_user, inet_server_port(); END IF; END $d$$i$,
                '... nor without any key (setting() read through a worker as memoriesdb_owner)');
ROLLBACK;

-- 4. Held: savepoints. RELEASE: Citus drops the SET LOCALs of a released savepoint from what it replays on the
-- connections opened later (transaction_management.c, PopSubXact), PostgreSQL keeps them: uma on the coordinator,
-- vic on the new connections, but for the carry.
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SAVEPOINT s;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
RELEASE SAVEPOINT s;
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'vics'), 'MDB03', 'memory not found',
                 'RELEASE: uma on the coordinator, vic replayed on the new connections: vic''s memory is not read as uma''s');
INSERT INTO seen SELECT 'released', r.content FROM memoriesdb.recall(:'private') AS r;
COMMIT;
SELECT is((SELECT v FROM seen WHERE what = 'released'), 'uma keeps this to herself', '... uma''s own memory is read as uma');
-- ROLLBACK TO: uma's context and her connections' settings undone; vic again everywhere
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SAVEPOINT s;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT r.content AS before_rollback_to FROM memoriesdb.recall(:'private') AS r \gset
ROLLBACK TO SAVEPOINT s;
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'private'), 'MDB03', 'memory not found',
                 'ROLLBACK TO after a read as uma: vic again, uma''s private memory is not read');
INSERT INTO seen SELECT 'after rollback to', r.content FROM memoriesdb.recall(:'shared') AS r;
COMMIT;
SELECT is((SELECT v FROM seen WHERE what = 'after rollback to'), 'uma shares this with vic', '... and vic reads what is shared with him');
SELECT is(:'before_rollback_to'::text, 'uma keeps this to herself', '... the read as uma inside the savepoint was served');

-- 5. Held: a cursor kept open across a change of context (each row's call carries the context of its FETCH)
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT current_setting('app.current_user_proof') AS uma_proof \gset
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
DECLARE c CURSOR FOR SELECT r.content FROM unnest(ARRAY[:'vics', :'vics']::uuid[]) AS m(id), LATERAL memoriesdb.recall(m.id) AS r;
FETCH 1 FROM c \gset cursor_
SELECT set_config('app.current_user', :'uma', true), set_config('app.current_user_proof', :'uma_proof', true) \gset
\set ON_ERROR_STOP 0
FETCH 1 FROM c \gset cursor2_
\set st :SQLSTATE
\set ON_ERROR_STOP 1
ROLLBACK;
SELECT is(:'st'::text, 'MDB03', 'a cursor over recall(): the FETCH after uma''s context was set on the coordinator reads as uma (vic''s memory not found)');
SELECT is(:'cursor_content'::text, 'vic keeps this to himself', '... the FETCH before it read as vic');
-- ... and a prepared statement executed after the proof was emptied on the coordinator
PREPARE rec(uuid) AS SELECT r.content FROM memoriesdb.recall($1) AS r;
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
EXECUTE rec(:'shared') \gset prepared_
SELECT set_config('app.current_user_proof', '', true) AS _ \gset
\set ON_ERROR_STOP 0
EXECUTE rec(:'shared') \gset prepared2_
\set st :SQLSTATE
\set ON_ERROR_STOP 1
ROLLBACK;
SELECT is(:'st'::text, 'MDB03', 'a prepared recall() executed after the proof was emptied on the coordinator: nobody');
DEALLOCATE rec;
SELECT is(:'prepared_content'::text, 'uma shares this with vic', '... executed before it: vic''s read');
-- ... and calls per row, the context changed between two rows of one statement (the argument depends on the row:
-- a call whose arguments do not is made once, its rows rewound, not read again)
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
\set ON_ERROR_STOP 0
SELECT i, set_config('app.current_user_proof', CASE WHEN i = 2 THEN '' ELSE current_setting('app.current_user_proof') END, true),
       (SELECT r.content FROM memoriesdb.recall(CASE WHEN i > 0 THEN :'shared'::uuid END) AS r)
  FROM generate_series(1, 2) AS i \gset
\set st :SQLSTATE
\set ON_ERROR_STOP 1
ROLLBACK;
SELECT is(:'st'::text, 'MDB03', 'recall() per row, the proof emptied before the second row: the second call is nobody''s');

-- 6. Held: the Citus settings a session may change, each with the attack of hole 4 (the proof emptied on the
-- coordinator after authenticate()), as SET LOCAL (propagated) and as set_config() (the coordinator only). Some
-- stop authenticate() itself (it then refuses, or finds no distributed transaction id); none lets a read through.
CREATE TEMP TABLE guc_tried (setting text, how text);
CREATE TEMP TABLE guc_read (setting text, how text, content text);
\set ON_ERROR_STOP 0
SELECT format('INSERT INTO guc_tried VALUES (%L, %L)', g || '=' || v, h),
       'BEGIN',
       CASE WHEN h = 'SET LOCAL' THEN format('SET LOCAL %s = %L', g, v)
            ELSE format('DO $x$ BEGIN PERFORM set_config(%L, %L, true); END $x$', g, v) END,
       format($d$DO $x$ BEGIN PERFORM memoriesdb.authenticate(%L); PERFORM set_config('app.current_user_proof', '', true);
                            INSERT INTO guc_read SELECT %L, %L, r.content FROM memoriesdb.recall(%L) AS r; END $x$$d$,
              :'kv', g || '=' || v, h, :'shared'),
       'COMMIT'
  FROM (VALUES ('citus.enable_local_execution', 'off'), ('citus.task_assignment_policy', 'round-robin'),
               ('citus.enable_router_execution', 'off'), ('citus.multi_shard_modify_mode', 'sequential'),
               ('citus.allow_nested_distributed_execution', 'on'), ('citus.force_max_query_parallelization', 'on'),
               ('citus.max_adaptive_executor_pool_size', '16'), ('citus.enable_binary_protocol', 'off'),
               ('citus.select_opens_transaction_block', 'off'), ('citus.function_opens_transaction_block', 'off'),
               ('citus.propagate_set_commands', 'none'), ('citus.enable_fast_path_router_planner', 'off')) AS s(g, v),
       (VALUES ('SET LOCAL'), ('set_config')) AS x(h) \gexec
\set ON_ERROR_STOP 1
SELECT is((SELECT count(*) FROM guc_tried), 24::bigint, 'each of 12 Citus settings, set both ways, tried');
SELECT is((SELECT string_agg(setting || ' (' || how || ')', ', ') FROM guc_read), NULL,
          'no Citus setting a session may change lets a proof emptied on the coordinator read on the workers');
RESET SESSION AUTHORIZATION;

-- 7. A backend (vouch()): the implicit transaction, two users vouched for (Fixed, as 1), and a vouching login
-- rewritten on the coordinator only (Held)
SET SESSION AUTHORIZATION mdb_citus_test_backend;
\ir ../test_session.psql
\set ON_ERROR_STOP 0
SELECT pg_temp.distributed_id() AS n,
       query_to_xml(format('SELECT memoriesdb.vouch(%L)', :'vic'), true, false, '') IS NOT NULL AS vic_below,
       memoriesdb.vouch(:'uma') AS uma_above,
       (SELECT r.content FROM memoriesdb.recall(:'vics') AS r) AS implicit_read \gset
\set ON_ERROR_STOP 1
SELECT is(:'SQLSTATE'::text, 'MDB03', 'a backend, implicit transaction, vic vouched for below and uma above: vic''s memory is not read as uma''s');
BEGIN;
SELECT memoriesdb.vouch(:'vic') AS _ \gset
SELECT set_config('app.current_user_vouched_by', '', true) AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'shared'), 'MDB03', 'memory not found',
                 'a backend''s vouching login emptied on the coordinator after vouch(): nobody on the workers too');
COMMIT;
BEGIN;
SELECT memoriesdb.vouch(:'vic') AS _ \gset
INSERT INTO seen SELECT 'vouched', r.content FROM memoriesdb.recall(:'shared') AS r;
COMMIT;
RESET SESSION AUTHORIZATION;
\set VERBOSITY default

SELECT is((SELECT v FROM seen WHERE what = 'vouched'), 'uma shares this with vic', 'the honest vouch(): vic reads what is shared with him');
-- the access log: every granted read named its reader
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'shared' = ANY (a.memory_ids) AND a.actor IS DISTINCT FROM :'vic'),
          0::bigint, 'every granted recall of the shared memory is logged with vic as its actor (none with NULL)');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'shared' = ANY (a.memory_ids) AND a.actor = :'vic'),
          5::bigint, '... five of them (the honest implicit one, after ROLLBACK TO, the per-row first, the prepared one, the vouched one)');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'vics' = ANY (a.memory_ids) AND a.actor IS DISTINCT FROM :'vic'),
          0::bigint, 'vic''s memory: no granted read logged for anyone but vic');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'vics' = ANY (a.memory_ids) AND a.actor = :'vic'),
          1::bigint, '... one by vic (the cursor''s first FETCH)');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'private' = ANY (a.memory_ids) AND a.actor IS DISTINCT FROM :'uma'),
          0::bigint, 'uma''s private memory: no granted read logged for anyone but uma');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'vics' = ANY (a.memory_ids) AND a.vouched_by IS NOT NULL),
          0::bigint, 'no vouched read of vic''s memory (the backend''s attack)');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND a.vouched_by = 'mdb_citus_test_backend' AND :'shared' = ANY (a.memory_ids)
              AND a.actor = :'vic'),
          1::bigint, 'the honest vouched read names vic and the backend');
SELECT is((SELECT m.owner_id FROM memoriesdb.memories AS m WHERE m.id = :'doomed')::text, :'vic', 'the forget() of section 2 was rolled back');

SELECT * FROM finish();
