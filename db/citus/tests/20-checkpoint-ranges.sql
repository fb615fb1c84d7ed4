-- Citus (issue 17): a checkpoint holds the newest audit row of every node's id range (audit_rows_by_range), and
-- verification against it names a range whose newest rows were removed. Each worker numbers its audit rows from its
-- own range (group g from g * 2^48, docs/citus.md section 6), so the checkpoint's audit_rows (the newest row overall)
-- only ever saw the highest range. Run by scripts/test.sh --citus against the same throwaway ledger; the last tests
-- remove the newest rows and seal of a chain on the lower range's worker, as the superuser, and put them back.
\ir ../test_setup.psql
SELECT plan(9);

SELECT memoriesdb.create_user('rana' || (random() * 1e9)::bigint) AS rana \gset
SELECT pg_temp.user_apart('ravi', :'rana') AS ravi \gset
SELECT memoriesdb.create_api_key(:'rana') AS kr \gset
SELECT memoriesdb.create_api_key(:'ravi') AS kv \gset

SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'kr') AS _ \gset
SELECT memoriesdb.remember('rana writes on her worker') AS r1 \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'kv') AS _ \gset
SELECT memoriesdb.remember('ravi writes on the other') AS v1 \gset
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT memoriesdb.audit_seal_pending() AS _ \gset

SELECT memoriesdb.audit_checkpoint() AS cp \gset
SELECT (SELECT a.id >> 48 FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'rana'::uuid ORDER BY a.id DESC LIMIT 1) AS rana_range,
       (SELECT a.id >> 48 FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'ravi'::uuid ORDER BY a.id DESC LIMIT 1) AS ravi_range \gset
SELECT isnt(:'rana_range'::bigint, :'ravi_range'::bigint, 'rana''s and ravi''s audit rows are numbered in two ranges (two workers)');
SELECT is((SELECT count(*) FROM jsonb_object_keys(:'cp'::jsonb->'audit_rows_by_range') AS k WHERE k IN (:'rana_range', :'ravi_range')),
          2::bigint, 'the checkpoint holds the newest row of both ranges');
SELECT is((:'cp'::jsonb->'audit_rows_by_range'->>:'rana_range')::bigint,
          (SELECT max(a.id) FROM memoriesdb.audit_log AS a WHERE a.id >> 48 = :'rana_range'::bigint), 'each is its range''s newest row');
SELECT is((:'cp'::jsonb->>'audit_rows')::bigint, (SELECT max(a.id) FROM memoriesdb.audit_log AS a), 'audit_rows stays the newest overall');
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain(:'cp') AS v), '(t,)', 'the ledger verifies against it');

-- a checkpoint that saw more rows in the lower range than there are: named
SELECT CASE WHEN :'rana_range'::bigint < :'ravi_range'::bigint THEN :'rana_range' ELSE :'ravi_range' END AS low \gset
SELECT is((SELECT count(*) FROM memoriesdb.audit_problems(
             jsonb_set(:'cp'::jsonb, ARRAY['audit_rows_by_range', :'low'], to_jsonb((:'cp'::jsonb->'audit_rows_by_range'->>:'low')::bigint + 1))) AS p
            WHERE p.problem LIKE format('the audit rows numbered by node range %s end at row %%', :'low')),
          1::bigint, 'a range that ends before the checkpoint''s newest row there is named (the lower range: audit_rows cannot see it)');

-- the attack: the newest rows and seal of the lower range's chain removed behind the ledger
SELECT CASE WHEN :'rana_range'::bigint < :'ravi_range'::bigint THEN :'rana' ELSE :'ravi' END AS low_chain \gset
CREATE TEMP TABLE saved_rows AS SELECT * FROM memoriesdb.audit_log AS a
 WHERE a.chain_key = :'low_chain'::uuid AND a.id = (SELECT max(b.id) FROM memoriesdb.audit_log AS b WHERE b.chain_key = :'low_chain'::uuid);
CREATE TEMP TABLE saved_seals AS SELECT * FROM memoriesdb.audit_seals AS s
 WHERE s.chain_key = :'low_chain'::uuid AND s.last_id >= (SELECT min(r.id) FROM saved_rows AS r);
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM memoriesdb.audit_seals AS s WHERE s.chain_key = :'low_chain'::uuid AND s.seq IN (SELECT q.seq FROM saved_seals AS q);
DELETE FROM memoriesdb.audit_log AS a WHERE a.chain_key = :'low_chain'::uuid AND a.id IN (SELECT r.id FROM saved_rows AS r);
COMMIT;
SELECT is((SELECT count(*) FROM memoriesdb.audit_problems(:'cp') AS p
            WHERE p.problem LIKE format('the audit rows numbered by node range %s end at row %%', :'low')),
          1::bigint, 'rows removed from the end of the lower range are named by their range');
SELECT ok(NOT (SELECT v.ok FROM memoriesdb.verify_audit_chain(:'cp') AS v), 'and the ledger does not verify against the checkpoint');
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO memoriesdb.audit_log OVERRIDING SYSTEM VALUE SELECT * FROM saved_rows;
INSERT INTO memoriesdb.audit_seals OVERRIDING SYSTEM VALUE SELECT * FROM saved_seals;
COMMIT;
SELECT is((SELECT row(v.ok, v.problem)::text FROM memoriesdb.verify_audit_chain(:'cp') AS v), '(t,)', 'put back, it verifies again');

SELECT * FROM finish();
