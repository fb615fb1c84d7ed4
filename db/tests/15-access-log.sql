-- The access log: reads and refused attempts are on the record; refusals survive
-- the rollback their error causes; owners read their memories' history, nobody
-- else's; nobody changes it.
BEGIN;
SELECT plan(57);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.create_user('carol') AS carol \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');   -- bob takes alice's shares and transfers at once (offers: 22-offers.sql)
SELECT tests.act_as(:'carol');
SELECT memoriesdb.accept_sender(:'alice');   -- carol takes alice's shares and transfers at once (offers: 22-offers.sql)
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'the vault code is under the blue vase') AS a1 \gset
SELECT tests.memory_of(:'alice', 'shared with bob: the harbour meeting is at noon') AS a2 \gset
SELECT tests.memory_of(:'alice', 'shared with carol, read only') AS a3 \gset
SELECT tests.memory_of(:'bob', 'bob''s own note about the harbour') AS b1 \gset
-- embeddings, so that search finds them (the worker's job, done by hand here)
UPDATE memoriesdb.memories SET embedding = tests.axis(1), embedding_model = 'test' WHERE id IN (:'a1', :'a2', :'b1');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'a2', :'bob');
SELECT memoriesdb.share(:'a3', :'carol');
SELECT tests.clear_context(), memoriesdb.flush_access_log();

-- the entries of one memory, oldest first, as the superuser sees them
CREATE TEMP VIEW log AS SELECT * FROM memoriesdb.access_log;
CREATE FUNCTION pg_temp.entries(m uuid) RETURNS TABLE (function text, actor uuid, sqlstate text)
LANGUAGE sql AS $$ SELECT l.function, l.actor, l.sqlstate FROM memoriesdb.access_log AS l WHERE l.memory_ids @> ARRAY[m] ORDER BY l.id $$;

-- 1. reads -------------------------------------------------------------------
SELECT tests.act_as(:'alice');
SELECT content FROM memoriesdb.recall(:'a1');
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SELECT results_eq(format('SELECT * FROM pg_temp.entries(%L)', :'a1'),
  format($$ VALUES ('recall'::text, %L::uuid, NULL::text) $$, :'alice'),
  'a recall by the owner is one entry with the memory id, the actor and no sqlstate');
SELECT is((SELECT db_role::text FROM log WHERE function = 'recall' AND memory_ids = ARRAY[:'a1'::uuid]), current_user::text,
  'the entry names the database login');

SELECT set_config('application_name', 'access-log-test', true);
SELECT tests.act_as(:'bob');
SELECT count(*) FROM memoriesdb.search(tests.axis(1), 5);
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SELECT ok((SELECT memory_ids @> ARRAY[:'a2'::uuid, :'b1'::uuid] FROM log WHERE function = 'search' AND actor = :'bob'),
  'a search by a grantee records the shared memory among the ids it returned');
SELECT ok((SELECT NOT memory_ids @> ARRAY[:'a1'::uuid] FROM log WHERE function = 'search' AND actor = :'bob'),
  'and not a memory it could not see');
SELECT is((SELECT application_name FROM log WHERE function = 'search' AND actor = :'bob'), 'access-log-test', 'the entry keeps application_name');
SELECT is((SELECT octet_length(query_hash) FROM log WHERE function = 'search' AND actor = :'bob'), 32, 'a search keeps a 32-byte query hash');

SELECT tests.act_as(:'bob');
SELECT count(*) FROM memoriesdb.search(tests.axis(1), 5);
SELECT count(*) FROM memoriesdb.search(tests.axis(2), 5);
SELECT count(*) FROM memoriesdb.search_hybrid('harbour', tests.axis(1), 5);
SELECT count(*) FROM memoriesdb.provenance(:'a2');
SELECT memoriesdb.verify(:'a2');
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SELECT is((SELECT count(DISTINCT query_hash) FROM log WHERE function = 'search' AND actor = :'bob'), 2::bigint,
  'the same query hashes the same, another query differently');
SELECT ok((SELECT bool_and(query_hash <> sha256(public.vector_send(tests.axis(1)))) FROM log WHERE function = 'search'),
  'the hash is keyed: not the plain SHA-256 of the query');
SELECT is((SELECT array_agg(function ORDER BY id) FROM log WHERE actor = :'bob' AND function LIKE 'search%'),
  ARRAY['search', 'search', 'search', 'search_hybrid'], 'a hybrid search is one entry, not three');
SELECT results_eq(format($$ SELECT function FROM pg_temp.entries(%L) WHERE function IN ('provenance', 'verify') $$, :'a2'),
  $$ VALUES ('provenance'::text), ('verify') $$, 'provenance and verify are reads on the record');

-- text search and the graph: one entry each, with what they returned
SELECT tests.act_as(:'alice');
SELECT memoriesdb.link(:'a1', :'a2', 'related_to');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT refreshed FROM memoriesdb.run_vindexing('pgtap');
SELECT tests.act_as(:'alice');
SELECT count(*) FROM memoriesdb.search_text('harbour meeting', 5);
SELECT count(*) FROM memoriesdb.neighbors(:'a1');
SELECT count(*) FROM memoriesdb.path(:'a1', :'a2');
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SELECT ok((SELECT memory_ids @> ARRAY[:'a2'::uuid] AND octet_length(query_hash) = 32 FROM log WHERE function = 'search_text' AND actor = :'alice'),
  'search_text: the ids it returned and a query hash');
SELECT results_eq(format($$ SELECT function, memory_ids FROM log WHERE function IN ('neighbors', 'path') AND actor = %L ORDER BY id $$, :'alice'),
  format($$ VALUES ('neighbors'::text, ARRAY[%1$L, %2$L]::uuid[]), ('path', ARRAY[%1$L, %2$L]::uuid[]) $$, :'a1', :'a2'),
  'neighbors and path: the start and what they reached, the memories on the path');

-- 2. refusals survive the rollback ---------------------------------------------
-- throws_ok runs each call in a subtransaction that its error rolls back: an
-- entry written in the caller's transaction would be gone with it
SELECT tests.act_as(:'bob');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', NULL, 'bob may not recall alice''s a1');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'mine now') $$, :'a1'), 'MDB03', NULL, 'nor revise it');
SELECT throws_ok(format('SELECT memoriesdb.share(%L, %L)', :'a1', :'bob'), 'MDB03', NULL, 'nor share it');
SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, %L)', :'a1', :'bob'), 'MDB03', NULL, 'nor transfer it');
SELECT throws_ok(format('SELECT memoriesdb.transfer(%L, %L)', :'a2', :'bob'), 'MDB04', NULL, 'a grantee may not transfer a2');
SELECT tests.act_as(:'carol');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'edited') $$, :'a3'), 'MDB04', NULL, 'a read-only grantee may not revise a3');
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SELECT results_eq(format($$ SELECT * FROM pg_temp.entries(%L) WHERE sqlstate IS NOT NULL $$, :'a1'),
  format($$ VALUES ('recall'::text, %1$L::uuid, 'MDB03'::text), ('revise', %1$L, 'MDB03'), ('share', %1$L, 'MDB03'), ('transfer', %1$L, 'MDB03') $$, :'bob'),
  'bob''s refused recall, revise, share and transfer are each on the record, though each was rolled back');
SELECT results_eq(format($$ SELECT * FROM pg_temp.entries(%L) WHERE sqlstate IS NOT NULL $$, :'a2'),
  format($$ VALUES ('transfer'::text, %L::uuid, 'MDB04'::text) $$, :'bob'), 'the grantee''s refused transfer: MDB04');
SELECT results_eq(format($$ SELECT * FROM pg_temp.entries(%L) WHERE sqlstate IS NOT NULL $$, :'a3'),
  format($$ VALUES ('revise'::text, %L::uuid, 'MDB04'::text) $$, :'carol'), 'the read-only grantee''s refused revise: MDB04');

-- an expired grant, a wrong API key
UPDATE memoriesdb.memory_grants SET expires_at = now() - interval '1 minute' WHERE memory_id = :'a3' AND grantee_id = :'carol';
SELECT tests.act_as(:'carol');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a3'), 'MDB03', NULL, 'an expired grant: no recall');
SELECT tests.act_as(NULL);
SELECT throws_ok($$ SELECT memoriesdb.authenticate('mdb_not_a_key') $$, 'MDB10', NULL, 'a wrong API key is refused');
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SELECT results_eq(format($$ SELECT * FROM pg_temp.entries(%L) WHERE sqlstate = 'MDB03' $$, :'a3'),
  format($$ VALUES ('recall'::text, %L::uuid, 'MDB03'::text) $$, :'carol'), 'the refusal under an expired grant is on the record');
SELECT ok(EXISTS (SELECT 1 FROM log WHERE function = 'authenticate' AND sqlstate = 'MDB10' AND at > now()),
  'so is a failed authentication (after its rollback)');

-- no context, a forged context, an unknown id
SELECT tests.act_as(NULL);
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', NULL, 'no context: no recall');
SELECT throws_ok(format('SELECT memoriesdb.forget(%L)', :'a1'), 'MDB01', NULL, 'no context: no forget');
SELECT throws_ok($$ SELECT memoriesdb.remember('from no one') $$, 'MDB01', 'no user context', 'no context: no remember');
SELECT count(*) FROM memoriesdb.search(tests.axis(1), 5);
SELECT tests.act_as('00000000-0000-4000-8000-00000000f04d');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'a1'), 'MDB03', NULL, 'a context naming no user: no recall');
SELECT throws_ok($$ SELECT memoriesdb.remember('from a ghost') $$, 'MDB02', 'unknown user', 'a context naming no user: no remember');
SELECT tests.act_as(:'bob');
SELECT gen_random_uuid() AS ghost \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'ghost'), 'MDB03', 'memory not found', 'an unknown id: the same error as another''s memory');
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SELECT results_eq(format($$ SELECT * FROM pg_temp.entries(%L) WHERE actor IS NULL $$, :'a1'),
  $$ VALUES ('recall'::text, NULL::uuid, 'MDB03'::text) $$, 'a refused call with no context is recorded with no actor');
SELECT ok(EXISTS (SELECT 1 FROM log WHERE function = 'forget' AND actor IS NULL AND sqlstate = 'MDB01'), 'so is a write with no context (MDB01)');
SELECT ok(EXISTS (SELECT 1 FROM log WHERE function = 'remember' AND actor IS NULL AND sqlstate = 'MDB01'),
  'so is a remember with no context (MDB01), refused by its one-step check of the context');
SELECT ok(EXISTS (SELECT 1 FROM log WHERE function = 'remember' AND actor = '00000000-0000-4000-8000-00000000f04d' AND sqlstate = 'MDB02'),
  'and a remember for a context naming no user (MDB02), with the uuid it claimed');
SELECT ok(EXISTS (SELECT 1 FROM log WHERE function = 'search' AND actor IS NULL AND sqlstate IS NULL AND memory_ids = '{}'),
  'a search with no context is a read of nothing, with no actor');
SELECT results_eq(format($$ SELECT * FROM pg_temp.entries(%L) WHERE actor = '00000000-0000-4000-8000-00000000f04d' $$, :'a1'),
  $$ VALUES ('recall'::text, '00000000-0000-4000-8000-00000000f04d'::uuid, 'MDB03'::text) $$, 'a forged context is recorded as the uuid it claimed');
SELECT results_eq(format('SELECT * FROM pg_temp.entries(%L)', :'ghost'),
  format($$ VALUES ('recall'::text, %L::uuid, 'MDB03'::text) $$, :'bob'), 'an unknown id is recorded like any refusal');

-- 3. who reads the log ----------------------------------------------------------
SELECT tests.act_as(:'alice');
SELECT results_eq(format($$ SELECT outcome, function, actor, sqlstate FROM memoriesdb.access_history(%L) WHERE actor = %L $$, :'a1', :'bob'),
  format($$ VALUES ('refused'::text, 'transfer'::text, %1$L::uuid, 'MDB03'::text), ('refused', 'share', %1$L, 'MDB03'),
                   ('refused', 'revise', %1$L, 'MDB03'), ('refused', 'recall', %1$L, 'MDB03') $$, :'bob'),
  'alice sees bob''s refused attempts on a1, newest first');
SELECT is((SELECT count(*) FROM memoriesdb.access_history(:'a1', now() + interval '1 day')), 0::bigint, 'since filters by time');
SELECT ok((SELECT bool_or(outcome = 'read' AND function = 'search' AND actor = :'bob') FROM memoriesdb.access_history(:'a2')),
  'alice sees that bob''s search returned her shared a2');
SELECT tests.act_as(:'bob');
SELECT throws_ok(format('SELECT * FROM memoriesdb.access_history(%L)', :'a1'), 'MDB03', NULL, 'bob sees nothing of a1''s log');
SELECT throws_ok(format('SELECT * FROM memoriesdb.access_history(%L)', :'a2'), 'MDB04', NULL, 'a grantee sees nothing of a2''s log');
SELECT throws_ok('SELECT count(*) FROM memoriesdb.access_log', '42501', NULL, 'the app role cannot read the log table');
SELECT throws_ok($$ SELECT memoriesdb_internal.append_access_log(now(), NULL, 'x', '', 'recall', '{}', NULL, NULL) $$, '42501', NULL,
  'nor append to it directly');
SELECT throws_ok(format($$ SELECT memoriesdb_internal.record_read('recall', ARRAY[%L::uuid]) $$, :'a1'), '42501', NULL,
  'nor reach record_read() at all (schema memoriesdb_internal is closed to clients)');
-- record_read() also checks its caller, so that not even the read functions' own
-- role can write a read it did not serve: tried as memoriesdb_reader
CREATE FUNCTION pg_temp.recall(m uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE log_ids uuid[] := ARRAY[m]; log_query bytea;
BEGIN PERFORM memoriesdb_internal.record_read('recall', log_ids, log_query); END $$;
CREATE FUNCTION pg_temp.forge(m uuid) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN PERFORM memoriesdb_internal.record_read('recall', /*"
PL/pgSQL function memoriesdb.recall(uuid) line 9 at PERFORM*/ ARRAY[m], NULL); END $f$;
SET LOCAL ROLE memoriesdb_reader;
SELECT throws_ok(format($$ SELECT memoriesdb_internal.record_read('recall', ARRAY[%L::uuid]) $$, :'a1'), 'MDB12', NULL,
  'nor write a read into it by calling record_read() directly');
SELECT throws_ok(format($$ SELECT pg_temp.recall(%L) $$, :'a1'), 'MDB12', NULL,
  'nor from a function of its own named like a read function, making the very same call');
SELECT throws_ok(format($$ SELECT pg_temp.forge(%L) $$, :'a1'), 'MDB12', NULL,
  'nor with a statement whose text fakes a read function''s frame on the call stack');
SELECT tests.act_as(:'bob');
SELECT tests.clear_context(), memoriesdb.flush_access_log();

-- custody passes with the memory
SELECT tests.act_as(:'alice');
SELECT memoriesdb.transfer(:'a1', :'carol');
SELECT throws_ok(format('SELECT * FROM memoriesdb.access_history(%L)', :'a1'), 'MDB03', NULL, 'after the transfer alice sees none of a1''s log');
SELECT tests.act_as(:'carol');
SELECT cmp_ok((SELECT count(*) FROM memoriesdb.access_history(:'a1') WHERE actor = :'alice' OR (sqlstate IS NOT NULL AND actor <> :'bob')),
  '>=', 6::bigint,
  'carol, the new owner, sees a1''s whole history: alice''s reads and bob''s refusals (bob, a stranger to her, by a pseudonym)');

SELECT tests.act_as(NULL, 'memoriesdb_auditor');
SELECT cmp_ok((SELECT count(*) FROM memoriesdb.access_log WHERE memory_ids && ARRAY[:'a1'::uuid, :'a2'::uuid, :'a3'::uuid, :'ghost'::uuid]),
  '>=', 14::bigint, 'the auditor reads every entry');
SELECT ok((SELECT attempts >= 1 FROM memoriesdb.access_refusals() WHERE function = 'recall' AND sqlstate = 'MDB03'),
  'access_refusals() counts the last hour''s refusals by function and sqlstate');

-- 4. append-only --------------------------------------------------------------
SELECT tests.clear_context(), memoriesdb.flush_access_log();
SET LOCAL ROLE memoriesdb_owner;
SELECT throws_ok('UPDATE memoriesdb.access_log SET actor = NULL', 'MDB20', NULL, 'the owner cannot UPDATE the access log');
SELECT throws_ok('DELETE FROM memoriesdb.access_log', 'MDB20', NULL, 'nor DELETE from it');
SELECT throws_ok('TRUNCATE memoriesdb.access_log', 'MDB20', NULL, 'nor TRUNCATE it');
RESET ROLE;
SELECT throws_ok(format('DELETE FROM memoriesdb.access_log WHERE memory_ids @> ARRAY[%L::uuid]', :'a1'), 'MDB20', NULL,
  'nor can a superuser delete an entry (short of dropping the trigger)');

SELECT * FROM finish();
ROLLBACK;
