-- memory_graph, neighbors(), path(), run_vindexing(): results, bounds, and what stale views may show.
BEGIN;
SELECT plan(30);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');   -- bob takes alice's shares and transfers at once (offers: 22-offers.sql)
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'a') AS a \gset
SELECT tests.memory_of(:'alice', 'b') AS b \gset
SELECT tests.memory_of(:'alice', 'c') AS c \gset
SELECT tests.memory_of(:'alice', 'd') AS d \gset
SELECT tests.memory_of(:'alice', 'e') AS e \gset
SELECT tests.act_as(:'alice');
-- a -> b -> c (derived_from), c - d (related_to, undirected), d -> e (part_of), e - a (related_to: a cycle)
SELECT memoriesdb.link(:'a', :'b', 'derived_from', 0.9) AS ab \gset
SELECT memoriesdb.link(:'b', :'c', 'derived_from') AS bc \gset
SELECT memoriesdb.link(:'c', :'d', 'related_to') AS cd \gset
SELECT memoriesdb.link(:'d', :'e', 'part_of') AS de \gset
SELECT memoriesdb.link(:'e', :'a', 'related_to', 0.5) AS ea \gset

-- the vindex worker folds the pending rows into one refresh
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT results_eq($$ SELECT refreshed, rows_coalesced >= 5 FROM memoriesdb.run_vindexing('pgtap') $$, $$ VALUES (true, true) $$,
  'run_vindexing coalesces every pending row into one refresh');
SELECT results_eq($$ SELECT refreshed, rows_coalesced FROM memoriesdb.run_vindexing('pgtap') $$, $$ VALUES (false, 0) $$,
  'with nothing pending it does not refresh');
SELECT results_eq($$ SELECT pending FROM memoriesdb.vindexing_status() $$, ARRAY[0::bigint], 'the schedule is drained');
SELECT tests.clear_context();
SELECT is((SELECT count(*) FROM memoriesdb.vindexing_runs WHERE worker = 'pgtap'), 1::bigint, 'the run is recorded');
SELECT is((SELECT node_degree FROM memoriesdb.memory_graph WHERE node_id = :'a' LIMIT 1), 2, 'memory_graph carries degrees');

SELECT tests.act_as(:'alice');
SELECT throws_ok($$ SELECT * FROM memoriesdb.memory_graph $$, '42501', NULL, 'clients cannot read the materialized view');
SELECT set_eq(format('SELECT id, hops FROM memoriesdb.neighbors(%L)', :'a'),
  format('VALUES (%L::uuid, 1), (%L::uuid, 1)', :'b', :'e'), 'neighbors at depth 1: both directions by default');
SELECT set_eq(format($$ SELECT id FROM memoriesdb.neighbors(%L, 1, direction => 'out') $$, :'b'),
  format('VALUES (%L::uuid)', :'c'), 'direction out follows source to target');
SELECT set_eq(format($$ SELECT id FROM memoriesdb.neighbors(%L, 1, direction => 'in') $$, :'b'),
  format('VALUES (%L::uuid)', :'a'), 'direction in follows target to source');
SELECT set_eq(format($$ SELECT id FROM memoriesdb.neighbors(%L, 1, direction => 'out') $$, :'d'),
  format('VALUES (%L::uuid), (%L::uuid)', :'e', :'c'), 'undirected edges are followed either way');
SELECT set_eq(format($$ SELECT id, hops FROM memoriesdb.neighbors(%L, 6) $$, :'a'),
  format('VALUES (%L::uuid, 1), (%L::uuid, 1), (%L::uuid, 2), (%L::uuid, 2)', :'b', :'e', :'c', :'d'),
  'a cycle ends: every memory once, at its shortest distance');
SELECT set_eq(format($$ SELECT id FROM memoriesdb.neighbors(%L, 3, ARRAY['derived_from']) $$, :'a'),
  format('VALUES (%L::uuid), (%L::uuid)', :'b', :'c'), 'edge_types restricts the walk');
SELECT results_eq(format($$ SELECT via_edge, edge_type, from_id FROM memoriesdb.neighbors(%L) WHERE id = %L $$, :'a', :'b'),
  format($$ VALUES (%L::uuid, 'derived_from'::text, %L::uuid) $$, :'ab', :'a'), 'each neighbour names the edge it was reached by');
SELECT throws_ok(format('SELECT * FROM memoriesdb.neighbors(%L, 7)', :'a'), 'MDB13', 'depth must be between 1 and 6', 'depth is bounded');
SELECT throws_ok(format('SELECT * FROM memoriesdb.neighbors(%L, 0)', :'a'), 'MDB13', 'depth must be between 1 and 6', 'depth 0 is refused');
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.neighbors(%L, 1, ARRAY['nope']) $$, :'a'), 'MDB07', 'unknown edge type', 'unknown edge types are refused');
SELECT throws_ok(format($$ SELECT * FROM memoriesdb.neighbors(%L, 1, NULL, 'sideways') $$, :'a'), 'MDB12', 'direction must be out, in or both', 'direction is checked');

-- path
SELECT results_eq(format('SELECT step, memory_id FROM memoriesdb.path(%L, %L)', :'a', :'d'),
  format('VALUES (0, %L::uuid), (1, %L::uuid), (2, %L::uuid)', :'a', :'e', :'d'), 'path finds a shortest chain (a-e-d, not a-b-c-d)');
SELECT results_eq(format('SELECT via_edge FROM memoriesdb.path(%L, %L) WHERE step > 0', :'a', :'d'),
  format('VALUES (%L::uuid), (%L::uuid)', :'ea', :'de'), 'each step names its edge');
SELECT is_empty(format('SELECT * FROM memoriesdb.path(%L, %L, 1)', :'a', :'d'), 'no path within max_depth: no rows');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '2' WHERE key = 'graph_max_rows';
SELECT tests.act_as(:'alice');
SELECT throws_ok(format('SELECT * FROM memoriesdb.neighbors(%L, 6)', :'a'), 'MDB13', 'traversal too large', 'the row bound stops a large walk');
SELECT tests.clear_context();
UPDATE memoriesdb.config SET value = '20000' WHERE key = 'graph_max_rows';

-- bob sees b and d (shared), not c: no walk passes through c for him
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'b', :'bob');
SELECT memoriesdb.share(:'d', :'bob');
SELECT tests.act_as(:'bob');
SELECT is_empty(format('SELECT * FROM memoriesdb.neighbors(%L, 6)', :'b'), 'bob reaches nothing from b: a, c are hidden, d lies behind c');
SELECT is_empty(format('SELECT * FROM memoriesdb.path(%L, %L)', :'b', :'d'), 'no path for bob through a hidden memory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.neighbors(%L)', :'a'), 'MDB03', 'memory not found', 'bob cannot start from a hidden memory');
SELECT throws_ok(format('SELECT * FROM memoriesdb.path(%L, %L)', :'b', :'c'), 'MDB03', 'memory not found', 'bob cannot ask for a path to a hidden memory');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'c', :'bob');
SELECT tests.act_as(:'bob');
SELECT set_eq(format('SELECT id FROM memoriesdb.neighbors(%L, 6)', :'b'), format('VALUES (%L::uuid), (%L::uuid)', :'c', :'d'),
  'once c is shared the walk goes through it');

-- stale view: removals show at once, additions after the next refresh
SELECT tests.act_as(:'alice');
SELECT memoriesdb.unshare(:'c', :'bob');
SELECT tests.act_as(:'bob');
SELECT is_empty(format('SELECT * FROM memoriesdb.neighbors(%L, 6)', :'b'), 'an unshared memory vanishes from traversals before any refresh');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.unlink(:'ea');
SELECT memoriesdb.forget(:'c');
SELECT set_eq(format('SELECT id FROM memoriesdb.neighbors(%L, 6)', :'a'), format('VALUES (%L::uuid)', :'b'),
  'an unlinked edge and a forgotten memory vanish before any refresh');
SELECT memoriesdb.link(:'a', :'d', 'related_to');
SELECT set_eq(format('SELECT id FROM memoriesdb.neighbors(%L, 1)', :'a'), format('VALUES (%L::uuid)', :'b'),
  'a new edge is not seen until the view is refreshed (documented)');
SELECT tests.act_as(NULL, 'memoriesdb_worker');
SELECT memoriesdb.run_vindexing();
SELECT tests.act_as(:'alice');
SELECT set_eq(format('SELECT id FROM memoriesdb.neighbors(%L, 1)', :'a'), format('VALUES (%L::uuid), (%L::uuid)', :'b', :'d'),
  'after the refresh it is');

SELECT * FROM finish();
ROLLBACK;
