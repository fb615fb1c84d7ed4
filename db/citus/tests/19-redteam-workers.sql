-- Citus (issue 17): the red team of "clients connect to the coordinator only" (section 4g of db/citus/distribute.sql;
-- docs/citus.md, section 1). The workers are PostgreSQL servers too, with the ledger's database, its functions and
-- every client login (Citus propagates them; scripts/citus.sh makes the ledger's roles LOGIN there). An app login, a
-- backend login, a worker login, the auditor and the access log's logger try to use a worker directly, or through the
-- coordinator's own connections (run_command_on_workers(), which connects as the caller's login from the coordinator's
-- address, which the workers' pg_hba.conf must admit).
--   Fixed here: a backend vouched on a worker and remember() wrote there, directly or relayed from the coordinator by
--   run_command_on_workers() (no route to the worker needed); every client login could connect to the ledger's
--   database on the workers (layer 1: CONNECT for the roles Citus connects as only); the API answered there (layer 2:
--   every API function refuses off the coordinator, MDB34; before, a read failed by accident: the access log's writer
--   is the coordinator's).
--   Held: the tables and shards (no client privilege), a proof replayed from the coordinator, Citus's own UDFs.
--   A rule of the deployment (reported by memoriesdb_internal.citus_worker_access(), tested on sample pg_hba rules):
--   the roles Citus connects as (memoriesdb_owner: every shard) log in on the workers from the cluster's nodes only,
--   with a credential; here they log in by trust from 127.0.0.1.
-- The attacker's sessions on the workers are dblink connections opened by this (superuser) session as the attacker's
-- login: one pgTAP session sees every answer (a psql \connect would leave it). Run by scripts/test.sh --citus.
\ir ../test_setup.psql
SELECT plan(38);

SELECT current_database() AS db \gset
-- (a grant left by an earlier run of this file that stopped in section 2)
REVOKE CONNECT ON DATABASE :"db" FROM mdb_citus_test_app, mdb_citus_test_backend;
SELECT memoriesdb.create_user('uma' || (random() * 1e9)::bigint) AS uma \gset
SELECT memoriesdb.create_api_key(:'uma') AS ku \gset
SELECT 'memoriesdb_log_' || left(md5(current_database()), 12) AS logger \gset
-- her shard and its worker; the workers
SELECT p.nodeport AS port, format('memoriesdb.memories_%s', p.shardid) AS shard, p.shardid
  FROM pg_dist_shard_placement AS p
 WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', :'uma') \gset
SELECT format('memoriesdb_internal.context_key_%s', s.shardid) AS key_placement FROM pg_dist_shard AS s
 WHERE s.logicalrelid = 'memoriesdb_internal.context_key'::regclass \gset

-- uma remembers through the coordinator, and keeps her proof of another transaction (its global pid and distributed
-- transaction id) for a replay on a worker
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT memoriesdb.remember('uma, through the coordinator') AS mem \gset
COMMIT;
BEGIN;
SELECT memoriesdb.authenticate(:'ku') AS _ \gset
SELECT current_setting('app.current_user_proof') AS proof, citus_backend_gpid() AS gpid,
       t.initiator_node_identifier AS node, t.transaction_number AS txn, t.transaction_stamp AS stamp
  FROM get_current_transaction_id() AS t \gset
COMMIT;
RESET SESSION AUTHORIZATION;
\ir ../test_session.psql
SELECT count(*) AS uma_memories FROM memoriesdb.memories WHERE owner_id = :'uma' \gset
SELECT count(*) AS uma_audit FROM memoriesdb.audit_log WHERE chain = :'uma' \gset
SELECT count(*) AS log_entries FROM memoriesdb.access_log \gset

-- the attacker's sessions (temporary functions: Citus warns they stay local)
SET client_min_messages = error;
-- 'connected', or why not (the server's FATAL)
CREATE FUNCTION pg_temp.connect_as(conn text, port integer, login text, app text DEFAULT 'mdb_attack') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  detail text;
BEGIN
  IF conn = ANY (memoriesdb_dblink.dblink_get_connections()) THEN PERFORM memoriesdb_dblink.dblink_disconnect(conn); END IF;
  PERFORM memoriesdb_dblink.dblink_connect(conn, format('host=127.0.0.1 port=%s dbname=%s user=%s application_name=%s',
                                                        port, current_database(), login, quote_literal(app)));
  RETURN 'connected';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RETURN coalesce(substring(detail FROM 'FATAL:  ([^\n]*)'), SQLERRM);
END $$;
-- one statement in the attacker's session; its rows as text (an error comes back with the worker's SQLSTATE)
CREATE FUNCTION pg_temp.on(conn text, sql text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT t.v FROM memoriesdb_dblink.dblink(conn, sql) AS t(v text)
$$;
CREATE FUNCTION pg_temp.exec(conn text, sql text) RETURNS text LANGUAGE sql AS $$
  SELECT memoriesdb_dblink.dblink_exec(conn, sql)
$$;
-- who may log in to the ledger's database on both workers: 'login: answer' for each
CREATE FUNCTION pg_temp.logins_on_workers(logins text[]) RETURNS text[] LANGUAGE sql AS $$
  SELECT array_agg(DISTINCT a ORDER BY a)
    FROM (SELECT l || ': ' || pg_temp.connect_as('probe', n.nodeport, l) AS a
            FROM unnest(logins) AS l, pg_dist_node AS n WHERE n.groupid > 0) AS t
$$;
SET client_min_messages = warning;

-- 1. Fixed (layer 1): the ledger's database on a worker admits the roles Citus connects as, and no client. Before:
-- every login connected (trust here; in production, any login the workers' pg_hba.conf admits from an address).
SELECT is(pg_temp.logins_on_workers(ARRAY['mdb_citus_test_app', 'mdb_citus_test_backend', 'mdb_citus_test_worker']),
          ARRAY[format('mdb_citus_test_app: permission denied for database "%s"', :'db'),
                format('mdb_citus_test_backend: permission denied for database "%s"', :'db'),
                format('mdb_citus_test_worker: permission denied for database "%s"', :'db')],
          'app, backend and worker logins cannot connect to the ledger''s database on either worker');
SELECT is(pg_temp.logins_on_workers(ARRAY['memoriesdb_app', 'memoriesdb_backend', 'memoriesdb_worker']),
          ARRAY[format('memoriesdb_app: permission denied for database "%s"', :'db'),
                format('memoriesdb_backend: permission denied for database "%s"', :'db'),
                format('memoriesdb_worker: permission denied for database "%s"', :'db')],
          '... nor the client group roles (LOGIN on the workers: citus.sh)');
SELECT is(pg_temp.logins_on_workers(ARRAY[:'logger']),
          ARRAY[format('%s: permission denied for database "%s"', :'logger', :'db')],
          '... nor the access log''s logger (its role and password hash are on the workers too: Citus copied them)');
SELECT is(pg_temp.logins_on_workers(ARRAY['memoriesdb_owner', 'memoriesdb_reader', 'mdb_citus_test_auditor']),
          ARRAY['mdb_citus_test_auditor: connected', 'memoriesdb_owner: connected', 'memoriesdb_reader: connected'],
          'the roles Citus connects as do (the functions'' owners; an auditor''s login for its own SELECTs): here by trust, in production by the deployment''s rule (section 4)');
-- ... and through the coordinator: run_command_on_workers() (executable by PUBLIC, as Citus installs it) connects to
-- the workers as the caller's login, from the coordinator's address. Before: a backend vouched and wrote on both.
SET SESSION AUTHORIZATION mdb_citus_test_backend;
\ir ../test_session.psql
SELECT string_agg(w.result, ' | ') AS relayed, bool_or(w.success) AS relay_ok
  FROM run_command_on_workers(format('SELECT memoriesdb.vouch(%L); SELECT memoriesdb.remember(%L)', :'uma', 'relayed by a backend')) AS w \gset
SET ROLE memoriesdb_backend;
SELECT string_agg(w.result, ' | ') AS relayed_role, bool_or(w.success) AS relay_role_ok
  FROM run_command_on_workers('SELECT current_user') AS w \gset
RESET ROLE;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION mdb_citus_test_app;
\ir ../test_session.psql
SELECT bool_or(w.success) AS relay_app_ok FROM run_command_on_workers('SELECT current_user') AS w \gset
RESET SESSION AUTHORIZATION;
\ir ../test_session.psql
SELECT is(:'relay_ok'::boolean, false, 'a backend''s vouch() and remember() relayed to the workers by run_command_on_workers() from the coordinator: refused on both');
SELECT matches(:'relayed'::text, '^failed to connect to [0-9.:]+ \| failed to connect to [0-9.:]+$', '... at the connection (no CONNECT there for its login)');
SELECT is(:'relay_role_ok'::boolean, false, '... as memoriesdb_backend (SET ROLE) too');
SELECT is(:'relay_app_ok'::boolean, false, '... and an app login''s relay');

-- 2. Fixed (layer 2): on a worker the API answers no one. A client reaches a worker's database when its CONNECT comes
-- back: here a GRANT ON DATABASE on the coordinator, which Citus propagates to every worker (as an administrator
-- "tightening" the coordinator with REVOKE FROM PUBLIC and a GRANT per login would).
GRANT CONNECT ON DATABASE :"db" TO mdb_citus_test_app, mdb_citus_test_backend;
SELECT is((SELECT count(*) FROM memoriesdb_internal.citus_worker_access() AS a
            WHERE a.problem LIKE 'logins that may connect to %: mdb_citus_test_app, mdb_citus_test_backend %'),
          2::bigint, 'the deploy''s check (citus_worker_access()) names the two logins on both workers');
SELECT is(pg_temp.connect_as('app', :port, 'mdb_citus_test_app'), 'connected', 'with the grant, the app login connects to uma''s worker');
-- (a) the tables: no client privilege there either
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'app', 'SELECT count(*)::text FROM memoriesdb.memories'),
                 '42501', 'permission denied for table memories', '(a) the distributed table, queried on a worker: 42501');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'app', format('SELECT count(*)::text FROM %s', :'shard')),
                 '42501', format('permission denied for table %s', split_part(:'shard', '.', 2)), '(a) her shard, read on its worker: 42501');
SELECT throws_ok(format('SELECT pg_temp.exec(%L, %L)', 'app', format('INSERT INTO %s (id, owner_id, content) VALUES (gen_random_uuid(), %L, %L)',
                                                                  :'shard', :'uma', 'forged')),
                 '42501', format('permission denied for table %s', split_part(:'shard', '.', 2)), '(a) ... written: 42501');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'app', format('SELECT ipad::text FROM %s', :'key_placement')),
                 '42501', 'permission denied for schema memoriesdb_internal', '(a) the context key''s placement on the worker: 42501');
-- (b) the API. Before: authenticate() failed only on the access log's table (coordinator-local), recall() on its writer
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'app', format('SELECT memoriesdb.authenticate(%L)::text', :'ku')),
                 'MDB34', 'the ledger answers on the coordinator only', '(b) authenticate() with her key on a worker: MDB34');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'app', format('SELECT content FROM memoriesdb.recall(%L)', :'mem')),
                 'MDB34', 'the ledger answers on the coordinator only', '(b) recall() on a worker: MDB34 (a read that cannot be logged is refused)');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'app', 'SELECT count(*)::text FROM memoriesdb.search_text(''coordinator'', 5, ''{}'')'),
                 'MDB34', 'the ledger answers on the coordinator only', '(b) search_text() on a worker: MDB34');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'app', 'SELECT memoriesdb.remember(''written on a worker'')::text'),
                 'MDB34', 'the ledger answers on the coordinator only', '(b) remember() on a worker: MDB34');
-- ... her proof replayed: her global pid forged through application_name (Citus reads it from there), the settings SET
-- LOCAL, her distributed transaction id asked for (assign_distributed_transaction_id(), revoked from clients: section 1)
SELECT is(pg_temp.connect_as('replay', :port, 'mdb_citus_test_app', 'citus_internal gpid=' || :'gpid'), 'connected',
          '(b) a session on her worker with her global pid in application_name');
SELECT pg_temp.exec('replay', 'BEGIN') AS _ \gset
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'replay', format('SELECT assign_distributed_transaction_id(%s, %s, %L)::text', :node, :txn, :'stamp')),
                 '42501', 'permission denied for function assign_distributed_transaction_id', '... her distributed transaction id cannot be set: 42501');
SELECT pg_temp.exec('replay', 'ROLLBACK') AS _ \gset
SELECT pg_temp.exec('replay', 'BEGIN') AS _ \gset
SELECT pg_temp.exec('replay', format('SET LOCAL app."current_user" = %L', :'uma')) AS _ \gset
SELECT pg_temp.exec('replay', 'SET LOCAL app.current_login = ''mdb_citus_test_app''') AS _ \gset
SELECT pg_temp.exec('replay', format('SET LOCAL app.current_user_proof = %L', :'proof')) AS _ \gset
SELECT is((SELECT v FROM pg_temp.on('replay', 'SELECT memoriesdb.current_user_id()::text') AS v), NULL,
          '... her proof, replayed on the worker, proves no one (Held)');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'replay', format('SELECT content FROM memoriesdb.recall(%L)', :'mem')),
                 'MDB34', 'the ledger answers on the coordinator only', '... and recall() refuses there');
SELECT pg_temp.exec('replay', 'ROLLBACK') AS _ \gset
-- (c) a backend on a worker. Before: vouch() answered, and remember() wrote a memory on the shard, audited.
SELECT is(pg_temp.connect_as('backend', :port, 'mdb_citus_test_backend'), 'connected', 'with the grant, the backend login connects to uma''s worker');
SELECT pg_temp.exec('backend', 'BEGIN') AS _ \gset
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'backend', format('SELECT memoriesdb.vouch(%L)::text', :'uma')),
                 'MDB34', 'the ledger answers on the coordinator only', '(c) vouch() for uma on a worker: MDB34');
SELECT pg_temp.exec('backend', 'ROLLBACK') AS _ \gset
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'backend', 'SELECT id::text FROM memoriesdb.list_memories()'),
                 'MDB34', 'the ledger answers on the coordinator only', '(c) list_memories() on a worker: MDB34');
-- (e) Citus's own UDFs on a worker (executable by PUBLIC): relayed on to the other worker, the API refuses there too;
-- the others check ownership or superuser themselves (Held), also with a forged 'citus_internal' application_name
SELECT v AS onward FROM pg_temp.on('backend', format($q$SELECT string_agg(w.result, ' | ') FROM run_command_on_workers(%L) AS w$q$,
                                                     format('SELECT memoriesdb.vouch(%L)', :'uma'))) AS v \gset
SELECT is(:'onward'::text, 'ERROR:  the ledger answers on the coordinator only | ERROR:  the ledger answers on the coordinator only',
          '(e) run_command_on_workers() from a worker, to both workers: MDB34');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'replay', format('SELECT lock_shard_metadata(7, ARRAY[%s]::bigint[])::text', :shardid)),
                 '42501', NULL, '(e) lock_shard_metadata() on her shard from a worker session: 42501');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'replay', 'SELECT worker_create_or_alter_role(''mdb_citus_test_app'', NULL, ''ALTER ROLE mdb_citus_test_app SUPERUSER'')::text'),
                 '42501', NULL, '(e) worker_create_or_alter_role() to become a superuser: 42501');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'replay', format('SELECT worker_drop_distributed_table(%L)::text', 'memoriesdb.memories')),
                 '42501', NULL, '(e) worker_drop_distributed_table(): 42501');
-- the auditor connects by design (Citus opens its SELECTs' connections as its login): its SELECTs of the audit tables
-- there are what it may read through the coordinator; the API refuses it there too
SELECT is(pg_temp.connect_as('auditor', :port, 'mdb_citus_test_auditor'), 'connected', 'the auditor''s login connects to a worker (by design)');
SELECT throws_ok(format('SELECT pg_temp.on(%L, %L)', 'auditor', 'SELECT ok::text FROM memoriesdb.verify_audit_chain()'),
                 'MDB34', 'the ledger answers on the coordinator only', '... verify_audit_chain() there: MDB34');
SELECT count(memoriesdb_dblink.dblink_disconnect(c)) AS _ FROM unnest(memoriesdb_dblink.dblink_get_connections()) AS c \gset
REVOKE CONNECT ON DATABASE :"db" FROM mdb_citus_test_app, mdb_citus_test_backend;
-- every API function on every worker refuses first: authenticate() and vouch() themselves, the others by the context
-- carry (section 4c), which refuses before it carries; current_user_id(), context_proven() and setting() are the
-- shards' policies' and triggers'
SELECT string_agg(w.nodeport || ':' || w.result, ' ' ORDER BY w.nodeport) AS unguarded
  FROM run_command_on_workers($q$SELECT coalesce(string_agg(p.proname, ', '), 'none') FROM pg_proc AS p
                                  WHERE p.pronamespace = 'memoriesdb'::regnamespace AND p.prosecdef AND p.prokind = 'f'
                                    AND p.proname NOT IN ('context_proven', 'setting')
                                    AND p.prosrc NOT LIKE '%citus_on_coordinator boolean := memoriesdb_internal.citus_refuse_off_coordinator();%'
                                    AND (p.prosrc NOT LIKE '%memoriesdb_internal.citus_carry_context();   -- (Citus: section 4c)%'
                                         OR NOT EXISTS (SELECT 1 FROM pg_proc AS c WHERE c.oid = 'memoriesdb_internal.citus_carry_context()'::regprocedure
                                                           AND c.prosrc LIKE '%PERFORM memoriesdb_internal.citus_refuse_off_coordinator();%'))$q$) AS w \gset
SELECT is(regexp_replace(:'unguarded', '[0-9]+:', '', 'g'), 'none none',
          'on each worker every API function but context_proven() and setting() refuses off the coordinator first');

-- 3. Nothing got through: no memory, no audit row, no access log entry (none could be written on a worker)
-- (counted first: a query on one owner's shard is sent whole to its worker, is() included)
SELECT count(*) AS uma_memories_after FROM memoriesdb.memories WHERE owner_id = :'uma' \gset
SELECT count(*) AS uma_audit_after FROM memoriesdb.audit_log WHERE chain = :'uma' \gset
SELECT is(:'uma_memories_after'::bigint, :'uma_memories'::bigint, 'no memory of uma''s was written by the attacks');
SELECT is(:'uma_audit_after'::bigint, :'uma_audit'::bigint, '... nor an audit row in her chain');
SELECT is((SELECT count(*) FROM memoriesdb.access_log), :'log_entries'::bigint, '... nor an access log entry');

-- 4. A rule of the deployment: the roles Citus connects as log in on the workers from the cluster's nodes only, with a
-- credential. The deploy's check reads each worker's pg_hba.conf: nothing on this cluster (local sockets and
-- 127.0.0.1: the host's own); sample rules, classified on a worker (where only the three roles and superusers may
-- connect) for a cluster at 10.0.0.1-3
SELECT is((SELECT count(*) FROM memoriesdb_internal.citus_worker_access()), 0::bigint,
          'the deploy''s check finds nothing on this cluster once the grant is revoked (its pg_hba.conf: the host''s own)');
SELECT is(pg_temp.connect_as('admin', :port, 'postgres'), 'connected', '(a superuser''s session on the worker, for the sample rules)');
SELECT is(array_agg(substring(v FROM '^pg_hba.conf line (\d+)') || ':' || substring(v FROM '\): (trust|a range|another address):')
                    ORDER BY substring(v FROM '^pg_hba.conf line (\d+)')::integer, v),
          ARRAY['2:a range', '3:another address', '3:trust', '10:trust', '11:another address', '12:a range', '13:a range', '14:a range'],
          'sample pg_hba rules: a range (0.0.0.0/0, a /24, all, samenet), trust, an address that is no node reported; a node''s with a credential, another database, a client login, the host''s own not')
  FROM pg_temp.on('admin', format($q$SELECT p FROM memoriesdb_internal.citus_node_access_problems('{10.0.0.1,10.0.0.2,10.0.0.3}', %L) AS p$q$, $j$[
    {"line_number": 1, "type": "hostssl", "database": ["all"], "user_name": ["memoriesdb_owner", "memoriesdb_reader"], "address": "10.0.0.1", "netmask": "255.255.255.255", "auth_method": "scram-sha-256"},
    {"line_number": 2, "type": "host", "database": ["all"], "user_name": ["all"], "address": "0.0.0.0", "netmask": "0.0.0.0", "auth_method": "scram-sha-256"},
    {"line_number": 3, "type": "host", "database": ["all"], "user_name": ["memoriesdb_owner"], "address": "10.0.0.9", "netmask": "255.255.255.255", "auth_method": "trust"},
    {"line_number": 4, "type": "host", "database": ["otherdb"], "user_name": ["all"], "address": "0.0.0.0", "netmask": "0.0.0.0", "auth_method": "trust"},
    {"line_number": 5, "type": "host", "database": ["all"], "user_name": ["mdb_citus_test_app"], "address": "0.0.0.0", "netmask": "0.0.0.0", "auth_method": "scram-sha-256"},
    {"line_number": 6, "type": "local", "database": ["all"], "user_name": ["all"], "auth_method": "trust"},
    {"line_number": 7, "type": "host", "database": ["all"], "user_name": ["all"], "address": "127.0.0.1", "netmask": "255.255.255.255", "auth_method": "trust"},
    {"line_number": 8, "type": "host", "database": ["all"], "user_name": ["all"], "address": "samehost", "auth_method": "trust"},
    {"line_number": 9, "type": "hostssl", "database": ["all"], "user_name": ["+memoriesdb_auditor"], "address": "10.0.0.2", "netmask": "255.255.255.255", "auth_method": "cert"},
    {"line_number": 10, "type": "host", "database": ["all"], "user_name": ["memoriesdb_owner"], "address": "10.0.0.3", "netmask": "255.255.255.255", "auth_method": "trust"},
    {"line_number": 11, "type": "hostssl", "database": ["all"], "user_name": ["all"], "address": "10.0.0.77", "netmask": "255.255.255.255", "auth_method": "scram-sha-256"},
    {"line_number": 12, "type": "host", "database": ["all"], "user_name": ["+memoriesdb_auditor"], "address": "10.0.0.0", "netmask": "255.255.255.0", "auth_method": "md5"},
    {"line_number": 13, "type": "host", "database": ["all"], "user_name": ["all"], "address": "all", "auth_method": "scram-sha-256"},
    {"line_number": 14, "type": "host", "database": ["all"], "user_name": ["all"], "address": "samenet", "auth_method": "scram-sha-256"}
  ]$j$)) AS v;
SELECT memoriesdb_dblink.dblink_disconnect('admin') AS _ \gset

SELECT * FROM finish();
