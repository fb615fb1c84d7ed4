-- remember, recall, revise, forget, verify, provenance: behaviour and bad input.
BEGIN;
SELECT plan(41);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.act_as(:'alice');

SELECT memoriesdb.remember('The sky is blue', '{"topic": "sky"}') AS m1 \gset
SELECT results_eq(format($$ SELECT owner_id, created_by, content, metadata, revision FROM memoriesdb.recall(%L) $$, :'m1'),
  format($$ VALUES (%L::uuid, %L::uuid, 'The sky is blue'::text, '{"topic": "sky"}'::jsonb, 1) $$, :'alice', :'alice'),
  'remember stores a memory owned and created by the caller');
SELECT is((SELECT content_hash FROM memoriesdb.recall(:'m1')), sha256(convert_to('The sky is blue', 'UTF8')),
  'content_hash is the SHA-256 of the content');
SELECT memoriesdb.remember('default metadata') AS m0 \gset
SELECT is((SELECT metadata FROM memoriesdb.recall(:'m0')), '{}'::jsonb,
  'metadata defaults to {}');
SELECT is(memoriesdb.verify(:'m1'), true, 'verify() is true for untouched content');
SELECT memoriesdb.remember('naïve café ☕') AS m9 \gset
SELECT is((SELECT content_hash FROM memoriesdb.recall(:'m9')),
  '\x3d3c2a08f9bcf463b34cb0d849b56b27726240600d33dd255e6fc4730b32cbbb'::bytea, 'non-ASCII content is hashed as UTF-8 (digest computed outside PostgreSQL)');

-- bad input: clear errors, nothing written
SELECT (SELECT count(*) FROM memoriesdb.list_memories()) AS n_before \gset
SELECT throws_ok($$ SELECT memoriesdb.remember(NULL) $$, 'MDB05', 'content is empty', 'NULL content is refused');
SELECT throws_ok($$ SELECT memoriesdb.remember('') $$, 'MDB05', 'content is empty', 'empty content is refused');
SELECT throws_ok($$ SELECT memoriesdb.remember(E'  \n\t ') $$, 'MDB05', 'content is empty', 'blank content is refused');
SELECT throws_ok($$ SELECT memoriesdb.remember(repeat('x', 1048577)) $$, 'MDB05', 'content too large', 'content over 1 MiB is refused');
SELECT lives_ok($$ SELECT memoriesdb.remember(repeat('x', 1048576)) $$, 'content of exactly 1 MiB is accepted');
SELECT throws_ok($$ SELECT memoriesdb.remember('x', '[1,2]') $$, 'MDB06', 'metadata must be a JSON object', 'array metadata is refused');
SELECT throws_ok($$ SELECT memoriesdb.remember('x', '"s"') $$, 'MDB06', 'metadata must be a JSON object', 'scalar metadata is refused');
SELECT throws_ok($$ SELECT memoriesdb.remember('x', NULL) $$, 'MDB06', 'metadata must be a JSON object', 'NULL metadata is refused');
-- several faults at once: the first check in the order content, metadata, metadata size names the fault
SELECT throws_ok($$ SELECT memoriesdb.remember(NULL, '[1]') $$, 'MDB05', 'content is empty', 'empty content and array metadata: the content is named');
SELECT throws_ok($$ SELECT memoriesdb.remember(repeat('x', 1048577), NULL) $$, 'MDB05', 'content too large', 'oversized content and NULL metadata: the content is named');
SELECT throws_ok($$ SELECT memoriesdb.remember('x', jsonb_build_array(repeat('x', 70000))) $$, 'MDB06', 'metadata must be a JSON object',
  'oversized array metadata: its kind is named before its size');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories()), :n_before::bigint + 1, 'failed calls wrote nothing');
-- the content bound is read from the settings at every call
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '4' WHERE key = 'max_content_bytes';
SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT memoriesdb.remember('12345') $$, 'MDB05', 'content too large', 'a lowered max_content_bytes applies at once');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '1048576' WHERE key = 'max_content_bytes';
SELECT tests.act_as(:'alice');

-- revise
SELECT is(memoriesdb.revise(:'m1', 'The sky is very blue'), 2, 'revise returns the new revision');
SELECT results_eq(format($$ SELECT content, metadata, revision, content_hash FROM memoriesdb.recall(%L) $$, :'m1'),
  $$ VALUES ('The sky is very blue'::text, '{"topic": "sky"}'::jsonb, 2, sha256(convert_to('The sky is very blue', 'UTF8'))) $$,
  'revise changes content, keeps metadata, re-hashes');
SELECT is(memoriesdb.revise(:'m1', metadata => '{"topic": "weather"}'), 3, 'metadata-only revision');
SELECT is((SELECT content FROM memoriesdb.recall(:'m1')), 'The sky is very blue', 'metadata-only revision keeps content');
SELECT is(memoriesdb.revise(:'m1', 'The sky is very blue'), 3, 'a revision that changes nothing makes no new revision');
SELECT throws_ok(format('SELECT memoriesdb.revise(%L)', :'m1'), 'MDB12', 'nothing to revise', 'revise with nothing is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, '') $$, :'m1'), 'MDB05', 'content is empty', 'revise to empty content is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, metadata => '[]') $$, :'m1'), 'MDB06', 'metadata must be a JSON object', 'revise to array metadata is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.revise(%L, 'x') $$, gen_random_uuid()), 'MDB03', 'memory not found', 'revise of an unknown id');
SELECT is((SELECT revision FROM memoriesdb.recall(:'m1')), 3, 'failed revisions changed nothing');

-- provenance
SELECT results_eq(format($$ SELECT event, actor, revision FROM memoriesdb.provenance(%L) $$, :'m1'),
  format($$ VALUES ('created'::text, %1$L::uuid, 1), ('revised', %1$L, 2), ('revised', %1$L, 3) $$, :'alice'),
  'provenance lists creation and every revision in order');

-- stamps come from the database, created_by never changes
SELECT tests.clear_context();
SELECT throws_ok(format($$ UPDATE memoriesdb.memories SET created_by = gen_random_uuid() WHERE id = %L $$, :'m1'),
  'MDB21', 'memories.created_by and created_at can never change', 'created_by cannot change, even for a superuser');
SELECT is((SELECT updated_by FROM memoriesdb.memories WHERE id = :'m1'), :'alice'::uuid, 'updated_by is the context user');

-- content edited behind the API is caught by verify()
SET LOCAL session_replication_role = replica;   -- a superuser bypassing every trigger
UPDATE memoriesdb.memories SET content = 'The sky is green' WHERE id = :'m1';
SET LOCAL session_replication_role = origin;
SELECT tests.act_as(:'alice');
SELECT is(memoriesdb.verify(:'m1'), false, 'verify() catches content edited behind the API');
SELECT throws_ok(format('SELECT memoriesdb.verify(%L)', gen_random_uuid()), 'MDB03', 'memory not found', 'verify of an unknown id');

-- forget
SELECT memoriesdb.remember('to be forgotten') AS m2 \gset
SELECT memoriesdb.remember('linked') AS m3 \gset
SELECT memoriesdb.link(:'m2', :'m3', 'related_to');
SELECT lives_ok(format('SELECT memoriesdb.forget(%L)', :'m2'), 'the owner forgets a memory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'m2'), 'MDB03', 'memory not found', 'a forgotten memory cannot be recalled');
SELECT is((SELECT count(*) FROM memoriesdb.list_memories() WHERE id = :'m2'), 0::bigint, 'a forgotten memory is gone from the list');
SELECT is((SELECT count(*) FROM memoriesdb.list_edges(:'m2')), 0::bigint, 'its edges went with it');
SELECT throws_ok(format('SELECT memoriesdb.forget(%L)', :'m2'), 'MDB03', 'memory not found', 'forgetting twice: not found');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.embedding_schedule WHERE memory_id = :'m2'), 0::bigint, 'its embedding job went with it');
SELECT is((SELECT old_row->>'content' FROM memoriesdb.audit_log WHERE table_name = 'memories' AND op = 'DELETE' AND row_id = :'m2'),
  'to be forgotten', 'the audit log keeps the forgotten memory');
SELECT is((SELECT created_by FROM memoriesdb.audit_log WHERE table_name = 'memories' AND op = 'DELETE' AND row_id = :'m2'),
  :'alice'::uuid, 'and who forgot it');

SELECT * FROM finish();
ROLLBACK;
