-- Citus (issue 17): the graph through the coordinator: links within and across owners' shards are queued for the
-- graph index (vindexing_schedule, distributed by owner: the shard's trigger writes its colocated shard), the
-- worker's run_vindexing() refreshes memory_graph (a coordinator view over the distributed edges), neighbors() and
-- path() read it, unlink() by id finds the edge's shard. Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(9);

SELECT memoriesdb.create_user('quinn' || (random() * 1e9)::bigint) AS quinn \gset
SELECT pg_temp.user_apart('rita', :'quinn') AS rita \gset
SELECT memoriesdb.create_api_key(:'quinn') AS kq \gset
SELECT memoriesdb.create_api_key(:'rita') AS kr \gset
-- whatever earlier files queued is refreshed first
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT memoriesdb.run_vindexing('citus-graph-test') AS _ \gset
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kr') AS _ \gset
SELECT memoriesdb.accept_sender(:'quinn') AS _ \gset
SELECT memoriesdb.remember('rita: the lighthouse') AS r1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kq') AS _ \gset
SELECT memoriesdb.remember('quinn: the harbour') AS q1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kq') AS _ \gset
SELECT memoriesdb.remember('quinn: the boat') AS q2 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kq') AS _ \gset
SELECT memoriesdb.share(:'q1', :'rita') AS _ \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kq') AS _ \gset
SELECT memoriesdb.link(:'q1', :'q2', 'related_to') AS e1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kr') AS _ \gset
SELECT memoriesdb.link(:'r1', :'q1', 'related_to') AS e2 \gset
COMMIT;
RESET SESSION AUTHORIZATION;

SELECT cmp_ok((SELECT s.pending FROM memoriesdb.vindexing_status() AS s), '>=', 2::bigint,
              'both links are queued for the graph index (from each owner''s shard)');
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
CREATE TEMP TABLE ran AS SELECT * FROM memoriesdb.run_vindexing('citus-graph-test');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT refreshed FROM ran), true, 'run_vindexing() refreshes memory_graph on the coordinator');
SELECT is((SELECT s.pending FROM memoriesdb.vindexing_status() AS s), 0::bigint, '... draining the queue on every shard');

CREATE TEMP TABLE seen (what text, ids uuid[]);
GRANT ALL ON seen TO PUBLIC;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kq') AS _ \gset
INSERT INTO seen SELECT 'quinn q1', array_agg(n.id ORDER BY n.id) FROM memoriesdb.neighbors(:'q1') AS n;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kr') AS _ \gset
INSERT INTO seen SELECT 'rita r1 depth 2', array_agg(n.id ORDER BY n.id) FROM memoriesdb.neighbors(:'r1', 2) AS n;
INSERT INTO seen SELECT 'rita path', array_agg(p.memory_id ORDER BY p.step) FROM memoriesdb.path(:'r1', :'q1') AS p;
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kq') AS _ \gset
SELECT lives_ok(format('SELECT memoriesdb.unlink(%L)', :'e1'), 'quinn unlinks her edge (found on her shard by id)');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT ids FROM seen WHERE what = 'quinn q1'), ARRAY[:'q2']::uuid[],
          'neighbors(): quinn sees her boat next to her harbour, not rita''s private lighthouse linked to it from the other worker');
SELECT is((SELECT ids FROM seen WHERE what = 'rita r1 depth 2'), ARRAY[:'q1']::uuid[],
          'rita reaches the harbour shared with her, not quinn''s private boat behind it');
SELECT is((SELECT ids FROM seen WHERE what = 'rita path'), ARRAY[:'r1', :'q1']::uuid[], 'path(): from her lighthouse to the harbour');
SELECT cmp_ok((SELECT s.pending FROM memoriesdb.vindexing_status() AS s), '>=', 1::bigint, 'the unlink is queued');
SET SESSION AUTHORIZATION mdb_citus_test_worker;
\ir ../test_session.psql
SELECT memoriesdb.run_vindexing('citus-graph-test') AS _ \gset
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kq') AS _ \gset
DELETE FROM seen;
INSERT INTO seen SELECT 'quinn q1 after', array_agg(n.id ORDER BY n.id) FROM memoriesdb.neighbors(:'q1') AS n;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT ids FROM seen WHERE what = 'quinn q1 after'), NULL::uuid[], 'after the refresh the unlinked boat is gone');

SELECT * FROM finish();
