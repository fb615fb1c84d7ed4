-- Citus (issue 17): a trusted backend (memoriesdb_backend) vouches for its users with memoriesdb.vouch(user_id),
-- which reaches every node with a proof; a bare uuid is nobody, for backends too; the vouching login is recorded
-- in audit rows (written on the workers) and access log entries. Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(20);

SELECT memoriesdb.create_user('olga' || (random() * 1e9)::bigint) AS olga \gset
SELECT pg_temp.user_apart('pete', :'olga') AS pete \gset
CREATE TEMP TABLE seen (what text, n bigint, v text);
GRANT ALL ON seen TO PUBLIC;

SET SESSION AUTHORIZATION mdb_citus_test_backend;
-- a bare uuid, even from a backend, is nobody on Citus
BEGIN;
SET LOCAL app."current_user" = :'olga';
INSERT INTO seen SELECT 'bare', NULL, memoriesdb.current_user_id()::text;
SELECT throws_ok($$SELECT memoriesdb.remember('from a bare uuid')$$, 'MDB01', NULL, 'a backend''s bare uuid cannot remember');
COMMIT;
-- vouched: remember on olga's worker and pete's, then read them back
BEGIN;
SELECT memoriesdb.vouch(:'olga') AS _ \gset
SELECT memoriesdb.remember('olga, vouched for by the backend') AS o1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.vouch(:'pete') AS _ \gset
SELECT memoriesdb.remember('pete, vouched for by the backend') AS p1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.vouch(:'olga') AS _ \gset
INSERT INTO seen SELECT 'olga lists', count(*), string_agg(l.id::text, ',') FROM memoriesdb.list_memories() AS l;
INSERT INTO seen SELECT 'olga recalls', NULL, r.content FROM memoriesdb.recall(:'o1') AS r;
COMMIT;
-- the vouching login rewritten after vouch(): the proof no longer holds, on any node
BEGIN;
SELECT memoriesdb.vouch(:'olga') AS _ \gset
SET LOCAL app.current_user_vouched_by = 'someone_else';
INSERT INTO seen SELECT 'forged login', count(*), memoriesdb.current_user_id()::text FROM memoriesdb.list_memories() AS l;
COMMIT;
INSERT INTO seen SELECT 'next transaction', NULL, memoriesdb.current_user_id()::text;
SELECT throws_ok(format('SELECT memoriesdb.vouch(%L)', gen_random_uuid()), 'MDB02', NULL, 'vouch() for no user: MDB02');
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION mdb_citus_test_app;
SELECT throws_ok(format('SELECT memoriesdb.vouch(%L)', :'olga'), '42501', NULL, 'an app login cannot vouch (42501)');
-- (red team) a client that sets its distributed transaction id could replay another transaction's proof
SELECT throws_ok($$SELECT assign_distributed_transaction_id(0, 1, now())$$, '42501', NULL,
                 'an app login cannot set its distributed transaction id (the proof binds it)');
SELECT throws_ok($$SELECT * FROM get_all_active_transactions()$$, '42501', NULL,
                 '... nor list the other sessions'' ids');
RESET SESSION AUTHORIZATION;
-- (red team) a backend moving the vouching into its login: the proof's fields are unambiguous
SET SESSION AUTHORIZATION mdb_citus_test_backend;
BEGIN;
SELECT memoriesdb.vouch(:'pete') AS _ \gset
SET LOCAL app.current_login = 'mdb_citus_test_backend|vouched|mdb_citus_test_backend';
SET LOCAL app.current_user_vouched_by = '';
INSERT INTO seen SELECT 'vouching moved into the login', NULL, memoriesdb.current_user_id()::text;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT v FROM seen WHERE what = 'vouching moved into the login'), NULL, 'a vouching moved into the login breaks the proof');

SELECT is((SELECT v FROM seen WHERE what = 'bare'), NULL, 'a bare uuid set by a backend: no context on the coordinator either');
SELECT is((SELECT row(n, v)::text FROM seen WHERE what = 'olga lists'), row(1::bigint, :'o1')::text,
          'vouched: olga lists her memory from her worker, and only hers');
SELECT is((SELECT v FROM seen WHERE what = 'olga recalls'), 'olga, vouched for by the backend', '... and recalls it');
SELECT is((SELECT row(n, v)::text FROM seen WHERE what = 'forged login'), row(0::bigint, NULL::text)::text,
          'the vouching login rewritten after vouch(): nobody, on the coordinator and the workers');
SELECT is((SELECT v FROM seen WHERE what = 'next transaction'), NULL, 'vouch() ends with its transaction');
SELECT a.vouched_by AS o1_vouched FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'olga' AND a.table_name = 'memories' AND a.row_id = :'o1' \gset
SELECT a.vouched_by AS p1_vouched FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'pete' AND a.table_name = 'memories' AND a.row_id = :'p1' \gset
SELECT is(:'o1_vouched'::text, 'mdb_citus_test_backend', 'the audit row of olga''s memory (on her worker) names the backend that vouched');
SELECT is(:'p1_vouched'::text, 'mdb_citus_test_backend', '... and pete''s, on the other worker');
-- (read first: pgTAP's is() over a query on one shard would be pushed down to the worker with it)
SELECT a.login AS o1_login FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'olga' AND a.table_name = 'memories' AND a.row_id = :'o1' \gset
SELECT is(:'o1_login'::text, 'mdb_citus_test_backend', 'its login is the backend''s, not the role Citus connected to the worker as');
-- an app login's write: its login on the audit row written on the worker
SELECT memoriesdb.create_api_key(:'olga') AS ko \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
BEGIN;
SELECT memoriesdb.authenticate(:'ko') AS _ \gset
SELECT memoriesdb.remember('olga, by her key') AS o2 \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT row(a.login, a.vouched_by)::text AS o2_who FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'olga' AND a.table_name = 'memories' AND a.row_id = :'o2' \gset
SELECT is(:'o2_who'::text, row('mdb_citus_test_app'::name, NULL::name)::text, 'an app login''s write on the worker records that login, vouched by nobody');
-- (red team) a key can be revoked on Citus (an UPDATE of the reference table api_keys), by its id
SELECT k.id AS ko_id FROM memoriesdb.api_keys AS k WHERE k.user_id = :'olga' AND k.key_hash = sha256(convert_to(:'ko', 'UTF8')) \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
BEGIN;
SELECT memoriesdb.authenticate(:'ko') AS _ \gset
SELECT lives_ok(format('SELECT memoriesdb.revoke_api_key(%L::uuid)', :'ko_id'), 'olga revokes her key by its id');
COMMIT;
SELECT throws_ok(format('SELECT memoriesdb.authenticate(%L)', :'ko'), 'MDB10', NULL, '... and it no longer authenticates');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT a.vouched_by::text FROM memoriesdb.access_log AS a WHERE a.function = 'recall' AND a.actor = :'olga' ORDER BY a.at DESC LIMIT 1),
          'mdb_citus_test_backend', 'the access log entry of the recall names it too');
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'the vouched writes are sealed');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain() AS v), '(t,)', 'and every chain verifies');

SELECT * FROM finish();
