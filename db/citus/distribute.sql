-- MemoriesDB on Citus (first slice, issue 17): turns a freshly deployed ledger on a Citus coordinator into a
-- distributed one. Run as a superuser on the coordinator, after `sqitch deploy` ran there with
-- citus.enable_ddl_propagation = off (scripts/citus.sh deploy NAME does both). docs/citus.md explains every step.
-- Not part of the sqitch plan: a single-node ledger never runs it.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET citus.enable_unsafe_triggers = on;        -- the ledger's row triggers fire on the shards (docs/citus.md: triggers)
SET citus.multi_shard_modify_mode = sequential;

BEGIN;
-- the ledger's own objects are changed here first, on the coordinator only; step 4 distributes the tables and
-- step 5 copies every function to the workers
SET LOCAL citus.enable_ddl_propagation = off;

-- 1. The context reaches the workers --------------------------------------------------------------------------
-- set_config(..., true) is not propagated; SET LOCAL is (citus.propagate_set_commands = 'local'). A worker has
-- another pid and another transaction start, so the proof binds what every node of one distributed transaction
-- shares: the initiating backend's global pid and the distributed transaction id (number and stamp; a read of
-- a reference table assigns it, as authenticate() does before it mints).
CREATE OR REPLACE FUNCTION memoriesdb_internal.context_proof(user_id text, ipad bytea, opad bytea) RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  SELECT pg_catalog.encode(pg_catalog.sha256(opad OPERATOR(pg_catalog.||) pg_catalog.sha256(ipad OPERATOR(pg_catalog.||)
           pg_catalog.convert_to(user_id OPERATOR(pg_catalog.||) '|citus|' OPERATOR(pg_catalog.||) pg_catalog.citus_backend_gpid()::text
             OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) t.initiator_node_identifier::text
             OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) t.transaction_number::text
             OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) (EXTRACT(epoch FROM t.transaction_stamp) OPERATOR(pg_catalog.*) 1000000)::bigint::text,
           'UTF8'))), 'hex')
    FROM pg_catalog.get_current_transaction_id() AS t
   WHERE t.transaction_number OPERATOR(pg_catalog.<>) 0
$$;

-- authenticate() as deployed, but the context is SET LOCAL (propagated) instead of set_config (not propagated)
CREATE FUNCTION pg_temp.patch(fn regprocedure, old text, new text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE src text := pg_get_functiondef(fn);
BEGIN
  IF position(old IN src) = 0 THEN RAISE EXCEPTION 'cannot patch %: % not found', fn, old; END IF;
  EXECUTE replace(src, old, new);
END $$;
CREATE FUNCTION pg_temp.run(ddl text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE ddl; END $$;
SELECT pg_temp.patch('memoriesdb.authenticate(text)',
    $x$  PERFORM set_config('app.current_user', k.user_id::text, true);
  PERFORM set_config('app.current_user_proof', memoriesdb_internal.context_proof(k.user_id::text, ck.ipad, ck.opad), true)
     FROM memoriesdb_internal.context_key AS ck;$x$,
    $x$  EXECUTE format('SET LOCAL app."current_user" = %L', k.user_id);
  EXECUTE format('SET LOCAL app.current_user_proof = %L', (SELECT memoriesdb_internal.context_proof(k.user_id::text, ck.ipad, ck.opad)
     FROM memoriesdb_internal.context_key AS ck));$x$);

-- 2. Policies without subqueries (Citus: "Subqueries are not supported in policies on distributed tables") ----
-- A lookup a policy needs becomes a function; it reads the colocated shard of the same owner (a router query run
-- locally on the worker), which Citus allows from a query on a shard only with allow_nested_distributed_execution.
CREATE FUNCTION memoriesdb_internal.citus_granted(owner_id uuid, memory_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                  WHERE g.owner_id = citus_granted.owner_id AND g.memory_id = citus_granted.memory_id
                    AND g.grantee_id = memoriesdb.current_user_id()
                    AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp()));
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_granted(uuid, uuid) IS
  'Internal (Citus): does the context user hold an unexpired grant on the memory (owner_id, memory_id)? The memories_visible policy''s EXISTS, as a function (a policy on a distributed table may hold no subquery).';

CREATE FUNCTION memoriesdb_internal.citus_memory_visible(owner_id uuid, memory_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
  -- as the caller: the memories policy decides
  RETURN EXISTS (SELECT 1 FROM memoriesdb.memories AS m
                  WHERE m.owner_id = citus_memory_visible.owner_id AND m.id = citus_memory_visible.memory_id);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_memory_visible(uuid, uuid) IS
  'Internal (Citus): is the memory (owner_id, memory_id) visible to the caller (the memories policy, applied as the caller)? The child tables'' "memory_id IN (SELECT id FROM memories)" policies, as a function.';

CREATE FUNCTION memoriesdb_internal.citus_owns_memory(memory_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM memoriesdb.memories AS m
                  WHERE m.id = citus_owns_memory.memory_id AND m.owner_id = memoriesdb.current_user_id());
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_owns_memory(uuid) IS
  'Internal (Citus): does the context user own the memory now? (audit_log_memory_owner: the current owner reads every audit row about it, in any chain.)';

ALTER POLICY users_self ON memoriesdb.users USING (id = memoriesdb.current_user_id());
ALTER POLICY api_keys_self ON memoriesdb.api_keys USING (user_id = memoriesdb.current_user_id());
ALTER POLICY memories_visible ON memoriesdb.memories
  USING (owner_id = memoriesdb.current_user_id() OR memoriesdb_internal.citus_granted(owner_id, id));
ALTER POLICY memory_grants_parties ON memoriesdb.memory_grants
  USING (grantee_id = memoriesdb.current_user_id() OR owner_id = memoriesdb.current_user_id());
ALTER POLICY idempotency_keys_visible ON memoriesdb.idempotency_keys USING (owner_id = memoriesdb.current_user_id());
ALTER POLICY query_cache_own ON memoriesdb_internal.query_cache
  USING (owner_id = memoriesdb.current_user_id()) WITH CHECK (owner_id = memoriesdb.current_user_id());
ALTER POLICY audit_log_memory_owner ON memoriesdb.audit_log USING (memoriesdb_internal.citus_owns_memory(memory_id));

-- 3. Every row of a memory carries its owner: the distribution column ----------------------------------------
-- (a unique constraint and a foreign key between distributed tables must include the distribution column)
ALTER TABLE memoriesdb.memory_revisions ADD COLUMN owner_id uuid;
ALTER TABLE memoriesdb.embeddings ADD COLUMN owner_id uuid;
ALTER TABLE memoriesdb.embedding_schedule ADD COLUMN owner_id uuid;
ALTER TABLE memoriesdb.memory_edges ADD COLUMN owner_id uuid;
UPDATE memoriesdb.memory_revisions AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.memory_id;
UPDATE memoriesdb.embeddings AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.memory_id;
UPDATE memoriesdb.embedding_schedule AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.memory_id;
UPDATE memoriesdb.memory_edges AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.source_id;
-- first slice: the API functions do not pass the owner yet; the writer is the owner in remember() (the coordinator
-- evaluates the default; docs/citus.md: what the core should change)
ALTER TABLE memoriesdb.memory_revisions ALTER COLUMN owner_id SET DEFAULT memoriesdb.current_user_id(), ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE memoriesdb.embeddings ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE memoriesdb.embedding_schedule ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE memoriesdb.memory_edges ALTER COLUMN owner_id SET DEFAULT memoriesdb.current_user_id(), ALTER COLUMN owner_id SET NOT NULL;

-- the keys: (owner_id, ...) everywhere
ALTER TABLE memoriesdb.memory_revisions DROP CONSTRAINT memory_revisions_memory_id_fkey;
ALTER TABLE memoriesdb.memory_grants DROP CONSTRAINT memory_grants_memory_id_fkey;
ALTER TABLE memoriesdb.memory_transfers DROP CONSTRAINT memory_transfers_memory_id_fkey;
ALTER TABLE memoriesdb.memory_edges DROP CONSTRAINT memory_edges_source_id_fkey, DROP CONSTRAINT memory_edges_target_id_fkey;
ALTER TABLE memoriesdb.embedding_schedule DROP CONSTRAINT embedding_schedule_memory_id_fkey;
ALTER TABLE memoriesdb.idempotency_keys DROP CONSTRAINT idempotency_keys_memory_id_fkey;
ALTER TABLE memoriesdb.memory_offers DROP CONSTRAINT memory_offers_memory_id_fkey;
ALTER TABLE memoriesdb.embeddings DROP CONSTRAINT embeddings_memory_id_fkey;

ALTER TABLE memoriesdb.memories DROP CONSTRAINT memories_pkey, ADD PRIMARY KEY (owner_id, id);
ALTER TABLE memoriesdb.memory_revisions DROP CONSTRAINT memory_revisions_pkey, ADD PRIMARY KEY (owner_id, id),
  DROP CONSTRAINT memory_revisions_memory_id_revision_key,
  ADD CONSTRAINT memory_revisions_memory_id_revision_key UNIQUE (owner_id, memory_id, revision);
ALTER TABLE memoriesdb.memory_grants DROP CONSTRAINT memory_grants_pkey, ADD PRIMARY KEY (owner_id, id),
  DROP CONSTRAINT memory_grants_memory_id_grantee_id_key,
  ADD CONSTRAINT memory_grants_memory_id_grantee_id_key UNIQUE (owner_id, memory_id, grantee_id);
-- a transfer row is the receiver's (its audit chain): distributed by to_owner; after a later transfer its memory
-- has another owner, so no foreign key (forget() removes the memory's transfers itself: not yet, docs/citus.md)
ALTER TABLE memoriesdb.memory_transfers DROP CONSTRAINT memory_transfers_pkey, ADD PRIMARY KEY (to_owner, id);
ALTER TABLE memoriesdb.memory_edges DROP CONSTRAINT memory_edges_pkey, ADD PRIMARY KEY (owner_id, id),
  DROP CONSTRAINT memory_edges_source_id_target_id_edge_type_key,
  ADD CONSTRAINT memory_edges_source_id_target_id_edge_type_key UNIQUE (owner_id, source_id, target_id, edge_type);
ALTER TABLE memoriesdb.embedding_schedule DROP CONSTRAINT embedding_schedule_pkey, ADD PRIMARY KEY (owner_id, memory_id, model_id);
ALTER TABLE memoriesdb.embeddings DROP CONSTRAINT embeddings_pkey, ADD PRIMARY KEY (owner_id, memory_id, model_id);
ALTER TABLE memoriesdb.memory_offers DROP CONSTRAINT memory_offers_pkey, ADD PRIMARY KEY (sender_id, id),
  DROP CONSTRAINT memory_offers_one_per_kind, ADD CONSTRAINT memory_offers_one_per_kind UNIQUE (sender_id, memory_id, recipient_id, kind);

-- the audit chains: a chain is an owner (or the common chain of the all-zero uuid). The rows and seals written
-- before per-owner chains (the deploy's own, chain NULL: part of their hashes) cannot hold a NULL distribution
-- column: the distribution column is chain_key, the chain or, for those, the all-ones uuid (outside every hash).
ALTER TABLE memoriesdb.audit_log ADD COLUMN chain_key uuid;
ALTER TABLE memoriesdb.audit_seals ADD COLUMN chain_key uuid;
ALTER TABLE memoriesdb.audit_log DISABLE TRIGGER append_only;
ALTER TABLE memoriesdb.audit_seals DISABLE TRIGGER append_only;
UPDATE memoriesdb.audit_log SET chain_key = coalesce(chain, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
UPDATE memoriesdb.audit_seals SET chain_key = coalesce(chain, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
ALTER TABLE memoriesdb.audit_log ENABLE TRIGGER append_only;
ALTER TABLE memoriesdb.audit_seals ENABLE TRIGGER append_only;
ALTER TABLE memoriesdb.audit_log ALTER COLUMN chain_key SET NOT NULL, DROP CONSTRAINT audit_log_pkey, ADD PRIMARY KEY (chain_key, id);
ALTER TABLE memoriesdb.audit_seals ALTER COLUMN chain_key SET NOT NULL, DROP CONSTRAINT audit_seals_pkey, ADD PRIMARY KEY (chain_key, seq);
DROP INDEX memoriesdb.audit_seals_chain_seq;
CREATE UNIQUE INDEX audit_seals_chain_seq ON memoriesdb.audit_seals (chain_key, chain, chain_seq) WHERE chain IS NOT NULL;

-- the writers fill chain_key (patched copies of the deployed functions, pg_temp.patch() above)
SELECT pg_temp.patch('memoriesdb_internal.audit_row()',
  'login, vouched_by, chain)', 'login, vouched_by, chain, chain_key)');
SELECT pg_temp.patch('memoriesdb_internal.audit_row()',
  'coalesce(chain, memoriesdb_internal.audit_common_chain()));', 'coalesce(chain, memoriesdb_internal.audit_common_chain()), coalesce(chain, memoriesdb_internal.audit_common_chain()));
  -- (Citus, first slice: no seal at commit on a shard; the chain waits for audit_seal_pending() on the coordinator)
  INSERT INTO memoriesdb_internal.audit_pending (chain, txid)
  VALUES (coalesce(chain, memoriesdb_internal.audit_common_chain()), pg_current_xact_id()) ON CONFLICT DO NOTHING;');
SELECT pg_temp.patch('memoriesdb_internal.audit_adopt(uuid, memoriesdb_internal.audit_chain_heads, integer)',
  'c, head.chain_seq + 1, NULL)::memoriesdb.audit_seals', 'c, head.chain_seq + 1, NULL, c)::memoriesdb.audit_seals');
SELECT pg_temp.patch('memoriesdb_internal.audit_seal_now(xid8)',
  'g.chain, head.chain_seq + 1, NULL)::memoriesdb.audit_seals', 'g.chain, head.chain_seq + 1, NULL, g.chain)::memoriesdb.audit_seals');
-- the seal at commit (a deferred constraint trigger) would run on the worker at PREPARE TRANSACTION and query
-- every chain the transaction wrote (shards on other nodes): not in this slice (docs/citus.md: sealing)
DROP TRIGGER seal ON memoriesdb.audit_log;

-- the child tables' policies: the memory is visible (its owner is in the row now)
ALTER POLICY memory_revisions_visible ON memoriesdb.memory_revisions USING (memoriesdb_internal.citus_memory_visible(owner_id, memory_id));
ALTER POLICY embeddings_visible ON memoriesdb.embeddings USING (memoriesdb_internal.citus_memory_visible(owner_id, memory_id));
ALTER POLICY memory_transfers_visible ON memoriesdb.memory_transfers USING (memoriesdb_internal.citus_owns_memory(memory_id));
ALTER POLICY memory_edges_visible ON memoriesdb.memory_edges
  USING (memoriesdb_internal.citus_memory_visible(owner_id, source_id));   -- (the target's side: docs/citus.md)

-- the audit rows of a child row name their chain from the row itself (no lookup of the memory from a shard)
DROP TRIGGER audit ON memoriesdb.memory_revisions;
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_revisions
  FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id', 'owner_id');
DROP TRIGGER audit ON memoriesdb.memory_edges;
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_edges
  FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('source_id', 'owner_id');

-- on a shard, TG_TABLE_NAME is the shard's name (users_102008): the triggers that look at it read the table's
SELECT pg_temp.patch(f::regprocedure, 'TG_TABLE_NAME', $x$regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '')$x$)
  FROM unnest(ARRAY['memoriesdb_internal.audit_row()', 'memoriesdb_internal.stamp_row()', 'memoriesdb_internal.refuse_change()',
                    'memoriesdb_internal.enqueue_vindexing()']) AS f;

-- and NEW is of the shard's row type (audit_log_102374), which no function taking memoriesdb.audit_log accepts
SELECT pg_temp.patch('memoriesdb_internal.audit_hash_row()', 'audit_canonical(NEW)', 'audit_canonical(NEW::text::memoriesdb.audit_log)');

-- A reference table has a replica on every node, and its row triggers fire on each. (a) A BEFORE trigger must
-- then give every replica the same row: stamp_row() stamps with the distributed transaction's stamp (the same on
-- every node of the transaction), not now() (each node's own transaction start). (b) An audit row is written once:
-- by the replica on the node that holds the chain's audit_log shard (for a distributed table that is always the
-- row's own node: the chain is the row's distribution value).
CREATE FUNCTION memoriesdb_internal.citus_now() RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT t.transaction_stamp FROM get_current_transaction_id() AS t WHERE t.transaction_number <> 0), now())
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_now() IS
  'Internal (Citus): the stamp of the distributed transaction (the same on every node it runs on), else now(). stamp_row() stamps with it, so that every replica of a reference table gets the same row.';

CREATE FUNCTION memoriesdb_internal.citus_skip_audit(shard regclass, chain uuid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- a replica of a reference table, on a node that does not hold the chain's audit_log shard
  SELECT EXISTS (SELECT 1 FROM pg_dist_shard AS s JOIN pg_dist_partition AS p ON p.logicalrelid = s.logicalrelid
                  WHERE s.shardid = substring(shard::text FROM '_([0-9]+)$')::bigint AND p.partmethod = 'n')
     AND NOT EXISTS (SELECT 1 FROM pg_dist_placement AS pl
                      WHERE pl.shardid = get_shard_id_for_distribution_column('memoriesdb.audit_log', chain)
                        AND pl.groupid = (SELECT g.groupid FROM pg_dist_local_group AS g))
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_skip_audit(regclass, uuid) IS
  'Internal (Citus): is this trigger firing on a replica of a reference table on a node that does not hold the audit_log shard of chain? (audit_row() then writes nothing: the replica on the shard''s node writes the row, once.)';

SELECT pg_temp.patch('memoriesdb_internal.stamp_row()', 'now()', 'memoriesdb_internal.citus_now()');
SELECT pg_temp.patch('memoriesdb_internal.audit_row()', '  INSERT INTO memoriesdb.audit_log
', '  IF memoriesdb_internal.citus_skip_audit(TG_RELID::regclass, coalesce(chain, memoriesdb_internal.audit_common_chain())) THEN
    RETURN NULL;
  END IF;
  INSERT INTO memoriesdb.audit_log
');

-- the embedding queue's rows carry the memory's owner
SELECT pg_temp.patch('memoriesdb_internal.enqueue_embedding()', 'embedding_schedule (memory_id, model_id, content_hash)',
                     'embedding_schedule (owner_id, memory_id, model_id, content_hash)');
SELECT pg_temp.patch('memoriesdb_internal.enqueue_embedding()', 'embedding_schedule AS s (memory_id, model_id, content_hash)',
                     'embedding_schedule AS s (owner_id, memory_id, model_id, content_hash)');
SELECT pg_temp.patch('memoriesdb_internal.enqueue_embedding()', 'SELECT NEW.id, em.id', 'SELECT NEW.owner_id, NEW.id, em.id');
SELECT pg_temp.patch('memoriesdb_internal.enqueue_embedding()', 'ON CONFLICT (memory_id, model_id)', 'ON CONFLICT (owner_id, memory_id, model_id)');

-- the policies on the shards check the context: context_proven() reads the key (a reference table) from a query on
-- a shard, which Citus allows only with nested execution on (a local read of the node's replica)
ALTER FUNCTION memoriesdb.context_proven(text, text) SET citus.allow_nested_distributed_execution = on;

-- a join of memories with a table of its rows names the owner on both sides (Citus: "complex joins are only
-- supported when all distributed tables are co-located and joined on their distribution columns")
SELECT pg_temp.patch('memoriesdb.list_memories()', 'WHERE g.memory_id = m.id AND', 'WHERE g.owner_id = m.owner_id AND g.memory_id = m.id AND');

-- a SQL function with parameters over a distributed table cannot be planned by Citus unless it is inlined ("could not
-- create distributed plan"): audit_unsealed() as PL/pgSQL, routed to the chain's shard (chain_key)
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_unsealed(x xid8, c uuid)
RETURNS TABLE (first_id bigint, last_id bigint, n bigint, digest bytea)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
  SELECT min(a.id), max(a.id), count(*), sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id))
    FROM memoriesdb.audit_log AS a
   WHERE a.chain_key = c AND a.txid = x AND a.chain = c
     AND NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS q
                      WHERE q.chain_key = a.chain_key AND q.txid = x AND q.chain = c AND a.id BETWEEN q.first_id AND q.last_id);
END
$$;

-- SELECT ... FOR UPDATE must name one shard ("could not run distributed query with FOR UPDATE/SHARE commands"): the
-- API's lock of a memory by id first finds the owner (a lookup on every shard), then locks on the owner's shard.
-- (A value in the query, not a function call: Citus prunes shards on constants and parameters only.)
CREATE FUNCTION memoriesdb_internal.citus_owner_of(memory_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT m.owner_id FROM memoriesdb.memories AS m WHERE m.id = citus_owner_of.memory_id);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_owner_of(uuid) IS
  'Internal (Citus): the owner of a memory, found on whichever shard holds it (NULL when none): the API locks a memory by (owner, id), on one shard.';
SELECT pg_temp.patch(f::regprocedure, format('PERFORM 1 FROM memoriesdb.memories AS t WHERE t.id = %s FOR UPDATE;', v),
  format($x$EXECUTE format('SELECT 1 FROM memoriesdb.memories AS t WHERE t.owner_id = %%L AND t.id = %%L FOR UPDATE', memoriesdb_internal.citus_owner_of(%s), %s);$x$, v, v))
  FROM (VALUES ('memoriesdb.forget(uuid)', 'forget.memory_id'), ('memoriesdb.share(uuid, uuid, text, timestamptz)', 'share.memory_id'),
               ('memoriesdb.transfer(uuid, uuid, text)', 'transfer.memory_id')) AS x(f, v);
SELECT pg_temp.patch('memoriesdb.revise(uuid, text, jsonb)',
  'SELECT * INTO m FROM memoriesdb.memories AS t WHERE t.id = revise.memory_id FOR UPDATE;',
  $x$EXECUTE format('SELECT * FROM memoriesdb.memories AS t WHERE t.owner_id = %L AND t.id = %L FOR UPDATE', memoriesdb_internal.citus_owner_of(revise.memory_id), revise.memory_id) INTO m;$x$);

-- the same for every SQL function with parameters whose one statement reads a ledger table: PL/pgSQL (RETURN or
-- RETURN QUERY of the same statement; #variable_conflict use_column keeps SQL's name resolution). Functions with
-- no parameters (current_user_id(): inlined in every policy) are left alone.
SELECT count(pg_temp.run(replace(replace(d.def, ' LANGUAGE sql', ' LANGUAGE plpgsql'), d.src,
         E'\n#variable_conflict use_column\nBEGIN\n  ' || CASE WHEN d.proretset THEN 'RETURN QUERY ' ELSE 'RETURN (' END
         || rtrim(btrim(d.src), ';') || CASE WHEN d.proretset THEN ';' ELSE ');' END || E'\nEND\n')))
  FROM (SELECT p.oid, p.proretset, p.prosrc AS src, pg_get_functiondef(p.oid) AS def
          FROM pg_proc AS p
         WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
           AND p.prolang = (SELECT l.oid FROM pg_language AS l WHERE l.lanname = 'sql')
           AND p.pronargs > 0 AND p.prosrc ~ '(FROM|JOIN)\s+memoriesdb'
           -- (PL/pgSQL refuses a parameter and a result column of one name: list_grants(memory_id) stays SQL)
           AND (SELECT count(*) = count(DISTINCT n) FROM unnest(p.proargnames) AS n)
           AND rtrim(btrim(regexp_replace(p.prosrc, '--[^\n]*', '', 'g')), E'; \n') !~ ';') AS d;

SELECT pg_temp.patch('memoriesdb_internal.access_level(uuid, uuid)', 'ON g.memory_id = m.id AND', 'ON g.owner_id = m.owner_id AND g.memory_id = m.id AND');

-- 4. Distribution ----------------------------------------------------------------------------------------------
-- Citus copies a table's rows into its shards with the shards' triggers in place: the ledger's triggers (stamp,
-- audit, queues) would fire for rows that are only moving. Off while the tables are distributed, on after.
SELECT count(*) FROM (
  SELECT format('ALTER TABLE %s DISABLE TRIGGER USER', c.oid::regclass) AS ddl
    FROM pg_class AS c WHERE c.relkind = 'r' AND c.relnamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
) AS d, LATERAL (SELECT pg_temp.run(d.ddl)) AS r;
SET LOCAL citus.enable_ddl_propagation = on;
-- reference tables: small, global, read everywhere (a copy on every node)
SELECT create_reference_table(t) FROM unnest(ARRAY[
  'memoriesdb.users', 'memoriesdb.api_keys', 'memoriesdb.config', 'memoriesdb.edge_types', 'memoriesdb.embedding_models',
  'memoriesdb.accepted_senders', 'memoriesdb.access_log_sink',
  'memoriesdb_internal.context_key', 'memoriesdb_internal.query_cache_key', 'memoriesdb_internal.ledger_identity',
  'memoriesdb_internal.edge_type_links']) AS t;

-- by owner, colocated with memories
SELECT create_distributed_table('memoriesdb.memories', 'owner_id', shard_count => 32);
SELECT create_distributed_table(t, c, colocate_with => 'memoriesdb.memories') FROM (VALUES
  ('memoriesdb.memory_revisions', 'owner_id'), ('memoriesdb.memory_grants', 'owner_id'),
  ('memoriesdb.memory_transfers', 'to_owner'), ('memoriesdb.memory_edges', 'owner_id'),
  ('memoriesdb.embedding_schedule', 'owner_id'), ('memoriesdb.embeddings', 'owner_id'),
  ('memoriesdb.idempotency_keys', 'owner_id'), ('memoriesdb.memory_offers', 'sender_id'),
  ('memoriesdb_internal.query_cache', 'owner_id'),
  ('memoriesdb.audit_log', 'chain_key'), ('memoriesdb.audit_seals', 'chain_key'),
  ('memoriesdb_internal.audit_chain_heads', 'chain'), ('memoriesdb_internal.audit_pending', 'chain')) AS v(t, c);


-- the foreign keys to memories, now between colocated distributed tables (before, Citus refuses a local table's
-- foreign key to a distributed one)
ALTER TABLE memoriesdb.memory_revisions ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.memory_grants ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.memory_edges ADD FOREIGN KEY (owner_id, source_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.embedding_schedule ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.embeddings ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.memory_offers ADD FOREIGN KEY (sender_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
-- (idempotency_keys: Citus refuses ON DELETE SET NULL on a key that includes the distribution column: no foreign
-- key; forget() must clear the key's memory_id itself: not yet, docs/citus.md)

SELECT count(*) FROM (
  SELECT format('ALTER TABLE %s ENABLE TRIGGER USER', c.oid::regclass) AS ddl
    FROM pg_class AS c WHERE c.relkind = 'r' AND c.relnamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
) AS d, LATERAL (SELECT pg_temp.run(d.ddl)) AS r;

-- 5. Every function of the ledger on every node (the triggers and policies on the shards call them, and the
-- functions they call); distributed, so a later CREATE OR REPLACE on the coordinator reaches the workers too.
-- (the workers run with check_function_bodies = off: a SQL function may name one copied after it)
SELECT count(create_distributed_function(p.oid::regprocedure))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND NOT EXISTS (SELECT 1 FROM pg_dist_object AS o WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid);

COMMIT;
