-- Across transactions of one session (as under PgBouncer): a transaction-local
-- context must not outlive its transaction, and commit-time sealing must hold.
-- This file commits (it cannot test COMMIT otherwise), so it runs last and
-- uses handles of its own.
\set ON_ERROR_STOP 1
SELECT plan(9);

BEGIN;
SELECT tests.create_user('session_alice') AS alice \gset
SELECT tests.memory_of(:'alice', 'committed memory') AS m1 \gset
COMMIT;

BEGIN;
SELECT tests.act_as(:'alice');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 1::bigint, 'inside the transaction alice sees her memory');
COMMIT;

SET ROLE memoriesdb_app;
SELECT is(current_setting('app.current_user', true), '', 'after COMMIT the setting reads empty');
SELECT is(memoriesdb.current_user_id(), NULL, 'after COMMIT there is no context');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'the next transaction sees nothing');
SELECT throws_ok($$ SELECT memoriesdb.remember('leak?') $$, 'MDB01', 'no user context', 'the next transaction cannot write as alice');

BEGIN;
SELECT memoriesdb.create_api_key(:'alice') AS akey \gset
SELECT memoriesdb.authenticate(:'akey');
COMMIT;
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), 0::bigint, 'authenticate() does not outlive its transaction either');

BEGIN;
SELECT memoriesdb.authenticate(:'akey');
SELECT memoriesdb.remember('written in a rolled back transaction');
ROLLBACK;
RESET ROLE;

SELECT is((SELECT count(*) FROM memoriesdb.audit_log WHERE new_row->>'content' = 'written in a rolled back transaction'), 0::bigint,
  'a rolled-back transaction leaves no audit rows');
SELECT ok((SELECT count(*) > 0 FROM memoriesdb.audit_seals s JOIN memoriesdb.audit_log a ON a.txid = s.txid AND a.row_id = :'m1'),
  'a committed transaction''s audit rows are sealed at COMMIT');
SET ROLE memoriesdb_auditor;
SELECT results_eq($$ SELECT ok, first_broken_id FROM memoriesdb.verify_audit_chain() $$, $$ VALUES (true, NULL::bigint) $$,
  'the chain verifies after real commits');
RESET ROLE;

SELECT * FROM finish();
