-- Citus (issue 17): a checkpoint taken while transactions wait for their seal (on Citus the coordinator seals them
-- later, audit_seal_pending()): it commits to each waiting group (rows and digest) measured on its chain's shard,
-- and verification against it accepts the group still waiting or sealed as it was, and names it when rewritten.
-- Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(8);

SELECT memoriesdb.create_user('mona' || (random() * 1e9)::bigint) AS mona \gset
SELECT pg_temp.user_apart('ned', :'mona') AS ned \gset
SELECT memoriesdb.create_api_key(:'mona') AS km \gset
SELECT memoriesdb.create_api_key(:'ned') AS kn \gset
-- everything so far sealed
SELECT memoriesdb.audit_seal_pending() AS _ \gset
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'km') AS _ \gset
SELECT memoriesdb.remember('mona waits for her seal') AS m1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kn') AS _ \gset
SELECT memoriesdb.remember('ned waits for his seal') AS n1 \gset
COMMIT;
RESET SESSION AUTHORIZATION;

SELECT lives_ok($$SELECT memoriesdb.audit_checkpoint()$$, 'audit_checkpoint() while groups wait for their seal on both workers');
SELECT memoriesdb.audit_checkpoint() AS cp \gset
SELECT is((SELECT array_agg(e->>'chain' ORDER BY e->>'chain') FROM jsonb_array_elements(:'cp'::jsonb->'waiting') AS e
            WHERE e->>'chain' IN (:'mona', :'ned')),
          (SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[:'mona', :'ned']) AS x),
          'it holds mona''s and ned''s waiting groups');
-- (counted first: pgTAP's is() over a query on one shard would be pushed down to the worker with it)
SELECT a.txid AS mtx FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'mona' AND a.row_id = :'m1' LIMIT 1 \gset
SELECT count(*) AS mrows FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'mona' AND a.txid = :'mtx'::xid8 \gset
SELECT is((SELECT (e->>'rows')::bigint FROM jsonb_array_elements(:'cp'::jsonb->'waiting') AS e WHERE e->>'chain' = :'mona'),
          :'mrows'::bigint, '... with the number of rows of mona''s transaction');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain(:'cp') AS v), '(t,)', 'the ledger verifies against it while they wait');
SELECT cmp_ok(memoriesdb.audit_seal_pending(), '>=', 2, 'the coordinator seals them');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain(:'cp') AS v), '(t,)', '... and, sealed as they were, against it still');

-- a waiting group rewritten after the checkpoint (here: one of ned's rows, on his worker, after his seal) is named
SELECT a.new_row AS n1_row FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'ned' AND a.row_id = :'n1' AND a.table_name = 'memories' \gset
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE memoriesdb.audit_log AS a SET new_row = a.new_row || '{"content": "forged"}'
 WHERE a.chain_key = :'ned' AND a.row_id = :'n1' AND a.table_name = 'memories';
COMMIT;
SELECT a.id AS forged FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'ned' AND a.row_id = :'n1' AND a.table_name = 'memories' \gset
SELECT ok(EXISTS (SELECT 1 FROM memoriesdb.audit_problems(:'cp') AS p WHERE p.audit_id = :'forged'::bigint),
          'ned''s row rewritten on his worker: audit_problems(checkpoint) names it');
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE memoriesdb.audit_log AS a SET new_row = :'n1_row'::jsonb WHERE a.chain_key = :'ned' AND a.row_id = :'n1' AND a.table_name = 'memories';
COMMIT;
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain(:'cp') AS v), '(t,)', 'put back, it verifies again');

SELECT * FROM finish();
