-- As of a time (issue 14, part 4): who_could_read() and recall_as_of() answer from the
-- audit log for times before a revision, a share's expiry, an unshare and a transfer.
-- Every change of the history is a transaction of its own (a change counts from the
-- start of its transaction, and one transaction has one time), so this file COMMITs:
-- it uses handles of its own (a random tag) and forgets its memories at the end.
-- The writes are vouched for by this session's login (a superuser counts as a member
-- of memoriesdb_backend), except carol's share, which an API key proves.
\set ON_ERROR_STOP 1
SELECT plan(48);

SELECT 'asof' || substr(md5(random()::text), 1, 8) AS tag, session_user AS login \gset
BEGIN;
SELECT tests.create_user(:'tag' || '_alice') AS alice \gset
SELECT tests.create_user(:'tag' || '_bob') AS bob \gset
SELECT tests.create_user(:'tag' || '_carol') AS carol \gset
SELECT tests.create_user(:'tag' || '_dave') AS dave \gset
SELECT tests.create_user(:'tag' || '_erin') AS erin \gset
SELECT tests.create_user(:'tag' || '_frank') AS frank \gset
SELECT tests.create_user(:'tag' || '_mallory') AS mallory \gset
-- shares and transfers take effect at once (offers: 22-offers.sql)
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');
SELECT tests.act_as(:'carol');
SELECT memoriesdb.accept_sender(:'alice');
SELECT memoriesdb.accept_sender(:'dave');
SELECT tests.act_as(:'erin');
SELECT memoriesdb.accept_sender(:'alice');
SELECT tests.act_as(:'dave');
SELECT memoriesdb.accept_sender(:'alice');
SELECT tests.act_as(:'carol');
SELECT memoriesdb.accept_sender(:'mallory');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.create_api_key(:'alice') AS akey \gset
SELECT tests.act_as(:'frank');
SELECT memoriesdb.create_api_key(:'frank') AS fkey \gset
COMMIT;
-- before the memory existed
SELECT clock_timestamp() AS t0 \gset

-- s1: alice remembers
BEGIN;
SELECT now() AS s1 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.remember('first words', '{"v": 1}') AS m \gset
COMMIT;
SELECT clock_timestamp() AS t1 \gset

-- s2: revision 2
BEGIN;
SELECT now() AS s2 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.revise(:'m', 'second words', '{"v": 2}');
COMMIT;
SELECT clock_timestamp() AS t2 \gset

-- s3: shared with bob (read, vouched) and carol (write, for a second, proven by alice's API key)
BEGIN;
SELECT now() AS s3, clock_timestamp() + interval '1 second' AS carol_until \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'m', :'bob', 'read');
SELECT memoriesdb.authenticate(:'akey');
SELECT memoriesdb.share(:'m', :'carol', 'write', :'carol_until');
COMMIT;
SELECT clock_timestamp() AS t3 \gset
SELECT pg_sleep(greatest(0, extract(epoch FROM :'carol_until'::timestamptz - clock_timestamp())::float8 + 0.05));
-- carol's grant has expired
SELECT clock_timestamp() AS t4 \gset

-- s4: revision 3
BEGIN;
SELECT now() AS s4 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.revise(:'m', 'third words', '{"v": 3}');
COMMIT;
SELECT clock_timestamp() AS t5 \gset

-- s5: bob unshared, erin shared (read, until unshared), frank offered a share (he did not accept alice)
BEGIN;
SELECT now() AS s5 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.unshare(:'m', :'bob');
SELECT memoriesdb.share(:'m', :'erin', 'read');
SELECT memoriesdb.share(:'m', :'frank', 'read') AS frank_offer \gset
COMMIT;
-- s5b: frank accepts the offer, proven by his own API key (so nobody vouches for the write)
BEGIN;
SELECT now() AS s5b \gset
SELECT tests.act_as(:'frank');
SELECT memoriesdb.authenticate(:'fkey');
SELECT memoriesdb.accept_offer(:'frank_offer');
COMMIT;
SELECT clock_timestamp() AS t6 \gset

-- while she owns it, alice reads the history (and sees bob by id: she shared with him)
BEGIN;
SELECT tests.act_as(:'alice');
SELECT results_eq(format('SELECT user_id, level FROM memoriesdb.who_could_read(%L, %L) ORDER BY level', :'m', :'t3'),
  format($$ VALUES (%L::uuid, 'owner'::text), (%L, 'read'), (%L, 'write') $$, :'alice', :'bob', :'carol'),
  'the owner reads who could read it at a past time: herself, then the grantees');
COMMIT;

-- s6: transferred to dave
BEGIN;
SELECT now() AS s6 \gset
SELECT tests.act_as(:'alice');
SELECT memoriesdb.transfer(:'m', :'dave', 'for the record');
COMMIT;
SELECT clock_timestamp() AS t7 \gset

-- (erin's grant followed the memory: the transfer rewrote its owner_id, not its terms)
-- s7: dave shares it with carol again (her expired grant takes new terms)
BEGIN;
SELECT now() AS s7 \gset
SELECT tests.act_as(:'dave');
SELECT memoriesdb.share(:'m', :'carol', 'read');
COMMIT;
SELECT clock_timestamp() AS t8 \gset

-- m2: mallory remembers it, gives it to carol, who offers it to dave
BEGIN;
SELECT now() AS sm2 \gset
SELECT tests.act_as(:'mallory');
SELECT memoriesdb.remember('passed along') AS m2 \gset
COMMIT;
SELECT clock_timestamp() AS tm2 \gset
BEGIN;
SELECT tests.act_as(:'mallory');
SELECT memoriesdb.transfer(:'m2', :'carol');
COMMIT;
BEGIN;
SELECT tests.act_as(:'carol');
SELECT memoriesdb.transfer(:'m2', :'dave') AS m2_offer \gset
COMMIT;
-- dave has not accepted carol as a sender: the transfer waited as an offer, which he accepts
BEGIN;
SELECT tests.act_as(:'dave');
SELECT memoriesdb.accept_offer(:'m2_offer');
COMMIT;

-- What the new owner sees, for every time ------------------------------------------
BEGIN;
SELECT memoriesdb_internal.disclosed_user(:'mallory', :'dave', :'dave') AS mallory_to_dave \gset
-- bob never dealt with dave: dave sees him under the pseudonym provenance() would show
SELECT memoriesdb_internal.disclosed_user(:'bob', :'dave', :'dave') AS bob_to_dave \gset
SELECT tests.act_as(:'dave');

-- recall_as_of: the revision current at each time
SELECT is_empty(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t0'),
  'recall_as_of: no row before the memory existed');
SELECT results_eq(format('SELECT revision, content, metadata, content_hash, revised_at, revised_by FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t1'),
  format($$ VALUES (1, 'first words'::text, '{"v": 1}'::jsonb, sha256('first words'::bytea), %L::timestamptz, %L::uuid) $$, :'s1', :'alice'),
  'recall_as_of after the creation: revision 1, its content, metadata, hash, time and author');
SELECT results_eq(format('SELECT revision, content, metadata, revised_at FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t2'),
  format($$ VALUES (2, 'second words'::text, '{"v": 2}'::jsonb, %L::timestamptz) $$, :'s2'),
  'recall_as_of after the first revision: revision 2');
SELECT results_eq(format('SELECT revision, content FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t4'),
  $$ VALUES (2, 'second words'::text) $$, 'recall_as_of: sharing makes no revision');
SELECT results_eq(format('SELECT revision, content, metadata, revised_at FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t5'),
  format($$ VALUES (3, 'third words'::text, '{"v": 3}'::jsonb, %L::timestamptz) $$, :'s4'),
  'recall_as_of after the second revision: revision 3');
SELECT results_eq(format('SELECT revision, content FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t7'),
  $$ VALUES (3, 'third words'::text) $$, 'recall_as_of after the transfer: still revision 3');
SELECT results_eq(format('SELECT revision, content FROM memoriesdb.recall_as_of(%L, %L::timestamptz - interval ''1 microsecond'')', :'m', :'s2'),
  $$ VALUES (1, 'first words'::text) $$, 'recall_as_of just before a revision''s transaction: the one before');
SELECT results_eq(format('SELECT revision FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'s2'),
  $$ VALUES (2) $$, 'recall_as_of at the very start of a revision''s transaction: that revision');

-- who_could_read: the owner and the unexpired grants at each time
SELECT is_empty(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t0'),
  'who_could_read: nobody before the memory existed');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by, vouched_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t1'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %1$L::uuid, %3$L::name) $$, :'alice', :'s1', :'login'),
  'after the creation: alice alone, owner since then, by her own write, vouched for by the login that made it');
SELECT results_eq(format('SELECT user_id, level FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t2'),
  format($$ VALUES (%L::uuid, 'owner'::text) $$, :'alice'), 'a revision gives nobody access');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by, vouched_by FROM memoriesdb.who_could_read(%L, %L) ORDER BY level', :'m', :'t3'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %1$L::uuid, %3$L::name),
                   (%4$L, 'read', %5$L, NULL, %1$L, %3$L),
                   (%6$L, 'write', %5$L, %7$L, %1$L, NULL) $$,
         :'alice', :'s1', :'login', :'bob_to_dave', :'s3', :'carol', :'carol_until'),
  'after the shares: alice, bob (read; a pseudonym to dave), carol (write, until her expiry; proven by a key, so nobody vouched)');
SELECT isnt(:'bob_to_dave'::uuid, :'bob'::uuid, 'the pseudonym is not bob''s id');
SELECT results_eq(format('SELECT user_id, level FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t4'),
  format($$ VALUES (%L::uuid, 'owner'::text), (%L, 'read') $$, :'alice', :'bob_to_dave'),
  'once carol''s grant expired: alice and bob');
SELECT results_eq(format('SELECT user_id, level FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t5'),
  format($$ VALUES (%L::uuid, 'owner'::text), (%L, 'read') $$, :'alice', :'bob_to_dave'),
  'the third revision changes no reader');
SELECT results_eq(format('SELECT user_id, level, since, given_by, vouched_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t6'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, %1$L::uuid, %3$L::name), (%4$L, 'read', %5$L, %1$L, %3$L),
                   (%6$L, 'read', %7$L, %1$L, NULL) $$,
         :'alice', :'s1', :'login', :'erin', :'s5', :'frank', :'s5b'),
  'after bob was unshared, erin shared and frank accepted: alice, erin, and frank since his acceptance, given by alice, vouched by nobody (his key)');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by, vouched_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t7'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %3$L::uuid, %4$L::name),
                   (%5$L, 'read', %6$L, NULL, %3$L, %4$L), (%7$L, 'read', %8$L, NULL, %3$L, NULL) $$,
         :'dave', :'s6', :'alice', :'login', :'erin', :'s5', :'frank', :'s5b'),
  'after the transfer: dave, owner since the transfer, given by alice; erin and frank, whose grants followed the memory, still since they were given (carol''s had expired)');
SELECT results_eq(format('SELECT user_id, level, since, expires_at, given_by FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t8'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, NULL::timestamptz, %3$L::uuid), (%4$L, 'read', %5$L, NULL, %3$L),
                   (%8$L, 'read', %9$L, NULL, %3$L), (%6$L, 'read', %7$L, NULL, %1$L) $$,
         :'dave', :'s6', :'alice', :'erin', :'s5', :'carol', :'s7', :'frank', :'s5b'),
  'after dave shared it again with carol: her grant with its new terms, since the new share, given by dave');
SELECT results_eq(format($$ SELECT user_id FROM memoriesdb.who_could_read(%L, %L::timestamptz - interval '1 microsecond') WHERE level = 'owner' $$, :'m', :'s6'),
  format('VALUES (%L::uuid)', :'alice'), 'a microsecond before the transfer''s transaction began: alice''s');
SELECT results_eq(format($$ SELECT user_id FROM memoriesdb.who_could_read(%L, %L) WHERE level = 'owner' $$, :'m', :'s6'),
  format('VALUES (%L::uuid)', :'dave'), 'at the start of the transfer''s transaction: dave''s');

-- m2 came to dave from carol, who had it from mallory: dave never dealt with mallory
SELECT results_eq(format('SELECT user_id, level, since, given_by, vouched_by FROM memoriesdb.who_could_read(%L, %L)', :'m2', :'tm2'),
  format($$ VALUES (%1$L::uuid, 'owner'::text, %2$L::timestamptz, %1$L::uuid, NULL::name) $$, :'mallory_to_dave', :'sm2'),
  'an owner the viewer never dealt with: a pseudonym, and the login that vouched for its write is not shown');
SELECT isnt(:'mallory_to_dave'::uuid, :'mallory'::uuid, 'the pseudonym is not mallory''s id');
SELECT results_eq(format('SELECT revision, content, revised_by FROM memoriesdb.recall_as_of(%L, %L)', :'m2', :'tm2'),
  format($$ VALUES (1, 'passed along'::text, %L::uuid) $$, :'mallory_to_dave'), 'recall_as_of shows its author by the same pseudonym');
SELECT results_eq(format('SELECT user_id, given_by, vouched_by FROM memoriesdb.who_could_read(%L, statement_timestamp())', :'m2'),
  format($$ VALUES (%L::uuid, %L::uuid, %L::name) $$, :'dave', :'carol', :'login'),
  'now: dave, given by carol (who offered it to him: by id), vouched for by the login of his acceptance');
COMMIT;

-- Custody: only the current owner asks ---------------------------------------------
BEGIN;
SELECT tests.act_as(:'alice');
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t3'), 'MDB03', 'memory not found',
  'after the transfer the former owner is refused who_could_read, even for a time she owned it');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t1'), 'MDB03', 'memory not found',
  'and recall_as_of');
SELECT tests.act_as(:'carol');
SELECT is((SELECT content FROM memoriesdb.recall(:'m')), 'third words', 'carol may read the memory now (dave''s share)');
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t8'), 'MDB03', 'memory not found',
  'but a grantee is refused its history, with the same error as for a memory she cannot see');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t8'), 'MDB03', 'memory not found',
  'and its past revisions');
SELECT tests.act_as(:'bob');
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t3'), 'MDB03', 'memory not found',
  'a former grantee is refused');
SELECT tests.act_as(:'mallory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t3'), 'MDB03', 'memory not found',
  'a stranger is refused who_could_read');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t3'), 'MDB03', 'memory not found',
  'and recall_as_of');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', gen_random_uuid(), :'t3'), 'MDB03', 'memory not found',
  'the same error for an id that does not exist');
SELECT tests.clear_context();
SET LOCAL ROLE memoriesdb_app;
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t3'), 'MDB01', 'no user context',
  'no context: refused');
RESET ROLE;

-- times it cannot answer for
SELECT tests.act_as(:'dave');
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, now() + interval ''1 hour'')', :'m'), 'MDB27',
  'cannot look at a time in the future', 'who_could_read refuses a time in the future');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, clock_timestamp() + interval ''1 second'')', :'m'), 'MDB27',
  'cannot look at a time in the future', 'and recall_as_of');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, NULL)', :'m'), 'MDB12', 'a time is required',
  'a NULL time is refused');
SELECT is((SELECT revision FROM memoriesdb.recall_as_of(:'m', statement_timestamp())), 3, 'the present is a time it answers for');
COMMIT;

-- Logged like every read ------------------------------------------------------------
CREATE TEMP TABLE asof_log AS
  SELECT l.function, l.actor, l.sqlstate, l.memory_ids, l.vouched_by FROM memoriesdb.access_log AS l WHERE false;
CREATE FUNCTION pg_temp.entries(m uuid, fn text) RETURNS SETOF asof_log LANGUAGE sql AS $$
  SELECT l.function, l.actor, l.sqlstate, l.memory_ids, l.vouched_by FROM memoriesdb.access_log AS l
   WHERE l.memory_ids @> ARRAY[m] AND l.function = fn ORDER BY l.id $$;
BEGIN;
SELECT count(*) AS who_before FROM pg_temp.entries(:'m', 'who_could_read') \gset
SELECT count(*) AS recall_before FROM pg_temp.entries(:'m', 'recall_as_of') \gset
SELECT tests.act_as(:'dave');
SELECT count(*) FROM memoriesdb.who_could_read(:'m', :'t3');   -- three rows, one read
SELECT count(*) FROM memoriesdb.who_could_read(:'m', :'t0');   -- no row: logged too (it answered)
SELECT count(*) FROM memoriesdb.recall_as_of(:'m', :'t2');
SELECT tests.clear_context();
SELECT results_eq(format('SELECT function, actor, sqlstate, memory_ids, vouched_by FROM pg_temp.entries(%L, %L) OFFSET %s',
                         :'m', 'who_could_read', :'who_before'),
  format($$ VALUES ('who_could_read'::text, %1$L::uuid, NULL::text, ARRAY[%2$L::uuid], %3$L::name),
                   ('who_could_read', %1$L, NULL, ARRAY[%2$L::uuid], %3$L) $$, :'dave', :'m', :'login'),
  'one access log entry per who_could_read call: the caller, the memory, the login that vouched');
SELECT results_eq(format('SELECT function, actor, sqlstate FROM pg_temp.entries(%L, %L) OFFSET %s', :'m', 'recall_as_of', :'recall_before'),
  format($$ VALUES ('recall_as_of'::text, %L::uuid, NULL::text) $$, :'dave'),
  'one access log entry per recall_as_of call');
SELECT results_eq(format($$ SELECT function, sqlstate FROM memoriesdb.access_log
                             WHERE memory_ids @> ARRAY[%L::uuid] AND actor = %L ORDER BY id $$, :'m', :'mallory'),
  $$ VALUES ('who_could_read'::text, 'MDB03'::text), ('recall_as_of', 'MDB03') $$,
  'the stranger''s refused attempts are logged, under the function refused');
SELECT results_eq(format($$ SELECT count(*) FROM memoriesdb.access_log
                             WHERE memory_ids @> ARRAY[%L::uuid] AND actor = %L AND sqlstate = 'MDB03' $$, :'m', :'alice'),
  $$ VALUES (2::bigint) $$, 'so are the former owner''s');
-- every granted read of the memory's history: dave's, and alice's while she owned it
SELECT count(*) AS history_reads FROM memoriesdb.access_log
 WHERE memory_ids @> ARRAY[:'m'::uuid] AND sqlstate IS NULL AND function IN ('who_could_read', 'recall_as_of') \gset
SELECT tests.act_as(:'dave');
SELECT is((SELECT count(*) FROM memoriesdb.access_history(:'m') WHERE function IN ('who_could_read', 'recall_as_of') AND outcome = 'read'),
  :'history_reads'::bigint, 'the owner finds every one of these reads in access_history(), the former owner''s too');
SELECT tests.clear_context();
COMMIT;

-- A read that cannot be logged is refused (the logger's login is switched off, this
-- session's connection to it closed; then set up again)
SELECT memoriesdb_dblink.dblink_disconnect('memoriesdb_access_log')
 WHERE 'memoriesdb_access_log' = ANY (memoriesdb_dblink.dblink_get_connections());
SELECT logger_role AS logger FROM memoriesdb.access_log_sink \gset
ALTER ROLE :"logger" NOLOGIN;
BEGIN;
SELECT tests.act_as(:'dave');
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t3'), 'MDB22', NULL,
  'who_could_read refuses a read its entry cannot be written for');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t3'), 'MDB22', NULL,
  'so does recall_as_of');
SELECT tests.clear_context();
COMMIT;
SELECT memoriesdb.setup_access_logger();

-- A forgotten memory has no owner to ask: its history is the auditor's (the audit log) -------
BEGIN;
SELECT tests.act_as(:'dave');
SELECT memoriesdb.forget(:'m');
SELECT memoriesdb.forget(:'m2');
SELECT throws_ok(format('SELECT * FROM memoriesdb.who_could_read(%L, %L)', :'m', :'t3'), 'MDB03', 'memory not found',
  'after forget(): who_could_read answers not found, even to the last owner');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall_as_of(%L, %L)', :'m', :'t3'), 'MDB03', 'memory not found',
  'and recall_as_of');
SELECT tests.clear_context();
COMMIT;

SELECT * FROM finish();
