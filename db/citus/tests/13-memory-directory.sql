-- Citus (issue 17, docs/citus.md §5 and distribute.sql §3i): the memory directory. remember() records (id -> owner)
-- in memory_locations, on the shard of the id's slot (a keyed hash of the id: citus_memory_slot(), under a key only the
-- owner role reads), drawing the random id so that the slot is on the memory's worker; recall(), verify(), provenance()
-- and every lock by id find the owner there (one shard) and read the owner's shard. transfer() and forget() keep it
-- true.
-- Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(21);

SELECT memoriesdb.create_user('wes' || (random() * 1e9)::bigint) AS wes \gset
SELECT pg_temp.user_apart('xia', :'wes') AS xia \gset
SELECT memoriesdb.create_api_key(:'wes') AS kw \gset
SELECT memoriesdb.create_api_key(:'xia') AS kx \gset

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kx') AS _ \gset
SELECT memoriesdb.accept_sender(:'wes') AS _ \gset
COMMIT;
CREATE TEMP TABLE made (n integer, id uuid);
GRANT ALL ON made TO PUBLIC;
SELECT 'BEGIN', format('SELECT memoriesdb.authenticate(%L)', :'kw'),
       format('INSERT INTO made SELECT %s, memoriesdb.remember(%L)', n, 'wes note ' || n), 'COMMIT'
  FROM generate_series(1, 20) AS n \gexec
SELECT id AS w1 FROM made WHERE n = 1 \gset
SELECT id AS w2 FROM made WHERE n = 2 \gset
SELECT id AS w3 FROM made WHERE n = 3 \gset
BEGIN;
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
SELECT memoriesdb.share(:'w1', :'xia') AS _ \gset
COMMIT;
RESET SESSION AUTHORIZATION;

-- each new id's directory row is in the slot its keyed hash names (where every lookup by id asks: one shard), on the
-- worker of the memory; the ids are not drawn into their owner's shard range (the directory was distributed by the id,
-- and every id hashed into its creator's range: 20 of 20)
SELECT is((SELECT count(*) FROM made AS d, memoriesdb_internal.memory_locations AS l
            WHERE l.slot = memoriesdb_internal.citus_memory_slot(d.id) AND l.memory_id = d.id AND l.owner_id = :'wes'),
          20::bigint, 'remember() records every id in the directory under its slot, the id''s keyed hash (20 of 20)');
-- (by chance 20/32 of them hash into wes's range; 8 or more: one time in 10^7)
SELECT cmp_ok((SELECT count(*) FROM made AS d
                WHERE get_shard_id_for_distribution_column('memoriesdb.memories', d.id)
                    = get_shard_id_for_distribution_column('memoriesdb.memories', :'wes'::uuid))::integer, '<', 8,
              '... and its ids are not drawn into wes''s shard range (no more than chance)');
SELECT is((SELECT count(*) FROM made AS d, pg_dist_shard_placement AS p
            WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb_internal.memory_locations',
                                                                   memoriesdb_internal.citus_memory_slot(d.id))
              AND p.nodeport = (SELECT w.nodeport FROM pg_dist_shard_placement AS w
                                 WHERE w.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'wes'::uuid))),
          20::bigint, '... each on the worker of wes''s memories (remember() commits on one worker)');
SELECT count(*) AS listed FROM memoriesdb_internal.memory_locations AS l, made AS d WHERE l.memory_id = d.id AND l.owner_id = :'wes' \gset
SELECT is(:'listed'::bigint, 20::bigint, 'each is in the directory under its owner');
SELECT ok(NOT has_table_privilege('memoriesdb_app', 'memoriesdb_internal.memory_locations', 'SELECT')
          AND NOT has_table_privilege('memoriesdb_app', 'memoriesdb_internal.memory_directory_key', 'SELECT')
          AND NOT has_function_privilege('memoriesdb_app', 'memoriesdb_internal.citus_memory_slot(uuid)', 'EXECUTE'),
          'a client cannot read the directory (who owns which id), nor its key, nor compute a slot');

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
CREATE TEMP TABLE seen (what text, v text);
BEGIN;
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
INSERT INTO seen SELECT 'owner recall', r.content FROM memoriesdb.recall(:'w2') AS r;
INSERT INTO seen SELECT 'owner verify', memoriesdb.verify(:'w2')::text;
INSERT INTO seen SELECT 'owner provenance', string_agg(p.event, ',') FROM memoriesdb.provenance(:'w2') AS p;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
INSERT INTO seen SELECT 'owner list_grants(w1)', string_agg(g.grantee_id || ':' || g.permission || ':' || g.received, ',') FROM memoriesdb.list_grants(:'w1') AS g;
INSERT INTO seen SELECT 'owner list_grants()', count(*)::text FROM memoriesdb.list_grants() AS g;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kx') AS _ \gset
INSERT INTO seen SELECT 'grantee list_grants()', string_agg(g.memory_id || ':' || g.received, ',') FROM memoriesdb.list_grants() AS g;
INSERT INTO seen SELECT 'grantee list_grants(w2)', count(*)::text FROM memoriesdb.list_grants(:'w2') AS g;
INSERT INTO seen SELECT 'grantee recall', r.content FROM memoriesdb.recall(:'w1') AS r;
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'w2'), 'MDB03', 'memory not found',
                 'the directory tells where, not who may: xia cannot recall wes''s unshared memory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', gen_random_uuid()), 'MDB03', 'memory not found',
                 'an id in no directory row: not found (MDB03), as on a single node');
SELECT throws_ok(format('SELECT memoriesdb.verify(%L)', gen_random_uuid()), 'MDB03', 'memory not found', '... verify() too');
COMMIT;
-- transfer w3 to xia (on the other worker): the directory follows; forget w2: its row goes
BEGIN;
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
SELECT memoriesdb.transfer(:'w3', :'xia') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
SELECT memoriesdb.forget(:'w2') AS _ \gset
COMMIT;
-- (a new transaction: Citus cannot read a placement another role wrote in this one, docs/citus.md §8)
BEGIN;
SELECT memoriesdb.authenticate(:'kw') AS _ \gset
SELECT throws_ok(format('SELECT * FROM memoriesdb.recall(%L)', :'w3'), 'MDB03', 'memory not found',
                 'after the transfer wes cannot recall it');
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kx') AS _ \gset
INSERT INTO seen SELECT 'new owner recall', r.content || ' / ' || (r.owner_id = :'xia')::text FROM memoriesdb.recall(:'w3') AS r;
INSERT INTO seen SELECT 'new owner revises', memoriesdb.revise(:'w3', 'wes note 3, revised by xia')::text;
COMMIT;
RESET SESSION AUTHORIZATION;

SELECT is((SELECT v FROM seen WHERE what = 'owner recall'), 'wes note 2', 'wes recalls his memory through the directory');
SELECT is((SELECT v FROM seen WHERE what = 'owner verify'), 'true', '... verifies it');
SELECT is((SELECT v FROM seen WHERE what = 'owner provenance'), 'created', '... and reads its provenance');
SELECT is((SELECT v FROM seen WHERE what = 'owner list_grants(w1)'), :'xia' || ':read:false', 'list_grants(id): the owner lists the memory''s grant (on his shard)');
SELECT is((SELECT v FROM seen WHERE what = 'owner list_grants()'), '1', '... and all the grants he gave');
SELECT is((SELECT v FROM seen WHERE what = 'grantee list_grants()'), :'w1' || ':true', 'the grantee lists the grant she received (on his shard)');
SELECT is((SELECT v FROM seen WHERE what = 'grantee list_grants(w2)'), '0', '... and nothing of a memory not shared with her');
SELECT is((SELECT v FROM seen WHERE what = 'grantee recall'), 'wes note 1', 'xia recalls the memory wes shared with her (wes''s worker)');
SELECT is((SELECT v FROM seen WHERE what = 'new owner recall'), 'wes note 3 / true', 'after the transfer xia recalls it, as its owner');
SELECT is((SELECT v FROM seen WHERE what = 'new owner revises'), '2', '... and revises it (locked by id through the directory)');
SELECT l.owner_id AS w3_owner FROM memoriesdb_internal.memory_locations AS l WHERE l.memory_id = :'w3' \gset
SELECT is(:'w3_owner'::text, :'xia', 'the directory names the new owner');
SELECT count(*) AS w2_rows FROM memoriesdb_internal.memory_locations AS l WHERE l.memory_id = :'w2' \gset
SELECT is(:'w2_rows'::bigint, 0::bigint, 'a forgotten memory leaves the directory');

SELECT * FROM finish();
