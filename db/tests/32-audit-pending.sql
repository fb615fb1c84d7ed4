-- Seals that wait for their chain (issue 13: no tenant's open transaction holds up another's commit).
-- A second connection (dblink) holds a chain the way an open transaction does; this transaction's
-- rows of that chain then wait in audit_pending instead of waiting for it, verification counts them
-- as waiting (not as inserted behind the ledger), and the chain's next sealer seals them in order.
BEGIN;
SELECT plan(16);
SET CONSTRAINTS ALL IMMEDIATE;

SELECT tests.create_user('pend_alice') AS alice \gset
SELECT tests.create_user('pend_dave') AS dave \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.remember('alice''s gift for dave', '{}') AS gift \gset
SELECT tests.clear_context();

-- another transaction holds dave's chain (here: it is inserting its head row, dave's first seal)
SELECT memoriesdb_dblink.dblink_connect('holder', format('host=%s port=%s dbname=%s user=%s',
  coalesce(host(inet_server_addr()), 'localhost'), inet_server_port(), current_database(), current_user));
SELECT memoriesdb_dblink.dblink_exec('holder', 'BEGIN');
SELECT memoriesdb_dblink.dblink_exec('holder', format(
  $$ INSERT INTO memoriesdb_internal.audit_chain_heads (chain, chain_seq, seal_hash) VALUES (%L, 0, memoriesdb_internal.audit_genesis(%L::uuid)) $$,
  :'dave', :'dave'));

-- dave accepts alice, alice gives him the memory: dave's chain is held, neither statement waits for it
SELECT tests.act_as(:'dave');
SELECT lives_ok(format($$ SELECT memoriesdb.accept_sender(%L) $$, :'alice'), 'dave''s write does not wait for the transaction holding his chain');
SELECT tests.act_as(:'alice');
SELECT lives_ok(format($$ SELECT memoriesdb.transfer(%L, %L, 'for you') $$, :'gift', :'dave'), 'nor does alice''s transfer to him');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb_internal.audit_pending WHERE chain = :'dave' AND txid = pg_current_xact_id()), 1::bigint,
  'dave''s chain''s rows of this transaction wait for it');
SELECT is((SELECT count(*) FROM memoriesdb.audit_seals WHERE chain = :'dave'), 0::bigint, '... unsealed');
SELECT is((SELECT s.peers FROM memoriesdb.audit_seals AS s WHERE s.chain = :'alice' AND s.txid = pg_current_xact_id() AND s.peers IS NOT NULL),
  jsonb_build_array(jsonb_build_object('chain', :'dave', 'seq', NULL)),
  'the transfer''s seal in alice''s chain names dave''s chain as its peer, sealed later (no position yet)');
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true],
  'rows that wait for their chain are not rows inserted behind the ledger');
SELECT is(memoriesdb.audit_seal_pending(), 0, 'audit_seal_pending() skips a chain still held');

-- the holder ends: the next sealer seals what waited, as the chain's first seal, naming alice's
SELECT memoriesdb_dblink.dblink_exec('holder', 'ROLLBACK');
SELECT memoriesdb_dblink.dblink_disconnect('holder');
SELECT is(memoriesdb.audit_seal_pending(), 1, 'once the chain is free, audit_seal_pending() seals it');
SELECT is((SELECT count(*) FROM memoriesdb_internal.audit_pending), 0::bigint, 'nothing waits any more');
SELECT is((SELECT chain_seq FROM memoriesdb.audit_seals WHERE chain = :'dave'), 1::bigint, 'dave''s chain starts with it');
SELECT is((SELECT s.peers FROM memoriesdb.audit_seals AS s WHERE s.chain = :'dave'),
  (SELECT jsonb_build_array(jsonb_build_object('chain', s.chain, 'seq', s.chain_seq)) FROM memoriesdb.audit_seals AS s
    WHERE s.chain = :'alice' AND s.txid = pg_current_xact_id() AND s.peers IS NOT NULL),
  '... naming the transfer''s seal in alice''s chain with its position');
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], 'the history verifies');
SELECT tests.act_as(:'dave');
SELECT cmp_ok((SELECT count(*) FROM memoriesdb.audit_receipts(:'gift')), '>=', 1::bigint, 'dave now has the receipt of the transfer to him');
SELECT tests.clear_context();

-- tampering: a waiting pair removed (its rows left unsealed), or the later-sealed peer removed
SAVEPOINT tamper;
ALTER TABLE memoriesdb.audit_seals DISABLE TRIGGER append_only;
DELETE FROM memoriesdb.audit_seals WHERE chain = :'dave';
ALTER TABLE memoriesdb.audit_seals ENABLE TRIGGER append_only;
SELECT ok((SELECT bool_or(problem ~ 'its peer, seal \(sealed later\) of chain') FROM memoriesdb.audit_problems()),
  'the later-sealed side of a transfer removed: alice''s seal names its missing peer');
ROLLBACK TO SAVEPOINT tamper;
SELECT throws_ok($$ SELECT memoriesdb.audit_seal_pending(0) $$, 'MDB05', 'max_seals out of range', 'max_seals below 1 is refused');
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT memoriesdb.audit_seal_pending() $$, '42501', NULL, 'a user cannot run the sealer');
SELECT tests.clear_context();

SELECT * FROM finish();
ROLLBACK;
