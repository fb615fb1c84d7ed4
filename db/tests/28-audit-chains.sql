-- Per-owner audit chains, checkpoints kept outside, receipts, and the eight ways a superuser
-- could tamper with the history, each named by verify_audit_chain(checkpoint) (issue 14).
BEGIN;
SELECT plan(57);
-- seal at the end of each statement rather than at COMMIT (which this test never reaches)
SET CONSTRAINTS ALL IMMEDIATE;

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.create_user('carol') AS carol \gset
SELECT '00000000-0000-0000-0000-000000000000' AS common \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');
SELECT memoriesdb.remember('bob''s own', '{}') AS b1 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.remember('chained one', '{}') AS a1 \gset
SELECT memoriesdb.remember('chained two', '{}') AS a2 \gset
SELECT memoriesdb.revise(:'a1', 'chained one v2');
SELECT memoriesdb.share(:'a1', :'bob');
SELECT tests.act_as(:'carol');
SELECT memoriesdb.remember('carol 1', '{}') AS c1 \gset
SELECT memoriesdb.remember('carol 2', '{}') AS c2 \gset
SELECT memoriesdb.revise(:'c2', 'carol 2, revised');
SELECT memoriesdb.remember('carol 3', '{}') AS c3 \gset
SELECT tests.clear_context();

-- 1. which chain a row belongs to ---------------------------------------------
SELECT results_eq(format($$ SELECT DISTINCT chain FROM memoriesdb.audit_log WHERE memory_id IN (%L, %L) $$, :'a1', :'a2'),
  format($$ VALUES (%L::uuid) $$, :'alice'), 'alice''s memories, revisions and grants are in her chain');
SELECT is((SELECT chain FROM memoriesdb.audit_log WHERE table_name = 'memory_grants' AND memory_id = :'a1'), :'alice'::uuid,
  'a grant is in the chain of the memory''s owner, not the grantee''s');
SELECT is((SELECT chain FROM memoriesdb.audit_log WHERE table_name = 'users' AND row_id = :'alice'), :'common'::uuid,
  'a user row belongs to the common chain');
SELECT is((SELECT chain FROM memoriesdb.audit_log WHERE table_name = 'accepted_senders' AND new_row->>'user_id' = :'bob'), :'bob'::uuid,
  'bob''s accepted sender is in his chain');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.create_edge_type('alice_cites', 'chains test');
SELECT tests.clear_context();
SELECT is((SELECT chain FROM memoriesdb.audit_log WHERE table_name = 'edge_types' AND new_row->>'name' = 'alice_cites'), :'alice'::uuid,
  'an edge type a user creates is in the creator''s chain (her open transaction never holds the common chain)');
UPDATE memoriesdb.config SET value = value WHERE key = 'api_key_lifetime';
SELECT is((SELECT chain FROM memoriesdb.audit_log WHERE table_name = 'config' AND txid = pg_current_xact_id()), :'common'::uuid,
  'a change of config is in the common chain');
SELECT is((SELECT count(*) FROM memoriesdb.audit_log WHERE txid = pg_current_xact_id() AND chain IS NULL), 0::bigint,
  'no new row is in the legacy chain');

-- 2. seals: one per chain touched, numbered per chain, chained from the chain's own genesis
-- (in this test each statement seals: remember() makes two seals, one per inner INSERT)
SELECT max(chain_seq) AS carol_head FROM memoriesdb.audit_seals WHERE chain = :'carol' \gset
SELECT cmp_ok(:carol_head, '>=', 4, 'carol''s four writes: at least four seals in her chain');
SELECT results_eq(format($$ SELECT chain_seq FROM memoriesdb.audit_seals WHERE chain = %L ORDER BY chain_seq $$, :'carol'),
  format($$ SELECT generate_series(1, %s)::bigint $$, :carol_head), 'numbered 1..n in her chain, no gap');
SELECT is((SELECT prev_hash FROM memoriesdb.audit_seals WHERE chain = :'carol' AND chain_seq = 1),
  memoriesdb_internal.audit_genesis(:'carol'), 'her first seal starts from her chain''s genesis');
SELECT is((SELECT count(*) FROM memoriesdb.audit_seals s JOIN memoriesdb.audit_seals p
            ON p.chain = s.chain AND p.chain_seq = s.chain_seq - 1
           WHERE s.chain = :'carol' AND s.prev_hash = p.seal_hash), :carol_head - 1::bigint, 'each later seal names the one before it');
SELECT is((SELECT chain_seq FROM memoriesdb_internal.audit_chain_heads WHERE chain = :'carol'), :carol_head::bigint,
  'the chain''s head row (its lock) holds the newest seal');
SELECT ok((SELECT bool_and(seal_hash = memoriesdb_internal.audit_seal_hash(s)) FROM memoriesdb.audit_seals s WHERE chain = :'carol'),
  'seal hashes recompute');
SELECT isnt((SELECT memoriesdb_internal.audit_seal_hash(ROW(s.seq, s.txid, s.first_id, s.last_id, s.row_count, s.rows_digest, s.prev_hash,
                    s.seal_hash, s.created_at + interval '1 second', s.chain, s.chain_seq, s.peers)::memoriesdb.audit_seals)
               FROM memoriesdb.audit_seals s WHERE chain = :'carol' AND chain_seq = 1),
  (SELECT seal_hash FROM memoriesdb.audit_seals WHERE chain = :'carol' AND chain_seq = 1),
  'a seal''s time is covered by its hash');

-- 3. a transfer seals both chains, each seal naming the other
-- (deferred for this one, as at a real COMMIT: all its rows sealed at once by the next SET CONSTRAINTS)
SET CONSTRAINTS ALL DEFERRED;
SELECT tests.act_as(:'alice');
SELECT memoriesdb.transfer(:'a2', :'bob', 'gift');
SELECT tests.clear_context();
SET CONSTRAINTS ALL IMMEDIATE;
SELECT is((SELECT chain FROM memoriesdb.audit_log WHERE table_name = 'memory_transfers' AND memory_id = :'a2'), :'bob'::uuid,
  'the transfer row is in the receiver''s chain');
SELECT is((SELECT chain FROM memoriesdb.audit_log WHERE table_name = 'memories' AND op = 'UPDATE' AND row_id = :'a2'
             AND new_row->>'owner_id' = :'bob'), :'alice'::uuid, 'the memory''s change of owner is in the giver''s chain');
SELECT ok(EXISTS (SELECT 1 FROM memoriesdb.audit_seals s JOIN memoriesdb.audit_seals t ON t.txid = s.txid
                   WHERE s.chain = :'alice' AND t.chain = :'bob'
                     AND s.peers = jsonb_build_array(jsonb_build_object('chain', t.chain, 'seq', t.chain_seq))
                     AND t.peers = jsonb_build_array(jsonb_build_object('chain', s.chain, 'seq', s.chain_seq))),
  'the transfer''s two seals name each other');
-- rows removed with a forgotten memory stay in its owner's chain
SELECT tests.act_as(:'alice');
SELECT memoriesdb.forget(:'a1');
SELECT tests.clear_context();
SELECT results_eq(format($$ SELECT DISTINCT chain FROM memoriesdb.audit_log WHERE memory_id = %L AND op = 'DELETE' $$, :'a1'),
  format($$ VALUES (%L::uuid) $$, :'alice'), 'what forget() removes is audited in the owner''s chain');
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], 'the chains verify');

-- 4. checkpoints ----------------------------------------------------------------
SELECT tests.act_as(NULL, 'memoriesdb_auditor');
SELECT memoriesdb.audit_checkpoint() AS cp \gset
SELECT tests.clear_context();
SELECT is(:'cp'::jsonb->>'format', 'memoriesdb-checkpoint/1', 'a checkpoint says its format');
SELECT is(:'cp'::jsonb->>'ledger', (SELECT ledger_id::text FROM memoriesdb_internal.ledger_identity), 'and names the ledger');
SELECT is((SELECT e->>'hash' FROM jsonb_array_elements(:'cp'::jsonb->'chains') e WHERE e->>'chain' = :'carol'),
  (SELECT encode(seal_hash, 'hex') FROM memoriesdb.audit_seals WHERE chain = :'carol' AND chain_seq = :carol_head), 'it holds carol''s head');
SELECT ok((SELECT array_agg(e->>'chain') FROM jsonb_array_elements(:'cp'::jsonb->'chains') e) @> ARRAY['legacy', :'common', :'alice', :'bob'],
  'and every other chain''s: legacy (the deploy''s rows), common, alice, bob');
SELECT is((SELECT array_agg(e->>'chain' ORDER BY o) FROM jsonb_array_elements(:'cp'::jsonb->'chains') WITH ORDINALITY t(e, o)),
  (SELECT array_agg(e->>'chain' ORDER BY e->>'chain' COLLATE "C") FROM jsonb_array_elements(:'cp'::jsonb->'chains') e),
  'chains in byte order of their names');
SELECT is(:'cp'::jsonb->>'root', encode(memoriesdb_internal.audit_merkle_root(:'cp'::jsonb->'chains'), 'hex'), 'its root is over its chains');
SELECT is(memoriesdb_internal.audit_merkle_root('[{"chain": "a", "seq": 1, "hash": "00"}, {"chain": "b", "seq": 2, "hash": "11"}, {"chain": "c", "seq": 3, "hash": "22"}]'),
  sha256(sha256(sha256('memoriesdb-leaf:a:1:00'::bytea) || sha256('memoriesdb-leaf:b:2:11'::bytea)) || sha256('memoriesdb-leaf:c:3:22'::bytea)),
  'the Merkle root as documented: pairs hashed, an odd last node carried up');
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (true, NULL::text) $$, 'the history verifies against the checkpoint');
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_checkpoint(%L) $$, :'cp'),
  $$ VALUES (true, NULL::text) $$, 'verify_checkpoint(): its heads are all there');
SELECT throws_ok($$ SELECT * FROM memoriesdb.verify_audit_chain('{"format": "other"}') $$, 'MDB25', 'not an audit checkpoint',
  'what is not a checkpoint is refused');
SELECT matches((SELECT problem FROM memoriesdb.verify_audit_chain(jsonb_set(:'cp'::jsonb, '{chains,0,seq}', '999'))),
  'root does not match', 'a checkpoint altered after it was taken is named');
SELECT matches((SELECT problem FROM memoriesdb.verify_audit_chain(jsonb_set(:'cp'::jsonb, '{ledger}', '"6f1b7e2a-0000-4000-8000-000000000000"'))),
  'another ledger', 'a checkpoint of another ledger is named');

-- 5. receipts ---------------------------------------------------------------------
SELECT count(*) AS c2_seals FROM memoriesdb.audit_seals s WHERE EXISTS (SELECT 1 FROM memoriesdb.audit_log a WHERE a.memory_id = :'c2'
   AND a.txid = s.txid AND a.chain = s.chain AND a.id BETWEEN s.first_id AND s.last_id) \gset
SELECT tests.act_as(:'carol');
SELECT r AS rcpt FROM memoriesdb.audit_receipts(:'c2') AS r LIMIT 1 \gset
SELECT is(:'rcpt'::jsonb->>'chain', :'carol', 'a receipt names the write''s chain');
SELECT is((SELECT count(*) FROM memoriesdb.audit_receipts(:'c2')), :c2_seals::bigint, 'one receipt per seal of a write about the memory');
SELECT results_eq(format($$ SELECT ok, problem FROM memoriesdb.verify_receipt(%L, %L) $$, :'rcpt', :'cp'),
  $$ VALUES (true, NULL::text) $$, 'her receipt is in the history the checkpoint commits to');
SELECT memoriesdb.remember('carol 4, after the checkpoint', '{}') AS c4 \gset
SELECT r AS late FROM memoriesdb.audit_receipts(:'c4') AS r ORDER BY (r->>'seq')::bigint DESC LIMIT 1 \gset
SELECT matches((SELECT problem FROM memoriesdb.verify_receipt(:'late', :'cp')), 'taken before the write',
  'a receipt newer than the checkpoint is named as such');
SELECT tests.act_as(:'alice');
SELECT throws_ok(format($$ SELECT memoriesdb.audit_receipts(%L) $$, :'c2'), 'MDB03', NULL, 'another user''s memory has no receipts for her');
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.verify_receipt(%L, %L) $$, :'rcpt', :'cp'), 'MDB25', 'not a receipt of your chain',
  'nor may she probe carol''s chain with carol''s receipt');
SELECT tests.clear_context();

-- 6. the eight kinds of tampering, by a superuser with the append-only triggers off ----
ALTER TABLE memoriesdb.audit_log DISABLE TRIGGER append_only;
ALTER TABLE memoriesdb.audit_seals DISABLE TRIGGER append_only;
-- recompute carol's chain from her rows as they now are: what a superuser rewriting it consistently does
CREATE FUNCTION pg_temp.reseal(c uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  s memoriesdb.audit_seals;
  prev bytea := memoriesdb_internal.audit_genesis(c);
BEGIN
  FOR s IN SELECT * FROM memoriesdb.audit_seals WHERE chain = c ORDER BY chain_seq LOOP
    SELECT count(*), sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id)) INTO s.row_count, s.rows_digest
      FROM memoriesdb.audit_log a WHERE a.txid = s.txid AND a.chain = c AND a.id BETWEEN s.first_id AND s.last_id;
    s.prev_hash := prev;
    s.seal_hash := memoriesdb_internal.audit_seal_hash(s);
    UPDATE memoriesdb.audit_seals AS t SET row_count = s.row_count, rows_digest = s.rows_digest, prev_hash = s.prev_hash,
           seal_hash = s.seal_hash WHERE t.seq = s.seq;
    prev := s.seal_hash;
  END LOOP;
END
$$;
SELECT id AS c2_row FROM memoriesdb.audit_log WHERE table_name = 'memories' AND row_id = :'c2' AND op = 'INSERT' \gset
SELECT id AS c2_rev FROM memoriesdb.audit_log WHERE table_name = 'memory_revisions' AND memory_id = :'c2' ORDER BY id LIMIT 1 \gset

SAVEPOINT tamper;
UPDATE memoriesdb.audit_log SET new_row = jsonb_set(new_row, '{content}', '"forged"') WHERE id = :c2_row;
SELECT results_eq(format($$ SELECT ok, first_broken_id, problem ~ 'do not match its hash' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  format($$ VALUES (false, %s::bigint, true) $$, :c2_row), '1. an edited row is named');
ROLLBACK TO SAVEPOINT tamper;

DELETE FROM memoriesdb.audit_log WHERE id = :c2_rev;
SELECT results_eq(format($$ SELECT ok, problem ~ 'deleted or reordered' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '2. a deleted row in the middle is named');
ROLLBACK TO SAVEPOINT tamper;

ALTER TABLE memoriesdb.audit_log ALTER COLUMN id SET GENERATED BY DEFAULT;
UPDATE memoriesdb.audit_log SET id = -id WHERE id = :c2_row;
UPDATE memoriesdb.audit_log SET id = :c2_row WHERE id = :c2_rev;
UPDATE memoriesdb.audit_log SET id = :c2_rev WHERE id = -:c2_row;
SELECT results_eq(format($$ SELECT ok, problem ~ 'moved to another id' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '3. two rows swapped (reordered) are named');
ROLLBACK TO SAVEPOINT tamper;

ALTER TABLE memoriesdb.audit_log DISABLE TRIGGER seal;
INSERT INTO memoriesdb.audit_log (db_role, table_name, op, new_row, chain)
VALUES ('memoriesdb_app', 'memories', 'INSERT', '{"content": "slipped in"}', :'carol');
SELECT results_eq(format($$ SELECT ok, problem ~ 'not covered by any seal' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '4. an unsealed row inserted behind the ledger is named');
ROLLBACK TO SAVEPOINT tamper;

-- 5. the tail: carol's newest checkpointed write removed whole (rows and seal)
DELETE FROM memoriesdb.audit_log a USING memoriesdb.audit_seals s
 WHERE s.chain = :'carol' AND s.chain_seq >= :carol_head AND a.txid = s.txid AND a.chain = s.chain AND a.id BETWEEN s.first_id AND s.last_id;
DELETE FROM memoriesdb.audit_seals WHERE chain = :'carol' AND chain_seq >= :carol_head;
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], '5. a removed tail cannot be seen from inside');
SELECT results_eq(format($$ SELECT ok, problem ~ 'the tail was removed' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '5. ... and is named against the checkpoint');
SELECT results_eq(format($$ SELECT ok, problem ~ 'the tail was removed' FROM memoriesdb.verify_checkpoint(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '5. ... by verify_checkpoint() too (the checkpoint''s part alone)');
ROLLBACK TO SAVEPOINT tamper;

-- 6. the whole chain rewritten consistently: a row edited, its hash and every seal recomputed
UPDATE memoriesdb.audit_log SET new_row = jsonb_set(new_row, '{content}', '"forged"') WHERE id = :c2_row;
UPDATE memoriesdb.audit_log AS a SET row_hash = sha256(memoriesdb_internal.audit_canonical(a)) WHERE id = :c2_row;
SELECT pg_temp.reseal(:'carol');
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], '6. a consistent rewrite cannot be seen from inside');
SELECT results_eq(format($$ SELECT ok, problem ~ 'rewritten or forked' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '6. ... and is named against the checkpoint');
SELECT results_eq(format($$ SELECT ok, problem ~ 'not the seal of the receipt' FROM memoriesdb.verify_receipt(%L, %L) $$, :'rcpt', :'cp'),
  $$ VALUES (false, true) $$, '6. ... and carol''s receipt of the rewritten write no longer verifies');
ROLLBACK TO SAVEPOINT tamper;

-- 7. a fork: the history after seal 3 replaced by another transaction at the same position
DELETE FROM memoriesdb.audit_log a USING memoriesdb.audit_seals s
 WHERE s.chain = :'carol' AND s.chain_seq = :carol_head AND a.txid = s.txid AND a.chain = s.chain AND a.id BETWEEN s.first_id AND s.last_id;
INSERT INTO memoriesdb.audit_log (db_role, table_name, op, new_row, chain, txid)
SELECT 'memoriesdb_app', 'memories', 'INSERT', '{"content": "the other branch"}', :'carol', txid
  FROM memoriesdb.audit_seals WHERE chain = :'carol' AND chain_seq = :carol_head;
UPDATE memoriesdb.audit_seals SET first_id = (SELECT max(id) FROM memoriesdb.audit_log), last_id = (SELECT max(id) FROM memoriesdb.audit_log)
 WHERE chain = :'carol' AND chain_seq = :carol_head;
SELECT pg_temp.reseal(:'carol');
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], '7. a fork cannot be seen from inside');
SELECT results_eq(format($$ SELECT ok, problem ~ 'rewritten or forked' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '7. ... and is named against the checkpoint');
ROLLBACK TO SAVEPOINT tamper;

-- 8. TRUNCATE of both tables
TRUNCATE memoriesdb.audit_log, memoriesdb.audit_seals;
SELECT results_eq($$ SELECT ok FROM memoriesdb.verify_audit_chain() $$, ARRAY[true], '8. an emptied log cannot be seen from inside');
SELECT results_eq(format($$ SELECT ok, problem ~ 'no seals left' FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'),
  $$ VALUES (false, true) $$, '8. ... and is named against the checkpoint');
SELECT ok((SELECT bool_or(problem ~ 'the audit log ends at row 0') FROM memoriesdb.audit_problems(:'cp')),
  '8. ... audit_problems() also names the rows gone');
ROLLBACK TO SAVEPOINT tamper;

-- a seal removed on one side of a transfer is named without a checkpoint
DELETE FROM memoriesdb.audit_seals s WHERE s.chain = :'bob' AND s.peers IS NOT NULL;
SELECT ok((SELECT bool_or(problem ~ 'is missing or does not name it back') FROM memoriesdb.audit_problems()),
  'one side of a transfer removed: its peer names it');
ROLLBACK TO SAVEPOINT tamper;
SELECT results_eq(format($$ SELECT ok FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'), ARRAY[true], 'after the tampering is undone, it verifies again');

-- 7. who may take and check checkpoints
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT memoriesdb.audit_checkpoint() $$, '42501', NULL, 'a user cannot take a checkpoint (it lists every chain)');
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.verify_audit_chain(%L) $$, :'cp'), '42501', NULL, 'nor verify the whole history');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT lives_ok($$ SELECT memoriesdb.audit_checkpoint() $$, 'the worker (memoriesdb anchor) takes checkpoints');
SELECT tests.clear_context();

SELECT * FROM finish();
ROLLBACK;
