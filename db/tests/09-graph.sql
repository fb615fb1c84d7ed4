-- Edges and edge types.
BEGIN;
SELECT plan(22);

SELECT tests.create_user('alice') AS alice \gset
SELECT tests.create_user('bob') AS bob \gset
SELECT tests.act_as(:'bob');
SELECT memoriesdb.accept_sender(:'alice');   -- bob takes alice's shares and transfers at once (offers: 22-offers.sql)
SELECT tests.clear_context();
SELECT tests.memory_of(:'alice', 'a') AS a \gset
SELECT tests.memory_of(:'alice', 'b') AS b \gset
SELECT tests.memory_of(:'alice', 'c') AS c \gset
SELECT tests.memory_of(:'bob', 'bob own') AS x \gset

SELECT tests.act_as(:'alice');
SELECT set_eq($$ SELECT name FROM memoriesdb.list_edge_types() $$,
  ARRAY['derived_from', 'related_to', 'contradicts', 'supersedes', 'part_of'], 'the seeded edge types');
SELECT memoriesdb.link(:'a', :'b', 'derived_from', 0.5, '{"why": "summary"}') AS ab \gset
SELECT results_eq(format($$ SELECT source_id, target_id, edge_type, weight, metadata, mine FROM memoriesdb.list_edges() WHERE id = %L $$, :'ab'),
  format($$ VALUES (%L::uuid, %L::uuid, 'derived_from'::text, 0.5::real, '{"why": "summary"}'::jsonb, true) $$, :'a', :'b'),
  'link stores a typed, weighted edge with its creator');
SELECT lives_ok(format($$ SELECT memoriesdb.link(%L, %L, 'derived_from') $$, :'b', :'c'), 'b derived_from c');

-- refused edges
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'derived_from') $$, :'c', :'a'), 'MDB08', 'edge would close a cycle of derived_from',
  'an edge closing a cycle of an acyclic type is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'derived_from') $$, :'b', :'a'), 'MDB08', 'edge would close a cycle of derived_from',
  'a two-cycle is refused');
SELECT lives_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to') $$, :'c', :'a'), 'a cycle of a cyclic type is allowed');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to') $$, :'a', :'c'), 'MDB09', 'these memories are already linked with this edge type',
  'an undirected edge is not duplicated in reverse');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'derived_from') $$, :'a', :'b'), 'MDB09', 'these memories are already linked with this edge type',
  'a duplicate edge is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to') $$, :'a', :'a'), 'MDB09', 'a memory cannot be linked to itself', 'self-edges are refused');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'loves') $$, :'a', :'b'), 'MDB07', 'unknown edge type', 'unknown edge types are refused');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'part_of', 'NaN') $$, :'a', :'b'), 'MDB12', 'weight must be a finite number', 'a NaN weight is refused');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'part_of', 1, '[]') $$, :'a', :'b'), 'MDB06', 'metadata must be a JSON object', 'edge metadata must be an object');
SELECT throws_ok(format($$ SELECT memoriesdb.link(%L, %L, 'part_of') $$, :'a', :'x'), 'MDB03', 'memory not found', 'an edge to a memory alice cannot see is refused');

-- user-defined types
SELECT isnt(memoriesdb.create_edge_type('cites', 'source cites target', true, true), NULL, 'users add edge types');
SELECT throws_ok($$ SELECT memoriesdb.create_edge_type('cites') $$, 'MDB12', 'edge type already exists', 'edge type names are unique');
SELECT throws_ok($$ SELECT memoriesdb.create_edge_type('Bad Name') $$, 'MDB12', 'invalid edge type name', 'edge type names are checked');
SELECT lives_ok(format($$ SELECT memoriesdb.link(%L, %L, 'cites') $$, :'a', :'c'), 'a new type can be used at once');

-- visibility of edges: both ends must be visible
SELECT memoriesdb.share(:'a', :'bob');
SELECT tests.act_as(:'bob');
SELECT is((SELECT count(*) FROM memoriesdb.list_edges()), 0::bigint, 'bob sees no edge while only one end is shared with him');
SELECT lives_ok(format($$ SELECT memoriesdb.link(%L, %L, 'related_to') $$, :'x', :'a'), 'bob may link his memory to one shared with him');
SELECT tests.act_as(:'alice');
SELECT memoriesdb.share(:'b', :'bob');
SELECT tests.act_as(:'bob');
SELECT results_eq($$ SELECT id FROM memoriesdb.list_edges() WHERE edge_type = 'derived_from' $$, format('VALUES (%L::uuid)', :'ab'),
  'once both ends are shared bob sees the edge between them');
SELECT throws_ok(format('SELECT memoriesdb.unlink(%L)', :'ab'), 'MDB04', 'only the edge''s creator or the source memory''s owner may unlink it',
  'bob cannot unlink alice''s edge he can see');
SELECT tests.act_as(:'alice');
SELECT lives_ok(format('SELECT memoriesdb.unlink(%L)', :'ab'), 'alice unlinks her edge');

SELECT * FROM finish();
ROLLBACK;
