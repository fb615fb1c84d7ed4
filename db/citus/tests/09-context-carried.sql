-- Citus (issue 17, red team hole 4): set_config() changes the coordinator's settings only, SET LOCAL reaches the
-- workers. A client that changed its context with set_config() after authenticate() was nobody on the coordinator
-- (which writes the access log's entry) and still itself on the workers (which read the rows): recall() of a memory
-- shared with it returned the content with an entry whose actor was NULL. And a client holding two keys could read
-- as one user on the workers and be logged as the other. Every API call now carries the coordinator's context to
-- the workers first (memoriesdb_internal.citus_carry_context()): the two views are one within a call.
-- Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(17);

SELECT memoriesdb.create_user('uma' || (random() * 1e9)::bigint) AS uma \gset
SELECT pg_temp.user_apart('vic', :'uma') AS vic \gset
SELECT memoriesdb.create_api_key(:'uma') AS ku \gset
SELECT memoriesdb.create_api_key(:'vic') AS kv \gset

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
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.share(:'shared', :'vic') AS _ \gset
COMMIT;

CREATE TEMP TABLE seen (what text, v text);
-- the attack of hole 4: the proof emptied on the coordinator only, after authenticate()
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT set_config('app.current_user_proof', '', true) AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'shared'), 'MDB03', 'memory not found',
                 'a proof emptied on the coordinator only: nobody on the workers too (no read)');
COMMIT;
-- every setting emptied on the coordinator only (it then looks like a session that never authenticated)
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT set_config('app.current_user', '', true), set_config('app.current_user_proof', '', true),
       set_config('app.current_login', '', true) \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'shared'), 'MDB03', 'memory not found',
                 'the whole context emptied on the coordinator only: nobody on the workers too');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, '... and lists nothing');
COMMIT;
-- a session-level SET (not SET LOCAL: not propagated) of the proof. On purpose: the attack is a session-level setting
-- (Citus does not propagate it); it empties the proof, grants nothing, runs on pg_prove's direct connection (never
-- pooled), and is RESET right after the transaction.
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SET app.current_user_proof = '';
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'shared'), 'MDB03', 'memory not found',
                 'a session-level SET of the proof (not propagated): nobody on the workers too');
COMMIT;
RESET app.current_user_proof;
-- ... with the client's propagation of SET LOCAL switched off first (a setting any session may change)
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SET LOCAL citus.propagate_set_commands = 'none';
SELECT set_config('app.current_user_proof', '', true) AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'shared'), 'MDB03', 'memory not found',
                 'propagation switched off by the client: the API functions propagate anyway');
COMMIT;
-- two keys: vic's context on the workers, uma's restored on the coordinator only; vic's own memory asked for (the
-- workers, as vic, would read it; the coordinator would log uma as its reader)
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT current_setting('app.current_user_proof') AS uma_proof \gset
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT set_config('app.current_user', :'uma', true), set_config('app.current_user_proof', :'uma_proof', true) \gset
INSERT INTO seen SELECT 'coordinator view', memoriesdb.current_user_id()::text;
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'vics'), 'MDB03', 'memory not found',
                 'uma''s context on the coordinator, vic''s on the workers: vic''s memory is not read as uma''s');
INSERT INTO seen SELECT 'two keys recall', r.content FROM memoriesdb.recall(:'private') AS r;
-- a write: as the coordinator's user, on every node
SELECT memoriesdb.remember('written under two keys') AS two_keys \gset
COMMIT;
-- the honest paths still work: a second call in the same transaction (connections to the workers open: the
-- context carried again over them), and a context restored by authenticate() after it was broken
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
INSERT INTO seen SELECT 'first call', r.content FROM memoriesdb.recall(:'shared') AS r;
INSERT INTO seen SELECT 'second call', r.content FROM memoriesdb.recall(:'shared') AS r;
SELECT set_config('app.current_user_proof', '', true) AS _ \gset
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
INSERT INTO seen SELECT 'restored', r.content FROM memoriesdb.recall(:'shared') AS r;
COMMIT;
RESET SESSION AUTHORIZATION;

SELECT is((SELECT v FROM seen WHERE what = 'coordinator view'), :'uma', 'two keys: the coordinator''s view was uma');
SELECT is((SELECT v FROM seen WHERE what = 'two keys recall'), 'uma keeps this to herself',
          '... and uma''s own memory is read as uma (the workers were vic until the call carried uma''s context)');
SELECT m.owner_id AS two_keys_owner FROM memoriesdb.memories AS m WHERE m.id = :'two_keys' \gset
SELECT is(:'two_keys_owner'::text, :'uma', 'a write under two keys is the coordinator''s user''s, on her shard');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'vics' = ANY (a.memory_ids)),
          0::bigint, 'vic''s own memory: no granted read logged (it was never read)');
SELECT is((SELECT v FROM seen WHERE what = 'first call'), 'uma shares this with vic', 'vic recalls the shared memory');
SELECT is((SELECT v FROM seen WHERE what = 'second call'), 'uma shares this with vic', '... again in the same transaction');
SELECT is((SELECT v FROM seen WHERE what = 'restored'), 'uma shares this with vic', '... and after authenticate() again');

-- the access log: no granted read of either memory with an actor other than the reader the workers read as
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'shared' = ANY (a.memory_ids) AND a.actor IS DISTINCT FROM :'vic'),
          0::bigint, 'every granted recall of the shared memory is logged with vic as its actor (none with NULL)');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'shared' = ANY (a.memory_ids) AND a.actor = :'vic'),
          3::bigint, '... three of them');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate IS NULL AND :'private' = ANY (a.memory_ids) AND a.actor IS DISTINCT FROM :'uma'),
          0::bigint, 'uma''s private memory: no granted read logged for anyone but uma');
SELECT is((SELECT count(*) FROM memoriesdb.access_log AS a
            WHERE a.function = 'recall' AND a.sqlstate = 'MDB03' AND :'shared' = ANY (a.memory_ids) AND a.actor IS NULL),
          4::bigint, 'the four broken contexts'' attempts on the shared memory are logged as refusals by nobody');

SELECT * FROM finish();
