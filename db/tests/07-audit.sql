-- The audit log: complete, append-only, readable by the right people, tamper-evident.
BEGIN;
SELECT plan(34);
-- seal at the end of each statement rather than at COMMIT (which this test never reaches)
SET CONSTRAINTS ALL IMMEDIATE;
SET LOCAL application_name = 'pgtap-audit';

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');   -- bob takes alice's shares and transfers at once (offers: 22-offers.sql)
SELECT tests.clear_context();
SELECT tests.act_as(:'alice');
SELECT memoriesdb.remember('audited', '{"k": 1}') AS a1 \gset
SELECT memoriesdb.revise(:'a1', 'audited v2');
SELECT memoriesdb.share(:'a1', :'bob');
SELECT tests.clear_context();

SELECT results_eq(format($$ SELECT created_by, db_role, application_name, op, new_row->>'content', txid = pg_current_xact_id()
                                FROM memoriesdb.audit_log WHERE table_name = 'memories' AND row_id = %L ORDER BY id $$, :'a1'),
  format($$ VALUES (%1$L::uuid, 'memoriesdb_app'::text, 'pgtap-audit'::text, 'INSERT'::text, 'audited'::text, true),
                   (%1$L, 'memoriesdb_app', 'pgtap-audit', 'UPDATE', 'audited v2', true) $$, :'alice'),
  'remember and revise are audited: actor, role, application_name, operation, state, transaction');
SELECT is((SELECT old_row->>'content' FROM memoriesdb.audit_log WHERE table_name = 'memories' AND op = 'UPDATE' AND row_id = :'a1'),
  'audited', 'an UPDATE keeps the before state');
SELECT is((SELECT count(*) FROM memoriesdb.audit_log WHERE table_name = 'memory_grants' AND memory_id = :'a1'), 1::bigint, 'share is audited');
SELECT is((SELECT count(*) FROM memoriesdb.audit_log WHERE table_name = 'memory_revisions' AND memory_id = :'a1'), 2::bigint, 'revisions are audited');
SELECT is((SELECT count(*) FROM memoriesdb.audit_log WHERE table_name = 'users' AND row_id IN (:'alice', :'bob')), 2::bigint, 'user creation is audited');

-- embeddings are replaced by their hash
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT memory_id, lease_id FROM memoriesdb.claim_embedding_jobs(10) WHERE memory_id = :'a1' \gset
SELECT memoriesdb.complete_embedding_job(:'memory_id', :'lease_id', tests.axis(1), 'test-model');
SELECT tests.clear_context();
SELECT ok((SELECT NOT (new_row ? 'embedding') AND new_row->>'embedding_sha256' ~ '^[0-9a-f]{64}$'
             FROM memoriesdb.audit_log WHERE table_name = 'memories' AND row_id = :'a1' AND new_row->>'embedding_model' = 'test-model'),
  'the stored embedding appears in the audit log only as its SHA-256');
SELECT is((SELECT db_role FROM memoriesdb.audit_log WHERE table_name = 'memories' AND row_id = :'a1' AND new_row->>'embedding_model' = 'test-model'),
  'memoriesdb_worker', 'the worker''s write is attributed to the worker role');

-- who reads what
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.audit_log $$, '42501', NULL, 'the owner reads no audit row directly (provenance() is her view)');
SELECT cmp_ok((SELECT count(*) FROM memoriesdb.provenance(:'a1')), '>=', 2::bigint, 'provenance() shows her memory''s history');
SELECT tests.act_as(:'bob');
SELECT throws_ok($$ SELECT count(*) FROM memoriesdb.audit_log $$, '42501', NULL, 'bob (a grantee) reads none of them');
SELECT tests.act_as(NULL, 'memoriesdb_auditor');
SELECT is((SELECT count(*) FROM memoriesdb.audit_log), (SELECT count(*) FROM memoriesdb.audit_log), 'the auditor reads the whole log');
SELECT tests.clear_context();
SELECT (SELECT count(*) FROM memoriesdb.audit_log) AS n_all \gset
SELECT tests.act_as(NULL, 'memoriesdb_auditor');
SELECT is((SELECT count(*) FROM memoriesdb.audit_log), :n_all::bigint, 'the auditor reads every row');
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], 'the auditor verifies an intact chain');

-- append-only for every role
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ INSERT INTO memoriesdb.audit_log (db_role, table_name, op, row_hash) VALUES ('x', 'x', 'INSERT', '\x00') $$, '42501', NULL, 'the app role cannot insert audit rows');
SELECT throws_ok($$ UPDATE memoriesdb.audit_log SET db_role = 'x' $$, '42501', NULL, 'the app role cannot update audit rows');
SELECT throws_ok($$ DELETE FROM memoriesdb.audit_log $$, '42501', NULL, 'the app role cannot delete audit rows');
SELECT tests.act_as(NULL, 'memoriesdb_auditor');
SELECT throws_ok($$ DELETE FROM memoriesdb.audit_log $$, '42501', NULL, 'the auditor cannot delete audit rows');
SELECT tests.act_as(NULL, 'memoriesdb_owner');
SELECT throws_ok($$ UPDATE memoriesdb.audit_log SET db_role = 'x' $$, 'MDB20', 'audit_log is append-only: UPDATE refused', 'the owner cannot UPDATE the log');
SELECT throws_ok($$ DELETE FROM memoriesdb.audit_log $$, 'MDB20', 'audit_log is append-only: DELETE refused', 'the owner cannot DELETE from the log');
SELECT throws_ok($$ TRUNCATE memoriesdb.audit_log $$, 'MDB20', 'audit_log is append-only: TRUNCATE refused', 'the owner cannot TRUNCATE the log');
SELECT throws_ok($$ DELETE FROM memoriesdb.audit_seals $$, 'MDB20', 'audit_seals is append-only: DELETE refused', 'the owner cannot DELETE seals');
SELECT tests.clear_context();
SELECT throws_ok($$ UPDATE memoriesdb.audit_log SET db_role = 'x' $$, 'MDB20', 'audit_log is append-only: UPDATE refused', 'a superuser''s plain UPDATE is refused too');
SELECT throws_ok($$ TRUNCATE memoriesdb.audit_seals $$, 'MDB20', 'audit_seals is append-only: TRUNCATE refused', 'a superuser''s plain TRUNCATE of the seals is refused too');

-- hashes do not depend on session settings
SET LOCAL TimeZone = 'Pacific/Chatham';
SET LOCAL DateStyle = 'SQL, DMY';
SET LOCAL extra_float_digits = -3;
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], 'the chain verifies under another TimeZone, DateStyle and float setting');
RESET TimeZone; RESET DateStyle; RESET extra_float_digits;

-- a superuser who disables the triggers can change the log, but not unseen
SELECT id AS victim FROM memoriesdb.audit_log WHERE table_name = 'memories' AND op = 'UPDATE' AND row_id = :'a1' ORDER BY id LIMIT 1 \gset
SET LOCAL session_replication_role = replica;

SAVEPOINT tamper;
UPDATE memoriesdb.audit_log SET new_row = jsonb_set(new_row, '{content}', '"forged"') WHERE id = :victim;
SELECT results_eq($$ SELECT ok, first_broken_id FROM memoriesdb.verify_audit_chain() $$,
  format('VALUES (false, %s::bigint)', :victim), 'an edited audit row is caught and named');
SELECT matches((SELECT problem FROM memoriesdb.verify_audit_chain()), 'edited', 'the problem says it was edited');
ROLLBACK TO SAVEPOINT tamper;

UPDATE memoriesdb.audit_log SET new_row = jsonb_set(new_row, '{content}', '"forged"') WHERE id = :victim;
UPDATE memoriesdb.audit_log SET row_hash = sha256(memoriesdb_internal.audit_canonical(audit_log)) WHERE id = :victim;
SELECT is((SELECT first_broken_id FROM memoriesdb.verify_audit_chain()), :victim::bigint, 'an edit with a recomputed row hash is caught by the seal');
ROLLBACK TO SAVEPOINT tamper;

DELETE FROM memoriesdb.audit_log WHERE id = :victim;
SELECT results_eq($$ SELECT ok, problem ~ 'deleted or reordered' FROM memoriesdb.verify_audit_chain() $$,
  $$ VALUES (false, true) $$, 'a deleted audit row is caught');
ROLLBACK TO SAVEPOINT tamper;

UPDATE memoriesdb.audit_log AS a
   SET created_at = b.created_at, created_by = b.created_by, db_role = b.db_role, application_name = b.application_name,
       txid = b.txid, table_name = b.table_name, row_id = b.row_id, memory_id = b.memory_id, op = b.op,
       old_row = b.old_row, new_row = b.new_row, row_hash = b.row_hash
  FROM memoriesdb.audit_log AS b
 WHERE (a.id, b.id) IN ((:victim, :victim + 1), (:victim + 1, :victim));
SELECT results_eq($$ SELECT ok, first_broken_id FROM memoriesdb.verify_audit_chain() $$,
  format('VALUES (false, %s::bigint)', :victim), 'two audit rows swapped (reordered) are caught');
ROLLBACK TO SAVEPOINT tamper;

INSERT INTO memoriesdb.audit_log (db_role, table_name, op, new_row, row_hash) VALUES ('postgres', 'memories', 'INSERT', '{}', '\x00');
UPDATE memoriesdb.audit_log SET row_hash = sha256(memoriesdb_internal.audit_canonical(audit_log)) WHERE id = (SELECT max(id) FROM memoriesdb.audit_log);
SELECT matches((SELECT problem FROM memoriesdb.verify_audit_chain()), 'not covered by any seal', 'a row slipped in behind the ledger is caught');
ROLLBACK TO SAVEPOINT tamper;

UPDATE memoriesdb.audit_seals SET row_count = row_count + 1 WHERE seq = (SELECT max(seq) FROM memoriesdb.audit_seals);
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[false], 'an edited seal is caught');
ROLLBACK TO SAVEPOINT tamper;

DELETE FROM memoriesdb.audit_seals WHERE seq = (SELECT max(seq) - 1 FROM memoriesdb.audit_seals);
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[false], 'a removed seal is caught');
ROLLBACK TO SAVEPOINT tamper;

SET LOCAL session_replication_role = origin;
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], 'untampered again, the chain verifies');
SELECT results_eq($$ SELECT seq, seal_hash FROM memoriesdb.audit_head() $$,
  $$ SELECT seq, seal_hash FROM memoriesdb.audit_seals ORDER BY seq DESC LIMIT 1 $$, 'audit_head() is the newest seal');

SELECT * FROM finish();
ROLLBACK;
