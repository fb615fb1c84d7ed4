-- Citus (issue 17, distribute.sql §3k): offers across workers. A share or a transfer to a recipient who has not
-- accepted the sender waits as an offer (on the sender's shard); the recipient lists, accepts or declines it, the
-- sender lists or withdraws it. accept_offer() failed on Citus (FOR UPDATE by id alone). Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(15);

SELECT memoriesdb.create_user('yan' || (random() * 1e9)::bigint) AS yan \gset
SELECT pg_temp.user_apart('zoe', :'yan') AS zoe \gset
SELECT memoriesdb.create_api_key(:'yan') AS ky \gset
SELECT memoriesdb.create_api_key(:'zoe') AS kz \gset

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
CREATE TEMP TABLE seen (what text, v text);
CREATE TEMP TABLE made (n integer, id uuid);
SELECT 'BEGIN', format('SELECT memoriesdb.authenticate(%L)', :'ky'),
       format('INSERT INTO made SELECT %s, memoriesdb.remember(%L)', n, 'yan offers note ' || n), 'COMMIT'
  FROM generate_series(1, 4) AS n \gexec
SELECT id AS y1 FROM made WHERE n = 1 \gset
SELECT id AS y2 FROM made WHERE n = 2 \gset
SELECT id AS y3 FROM made WHERE n = 3 \gset
SELECT id AS y4 FROM made WHERE n = 4 \gset
-- four offers, one per transaction: share y1, transfer y2, share y3 (declined), share y4 (withdrawn)
SELECT 'BEGIN', format('SELECT memoriesdb.authenticate(%L)', :'ky'), q, 'COMMIT'
  FROM unnest(ARRAY[format('SELECT memoriesdb.share(%L, %L)', :'y1', :'zoe'),
                    format('SELECT memoriesdb.transfer(%L, %L, %L)', :'y2', :'zoe', 'yours, if you want it'),
                    format('SELECT memoriesdb.share(%L, %L)', :'y3', :'zoe'),
                    format('SELECT memoriesdb.share(%L, %L)', :'y4', :'zoe')]) AS q \gexec

BEGIN;
SELECT memoriesdb.authenticate(:'kz') AS _ \gset
INSERT INTO seen SELECT 'zoe is offered', string_agg(o.kind || ':' || o.memory_id, ',' ORDER BY o.kind, o.memory_id) FROM memoriesdb.offers() AS o;
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'y1'), 'MDB03', 'memory not found', 'an offer is not a grant: zoe cannot read it yet');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ky') AS _ \gset
INSERT INTO seen SELECT 'yan offered', count(*)::text FROM memoriesdb.offers_sent() AS o;
SELECT o.id AS withdrawn FROM memoriesdb.offers_sent() AS o WHERE o.memory_id = :'y4' \gset
SELECT memoriesdb.withdraw_offer(:'withdrawn') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kz') AS _ \gset
SELECT o.id AS share_offer FROM memoriesdb.offers() AS o WHERE o.memory_id = :'y1' \gset
SELECT o.id AS transfer_offer FROM memoriesdb.offers() AS o WHERE o.memory_id = :'y2' \gset
SELECT o.id AS declined FROM memoriesdb.offers() AS o WHERE o.memory_id = :'y3' \gset
SELECT is(memoriesdb.accept_offer(:'share_offer'), :'y1'::uuid, 'zoe accepts the share (the memory is on yan''s worker)');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kz') AS _ \gset
SELECT is(memoriesdb.accept_offer(:'transfer_offer'), :'y2'::uuid, 'zoe accepts the transfer');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kz') AS _ \gset
SELECT memoriesdb.decline_offer(:'declined') AS _ \gset
SELECT throws_ok(format('SELECT memoriesdb.accept_offer(%L)', :'declined'), 'MDB17', 'offer not found', 'a declined offer is gone (MDB17)');
SELECT throws_ok(format('SELECT memoriesdb.accept_offer(%L)', :'withdrawn'), 'MDB17', 'offer not found', '... so is a withdrawn one');
SELECT throws_ok(format('SELECT memoriesdb.accept_offer(%L)', :'share_offer'), 'MDB17', 'offer not found', '... and an accepted one');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kz') AS _ \gset
INSERT INTO seen SELECT 'zoe reads the share', r.content FROM memoriesdb.recall(:'y1') AS r;
INSERT INTO seen SELECT 'zoe owns the transfer', r.content || ' / ' || (r.owner_id = :'zoe')::text FROM memoriesdb.recall(:'y2') AS r;
INSERT INTO seen SELECT 'zoe offers left', count(*)::text FROM memoriesdb.offers() AS o;
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'y3'), 'MDB03', 'memory not found', 'the declined share gave nothing');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'y4'), 'MDB03', 'memory not found', '... nor the withdrawn one');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ky') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'y2'), 'MDB03', 'memory not found', 'yan no longer reads what he gave away');
INSERT INTO seen SELECT 'yan offered after', count(*)::text FROM memoriesdb.offers_sent() AS o;
COMMIT;
RESET SESSION AUTHORIZATION;

SELECT is((SELECT v FROM seen WHERE what = 'zoe is offered'),
          (SELECT string_agg(x, ',' ORDER BY x) FROM unnest(ARRAY['share:' || :'y1', 'transfer:' || :'y2', 'share:' || :'y3', 'share:' || :'y4']) AS x),
          'zoe lists the four offers (on yan''s worker)');
SELECT is((SELECT v FROM seen WHERE what = 'yan offered'), '4', 'yan lists the four he sent');
SELECT is((SELECT v FROM seen WHERE what = 'zoe reads the share'), 'yan offers note 1', 'the accepted share is a grant: zoe reads it');
SELECT is((SELECT v FROM seen WHERE what = 'zoe owns the transfer'), 'yan offers note 2 / true', 'the accepted transfer made zoe the owner');
SELECT is((SELECT v FROM seen WHERE what = 'zoe offers left'), '0', 'no offer is left for zoe');
SELECT is((SELECT v FROM seen WHERE what = 'yan offered after'), '0', '... nor sent by yan');

SELECT * FROM finish();
