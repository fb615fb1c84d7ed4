-- MemoriesDB on Citus (first slice, issue 17): turns a freshly deployed ledger on a Citus coordinator into a
-- distributed one. Run as a superuser on the coordinator, after `sqitch deploy` ran there with
-- citus.enable_ddl_propagation = off (scripts/citus.sh deploy NAME does both). docs/citus.md explains every step.
-- Not part of the sqitch plan: a single-node ledger never runs it.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET citus.enable_unsafe_triggers = on;        -- the ledger's row triggers fire on the shards (docs/citus.md: triggers)
SET citus.multi_shard_modify_mode = sequential;
-- Distributing an object makes Citus copy the roles it depends on to the workers: CREATE for a role a worker lacks,
-- and ALTER to the coordinator's attributes for one it has, which made the ledger's roles NOLOGIN on the workers (they
-- log in there only: scripts/citus.sh) until the deploy made them LOGIN again: every other ledger on the same cluster
-- failed meanwhile ("role memoriesdb_owner is not permitted to log in", measured: 76 of 308 calls that opened new
-- connections during a deploy). Roles a worker has are left as they are.
SET citus.enable_alter_role_propagation = off;

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
-- several fragments at once (when each alone would leave the function invalid)
CREATE FUNCTION pg_temp.patch_many(fn regprocedure, olds text[], news text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE src text := pg_get_functiondef(fn);
BEGIN
  FOR i IN 1 .. cardinality(olds) LOOP
    IF position(olds[i] IN src) = 0 THEN RAISE EXCEPTION 'cannot patch %: % not found', fn, olds[i]; END IF;
    src := replace(src, olds[i], news[i]);
  END LOOP;
  EXECUTE src;
END $$;
CREATE FUNCTION pg_temp.run(ddl text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE ddl; END $$;
SELECT pg_temp.patch('memoriesdb.authenticate(text)',
    $x$  PERFORM set_config('app.current_user', r.user_id::text, true), set_config('app.current_user_proof', r.proof, true);$x$,
    $x$  EXECUTE format('SET LOCAL app."current_user" = %L', r.user_id);
  -- (Citus) the login too, for the audit rows written on the workers (where session_user is the role Citus
  -- connected as); the proof covers it (section 3f)
  EXECUTE format('SET LOCAL app.current_login = %L', session_user);
  EXECUTE format('SET LOCAL app.current_user_proof = %L', (SELECT memoriesdb_internal.context_proof(
                   jsonb_build_array(r.user_id::text, session_user::text, NULL::text)::text, ck.ipad, ck.opad)
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
ALTER TABLE memoriesdb.vindexing_schedule ADD COLUMN owner_id uuid;   -- the queue, by the owner of the changed row
-- (the rows of a migrated ledger, scripts/citus.sh migrate: filled with the ledger's triggers off; the audit, stamp and
-- vindexing triggers would record a schema change as writes: new audit rows, new updated_at, queued edges)
SET LOCAL session_replication_role = replica;
UPDATE memoriesdb.memory_revisions AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.memory_id;
UPDATE memoriesdb.embeddings AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.memory_id;
UPDATE memoriesdb.embedding_schedule AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.memory_id;
UPDATE memoriesdb.memory_edges AS c SET owner_id = m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.source_id;
SET LOCAL session_replication_role = origin;
-- first slice: the API functions do not pass the owner yet; the writer is the owner in remember() (the coordinator
-- evaluates the default; docs/citus.md: what the core should change)
ALTER TABLE memoriesdb.memory_revisions ALTER COLUMN owner_id SET DEFAULT memoriesdb.current_user_id(), ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE memoriesdb.embeddings ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE memoriesdb.embedding_schedule ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE memoriesdb.memory_edges ALTER COLUMN owner_id SET DEFAULT memoriesdb.current_user_id(), ALTER COLUMN owner_id SET NOT NULL;
-- (a queued row says only that the graph must be refreshed: one whose memory is gone goes to the common chain's key)
SET LOCAL session_replication_role = replica;   -- (as above: no stamp for a schema change)
UPDATE memoriesdb.vindexing_schedule AS c
   SET owner_id = coalesce((SELECT m.owner_id FROM memoriesdb.memories AS m WHERE m.id = c.memory_id), '00000000-0000-0000-0000-000000000000');
SET LOCAL session_replication_role = origin;
ALTER TABLE memoriesdb.vindexing_schedule ALTER COLUMN owner_id SET NOT NULL,
  DROP CONSTRAINT vindexing_schedule_pkey, ADD PRIMARY KEY (owner_id, id);

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
-- has another owner, so no foreign key (forget() removes the memory's transfers itself: section 3c)
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
  VALUES (coalesce(chain, memoriesdb_internal.audit_common_chain()), memoriesdb_internal.citus_txid()) ON CONFLICT DO NOTHING;');
SELECT pg_temp.patch('memoriesdb_internal.audit_adopt(uuid, memoriesdb_internal.audit_chain_heads, integer)',
  'c, head.chain_seq + 1, NULL)::memoriesdb.audit_seals', 'c, head.chain_seq + 1, NULL, c)::memoriesdb.audit_seals');
SELECT pg_temp.patch('memoriesdb_internal.audit_seal_now(xid8)',
  'g.chain, head.chain_seq + 1, NULL)::memoriesdb.audit_seals', 'g.chain, head.chain_seq + 1, NULL, g.chain)::memoriesdb.audit_seals');
-- the seal at commit (a deferred constraint trigger) would run on the worker at PREPARE TRANSACTION and query
-- every chain the transaction wrote (shards on other nodes): not in this slice (docs/citus.md: sealing)
DROP TRIGGER seal ON memoriesdb.audit_log;

-- the child tables' policies: the memory is visible (its owner is in the row now)
-- (these policies bind memoriesdb_app and memoriesdb_reader, for whom a memory is visible when it is theirs or granted:
-- memories_visible's rule on the row's own columns, with no read of memories per row. citus_memory_visible()
-- read it through Citus, a nested distributed query per row: measured, the HNSW plan of a 3000-memory tenant
-- spent about 1.4 s of the workers' CPU per search in the embeddings policy)
ALTER POLICY memory_revisions_visible ON memoriesdb.memory_revisions
  USING (owner_id = memoriesdb.current_user_id() OR memoriesdb_internal.citus_granted(owner_id, memory_id));
ALTER POLICY embeddings_visible ON memoriesdb.embeddings
  USING (owner_id = memoriesdb.current_user_id() OR memoriesdb_internal.citus_granted(owner_id, memory_id));
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
-- (Citus: "functions used in the DO UPDATE SET clause of INSERTs on distributed tables must be marked IMMUTABLE",
-- measured in revise(): the proposed row's run_after is the same now(), its column default)
SELECT pg_temp.patch('memoriesdb_internal.enqueue_embedding()', 'run_after = now()', 'run_after = EXCLUDED.run_after');

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
-- a revision is the memory owner's row, whoever writes it: a grantee's (permission write) revise() took the writer as
-- its owner (the column's default, current_user_id()) and failed on the foreign key (measured: 23503 on
-- memory_revisions, every grantee revise on Citus; the single node returns the new revision; red team,
-- 15-redteam-directory.sql); the memory's update names its owner (one shard)
SELECT pg_temp.patch_many('memoriesdb.revise(uuid, text, jsonb)',
  ARRAY['   WHERE t.id = m.id;',
        '  INSERT INTO memoriesdb.memory_revisions (memory_id, revision, content_hash, metadata, content_changed, metadata_changed)
  VALUES (m.id,'],
  ARRAY['   WHERE t.owner_id = m.owner_id AND t.id = m.id;',
        '  INSERT INTO memoriesdb.memory_revisions (owner_id, memory_id, revision, content_hash, metadata, content_changed, metadata_changed)
  VALUES (m.owner_id, m.id,']);

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
           -- (a single row of OUT parameters cannot be RETURNed: such a function stays SQL; filter_sample() is PL/pgSQL, docs/citus.md)
           AND (p.proretset OR p.proargmodes IS NULL OR NOT 'o' = ANY (p.proargmodes))
           AND rtrim(btrim(regexp_replace(p.prosrc, '--[^\n]*', '', 'g')), E'; \n') !~ ';') AS d;

SELECT pg_temp.patch('memoriesdb_internal.visible_memories(uuid)', 'JOIN memoriesdb.memories AS m ON m.id = g.memory_id',
                     'JOIN memoriesdb.memories AS m ON m.owner_id = g.owner_id AND m.id = g.memory_id');
SELECT pg_temp.patch('memoriesdb_internal.access_level(uuid, uuid)', 'ON g.memory_id = m.id AND', 'ON g.owner_id = m.owner_id AND g.memory_id = m.id AND');

-- the vector index's settings: search sets them with set_config(..., true), which is not propagated (a worker's
-- index scan would run with the defaults); SET LOCAL is (section 1). Every call set_config('hnsw.…', v, true) in the
-- ledger's functions becomes citus_set_config('hnsw.…', v, true), a SET LOCAL through EXECUTE.
CREATE FUNCTION memoriesdb_internal.citus_set_config(name text, value text, is_local boolean) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF name !~ '^hnsw\.[a-z_]+$' OR is_local IS NOT TRUE THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'citus_set_config: only hnsw settings, for the transaction',
      DETAIL = format('%s (local: %s)', name, is_local), HINT = 'set_config() for anything else';
  END IF;
  EXECUTE format('SET LOCAL %s = %L', name, value);
  RETURN current_setting(name);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_set_config(text, text, boolean) IS
  'Internal (Citus): set_config(name, value, true) for the vector index''s settings (hnsw.*) as SET LOCAL, which Citus propagates to the workers'' connections of the transaction (set_config is not propagated).';
SELECT count(pg_temp.run(replace(pg_get_functiondef(p.oid), $x$set_config('hnsw.$x$, $x$memoriesdb_internal.citus_set_config('hnsw.$x$)))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND p.prosrc LIKE $x$%set_config('hnsw.%$x$ AND p.proname <> 'citus_set_config';

-- PL/pgSQL queries whose parameters Citus must see as values to plan them ("could not create distributed plan …
-- parameters", measured in visible_counts() and visible_memories() under search(), once PL/pgSQL switched to a
-- generic plan): every ledger PL/pgSQL function that reads a ledger table plans with the parameters substituted
-- (Citus defers most planning to execution anyway)
SELECT count(pg_temp.run(format('ALTER FUNCTION %s SET plan_cache_mode = force_custom_plan', p.oid::regprocedure)))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND p.prolang = (SELECT l.oid FROM pg_language AS l WHERE l.lanname = 'plpgsql')
   AND p.prosrc ~ '(FROM|JOIN|INTO|UPDATE)\s+memoriesdb';

-- 3b. The audit's transaction identity, verification and checkpoints on the distributed chains -------------------
-- A transaction's audit rows are written on the nodes of the chains it touches: each worker's local xid differs,
-- so the seals of one transaction in two chains (a transfer) could not find each other by txid, and a chain that
-- moves to another node could meet a txid again. The txid of an audit row and of its seal is therefore the
-- distributed transaction's identity, the same on every node: the initiator's transaction stamp (microseconds)
-- * 1024 + the initiator's node (4 bits) * 64 + the transaction number mod 64. (The number alone restarts at 1 when
-- the coordinator restarts; two transactions collide only if one node starts 64k of them in one microsecond.)
-- Outside a distributed transaction (none is assigned yet): the local xid, as on a single node.
CREATE FUNCTION memoriesdb_internal.citus_txid() RETURNS xid8
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT (((extract(epoch FROM t.transaction_stamp) * 1000000)::bigint * 1024
                            + (t.initiator_node_identifier % 16) * 64 + t.transaction_number % 64))::text::xid8
                     FROM get_current_transaction_id() AS t WHERE t.transaction_number <> 0),
                  pg_current_xact_id())
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_txid() IS
  'Internal (Citus): the audit''s transaction identity, the same on every node of one distributed transaction (its stamp, initiator and number); the local xid outside one. Audit rows, pending groups and seals carry it as txid, so the seals of one transaction in chains on two nodes name each other.';
ALTER TABLE memoriesdb.audit_log ALTER COLUMN txid SET DEFAULT memoriesdb_internal.citus_txid();

-- verification: every check joins the audit rows, seals and pending groups of one chain on its distribution value
-- (chain_key; a router or pushed-down query per shard), and the only check across chains, that the seals of one
-- transaction name each other (peers), runs on the coordinator over the few seals that have peers (gathered
-- first). Whole-row values are rebuilt as the table's row type: on a shard a row is of the shard's type.
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_findings(checkpoint jsonb)
RETURNS TABLE (audit_id bigint, problem text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- 1. a row whose contents no longer match its hash
  RETURN QUERY
  SELECT a.id, format('audit row %s: contents do not match its hash (edited, or moved to another id)', a.id)
    FROM memoriesdb.audit_log AS a
   WHERE a.row_hash IS DISTINCT FROM sha256(memoriesdb_internal.audit_canonical(ROW(a.id, a.created_at, a.created_by, a.db_role,
           a.application_name, a.txid, a.table_name, a.row_id, a.memory_id, a.op, a.old_row, a.new_row, a.row_hash, a.login,
           a.vouched_by, a.chain, a.chain_key)::memoriesdb.audit_log));
  -- 2. a committed row no seal covers, unless it waits for its chain's sealer
  RETURN QUERY
  SELECT a.id, format('audit row %s: not covered by any seal (inserted outside the ledger)', a.id)
    FROM memoriesdb.audit_log AS a
   WHERE NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS s
                      WHERE s.chain_key = a.chain_key AND s.txid = a.txid AND s.chain IS NOT DISTINCT FROM a.chain
                        AND a.id BETWEEN s.first_id AND s.last_id)
     AND NOT EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w
                      WHERE w.chain = a.chain_key AND w.chain = a.chain AND w.txid = a.txid);
  -- 3. a seal whose rows are no longer all there, or in another order
  RETURN QUERY
  SELECT s.first_id, format('audit rows %s..%s (seal %s of chain %s): %s of %s rows remain or their order changed (deleted or reordered)',
                            s.first_id, s.last_id, coalesce(s.chain_seq, s.seq),
                            memoriesdb_internal.audit_chain_name(s.chain), coalesce(g.n, 0), s.row_count)
    FROM memoriesdb.audit_seals AS s
    LEFT JOIN (SELECT q.chain_key, q.seq, count(*) AS n, sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id)) AS digest
                 FROM memoriesdb.audit_seals AS q
                 JOIN memoriesdb.audit_log AS a
                   ON a.chain_key = q.chain_key AND a.txid = q.txid AND a.chain IS NOT DISTINCT FROM q.chain
                  AND a.id BETWEEN q.first_id AND q.last_id
                GROUP BY q.chain_key, q.seq) AS g ON g.chain_key = s.chain_key AND g.seq = s.seq
   WHERE coalesce(g.n, 0) <> s.row_count OR g.digest IS DISTINCT FROM s.rows_digest;
  -- 4. each chain of seals: edited, removed or inserted seals (a chain is one distribution value)
  RETURN QUERY
  SELECT c.first_id, format('seal %s of chain %s (audit rows from %s): %s', c.pos,
           memoriesdb_internal.audit_chain_name(c.chain), c.first_id,
           CASE WHEN c.seal_hash IS DISTINCT FROM c.expect_hash THEN 'seal edited'
                WHEN c.pos <> c.expect_pos THEN 'a seal before it is missing'
                ELSE 'chain broken: prev_hash does not match the previous seal' END)
    FROM (SELECT s.*, coalesce(s.chain_seq, s.seq) AS pos,
                 memoriesdb_internal.audit_seal_hash(ROW(s.seq, s.txid, s.first_id, s.last_id, s.row_count, s.rows_digest,
                   s.prev_hash, s.seal_hash, s.created_at, s.chain, s.chain_seq, s.peers, s.chain_key)::memoriesdb.audit_seals) AS expect_hash,
                 coalesce(lag(coalesce(s.chain_seq, s.seq)) OVER w, 0) + 1 AS expect_pos,
                 coalesce(lag(s.seal_hash) OVER w,
                          CASE WHEN s.chain IS NULL THEN memoriesdb_internal.audit_genesis()
                               ELSE memoriesdb_internal.audit_genesis(s.chain) END) AS expect_prev
            FROM memoriesdb.audit_seals AS s
          WINDOW w AS (PARTITION BY s.chain_key ORDER BY coalesce(s.chain_seq, s.seq))) AS c
   WHERE c.seal_hash IS DISTINCT FROM c.expect_hash OR c.pos <> c.expect_pos
      OR c.prev_hash IS DISTINCT FROM c.expect_prev;
  -- 5. the seals of one transaction name each other, across chains (and nodes): over the seals with peers and the
  -- waiting groups, gathered on the coordinator
  RETURN QUERY
  WITH ps AS MATERIALIZED (SELECT s.chain, s.chain_seq, s.txid, s.first_id, s.peers FROM memoriesdb.audit_seals AS s
                            WHERE s.peers IS NOT NULL),
       pend AS MATERIALIZED (SELECT w.chain, w.txid FROM memoriesdb_internal.audit_pending AS w)
  SELECT s.first_id, format('seal %s of chain %s: its peer, seal %s of chain %s, is missing or does not name it back',
                            s.chain_seq, s.chain, coalesce(p->>'seq', '(sealed later)'), p->>'chain')
    FROM ps AS s
    CROSS JOIN LATERAL jsonb_array_elements(s.peers) AS p
   WHERE NOT EXISTS (SELECT 1 FROM ps AS q
                      WHERE q.chain::text = p->>'chain' AND q.txid = s.txid
                        AND (p->'seq' = 'null'::jsonb OR q.chain_seq::text = p->>'seq')
                        AND (q.peers @> jsonb_build_array(jsonb_build_object('chain', s.chain, 'seq', s.chain_seq))
                             OR q.peers @> jsonb_build_array(jsonb_build_object('chain', s.chain, 'seq', NULL))))
     AND NOT (p->'seq' = 'null'::jsonb
              AND EXISTS (SELECT 1 FROM pend AS w WHERE w.chain::text = p->>'chain' AND w.txid = s.txid));
  IF checkpoint IS NOT NULL THEN
    RETURN QUERY SELECT c.audit_id, c.problem FROM memoriesdb_internal.audit_checkpoint_findings(checkpoint) AS c;
  END IF;
END
$$;

-- the checkpoint's findings: as deployed, but the waiting groups (8.) checked one by one on their chain's shard
-- (a correlated subquery from a list on the coordinator into the shards cannot be pushed down)
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_checkpoint_findings(checkpoint jsonb)
RETURNS TABLE (audit_id bigint, problem text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  e jsonb;
  c uuid;
  x xid8;
  un bigint;
  ud bytea;
  still boolean;
BEGIN
  -- 6. the checkpoint itself
  RETURN QUERY
  SELECT NULL::bigint, 'the checkpoint''s root does not match its chains (the checkpoint was altered)'
   WHERE checkpoint->>'root' IS DISTINCT FROM encode(memoriesdb_internal.audit_merkle_root(checkpoint->'chains'), 'hex');
  RETURN QUERY
  SELECT NULL::bigint, format('the checkpoint is of another ledger (%s, this one is %s)', checkpoint->>'ledger', i.ledger_id)
    FROM memoriesdb_internal.ledger_identity AS i
   WHERE checkpoint->>'ledger' IS DISTINCT FROM i.ledger_id::text;
  -- 7. every chain head it holds is still there, unchanged (one router query per chain)
  FOR e IN SELECT j FROM jsonb_array_elements(checkpoint->'chains') AS j LOOP
    RETURN QUERY
    SELECT s.first_id,
           CASE WHEN s.seal_hash IS NOT NULL
                THEN format('chain %s, seal %s: not the seal the checkpoint of %s holds (the chain was rewritten or forked)',
                            e->>'chain', e->>'seq', checkpoint->>'taken_at')
                WHEN n.newest IS NULL
                THEN format('chain %s: no seals left, the checkpoint of %s holds %s (removed: DELETE or TRUNCATE)',
                            e->>'chain', checkpoint->>'taken_at', e->>'seq')
                ELSE format('chain %s: ends at seal %s, the checkpoint of %s holds seal %s (the tail was removed)',
                            e->>'chain', n.newest, checkpoint->>'taken_at', e->>'seq') END
      FROM (SELECT (memoriesdb_internal.audit_seal_at(e->>'chain', (e->>'seq')::bigint)).*) AS s,
           (SELECT memoriesdb_internal.audit_chain_end(e->>'chain') AS newest) AS n
     WHERE s.seal_hash IS DISTINCT FROM decode(e->>'hash', 'hex');
  END LOOP;
  RETURN QUERY
  SELECT NULL::bigint, format('the audit log ends at row %s, the checkpoint of %s saw rows up to %s (rows removed: DELETE or TRUNCATE)',
                              coalesce(m.last_id, 0), checkpoint->>'taken_at', checkpoint->>'audit_rows')
    FROM (SELECT max(a.id) AS last_id FROM memoriesdb.audit_log AS a) AS m
   WHERE coalesce(m.last_id, 0) < (checkpoint->>'audit_rows')::bigint;
  -- 7b. (Citus) and per node: each worker numbers its audit rows from its own range (group g from g * 2^48, section 6),
  -- so the newest row overall is the highest range's; rows removed from the end of another node's range show only in
  -- that range's newest row (a checkpoint without audit_rows_by_range, of a single node, has nothing to compare)
  RETURN QUERY
  SELECT NULL::bigint,
         format('the audit rows numbered by node range %s end at row %s, the checkpoint of %s saw rows up to %s there (rows removed: DELETE or TRUNCATE)',
                r.key, coalesce(m.last_id, 0), checkpoint->>'taken_at', r.value)
    FROM jsonb_each_text(coalesce(checkpoint->'audit_rows_by_range', '{}'::jsonb)) AS r
    LEFT JOIN (SELECT a.id >> 48 AS range, max(a.id) AS last_id FROM memoriesdb.audit_log AS a GROUP BY 1) AS m
      ON m.range = r.key::bigint
   WHERE r.key ~ '^[0-9]{1,5}$' AND r.value ~ '^[0-9]{1,19}$' AND coalesce(m.last_id, 0) < r.value::bigint;
  -- 8. each group that waited for its seal at the checkpoint: still waiting, as it was, or sealed as it was
  FOR e IN SELECT j FROM jsonb_array_elements(coalesce(checkpoint->'waiting', '[]'::jsonb)) AS j LOOP
    c := (e->>'chain')::uuid;
    x := (e->>'txid')::xid8;
    -- (three statements: one expression holding them all was pushed into a shard and failed there, "cannot execute
    -- a distributed query from a query on a shard")
    un := NULL; ud := NULL; still := false;
    IF NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS q
                    WHERE q.chain_key = c AND q.chain = c AND q.txid = x
                      AND q.row_count = (e->>'rows')::integer AND encode(q.rows_digest, 'hex') = e->>'digest') THEN
      SELECT g.n, g.digest INTO un, ud FROM memoriesdb_internal.audit_unsealed(x, c) AS g;
      still := EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w WHERE w.chain = c AND w.txid = x);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS q
                    WHERE q.chain_key = c AND q.chain = c AND q.txid = x
                      AND q.row_count = (e->>'rows')::integer AND encode(q.rows_digest, 'hex') = e->>'digest')
       AND NOT (still AND un = (e->>'rows')::bigint AND encode(ud, 'hex') = e->>'digest') THEN
      audit_id := NULL;
      problem := format('chain %s: the %s audit rows of transaction %s, waiting for their seal at the checkpoint of %s, are gone or not as they were (removed or rewritten while they waited)',
                        e->>'chain', e->>'rows', e->>'txid', checkpoint->>'taken_at');
      RETURN NEXT;
    END IF;
  END LOOP;
END
$$;

-- the checkpoint: the heads per chain (a window per distribution value: pushed down to the shards), and the groups
-- waiting for their seal, each measured on its own shard. Not one snapshot of the whole cluster (Citus has none):
-- each chain's head is one that chain had; a group sealed between the two reads is in neither (not committed to)
-- or in both (verification accepts a waiting group that was sealed as it was).
CREATE OR REPLACE FUNCTION memoriesdb.audit_checkpoint() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  chains jsonb;
  waiting jsonb;
  p record;
  n bigint;
  digest bytea;
BEGIN
  SELECT coalesce(jsonb_agg(jsonb_build_object('chain', h.chain, 'seq', h.seq, 'hash', h.hash) ORDER BY h.chain COLLATE "C"), '[]'::jsonb)
    INTO chains
    FROM (SELECT memoriesdb_internal.audit_chain_name(x.chain) AS chain, x.pos AS seq, encode(x.seal_hash, 'hex') AS hash
            FROM (SELECT s.chain, coalesce(s.chain_seq, s.seq) AS pos, s.seal_hash,
                         row_number() OVER (PARTITION BY s.chain_key ORDER BY coalesce(s.chain_seq, s.seq) DESC) AS r
                    FROM memoriesdb.audit_seals AS s) AS x
           WHERE x.r = 1) AS h;
  -- each waiting group measured on its chain's shard, one router query each (measured: the lateral join of the
  -- list with audit_unsealed() was pushed into the shards and failed there, "cannot execute a distributed query
  -- from a query on a shard")
  FOR p IN SELECT w.chain, w.txid FROM memoriesdb_internal.audit_pending AS w ORDER BY 1, 2 LOOP
    SELECT g.n, g.digest INTO n, digest FROM memoriesdb_internal.audit_unsealed(p.txid, p.chain) AS g;
    IF n > 0 THEN
      waiting := coalesce(waiting, '[]'::jsonb)
                 || jsonb_build_object('chain', p.chain, 'txid', p.txid::text, 'rows', n, 'digest', encode(digest, 'hex'));
    END IF;
  END LOOP;
  RETURN jsonb_build_object(
           'format', 'memoriesdb-checkpoint/1',
           'ledger', (SELECT i.ledger_id FROM memoriesdb_internal.ledger_identity AS i),
           'database', current_database(),
           'taken_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'audit_rows', (SELECT coalesce(max(a.id), 0) FROM memoriesdb.audit_log AS a),
           -- the newest row of each node's range (section 6: group g numbers from g * 2^48): audit_rows alone sees
           -- the highest range only
           'audit_rows_by_range', (SELECT coalesce(jsonb_object_agg(x.range::text, x.last_id), '{}'::jsonb)
                                     FROM (SELECT a.id >> 48 AS range, max(a.id) AS last_id
                                             FROM memoriesdb.audit_log AS a GROUP BY 1) AS x),
           'chains', chains,
           'root', encode(memoriesdb_internal.audit_merkle_root(chains), 'hex'))
         || CASE WHEN waiting IS NOT NULL THEN jsonb_build_object('waiting', waiting) ELSE '{}'::jsonb END;
END
$$;

-- NOTIFY on a worker: nobody listens there (the runner listens on the coordinator, and polls as well), and a
-- transaction that notified cannot PREPARE ("cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or
-- NOTIFY", measured: remember() after accept_sender() in one transaction, a transfer): on a shard, no NOTIFY.
SELECT pg_temp.patch('memoriesdb_internal.notify_embedding()', $x$  PERFORM pg_notify('memoriesdb_embedding', '');$x$,
  $x$  IF TG_TABLE_NAME !~ '_[0-9]+$' THEN   -- (Citus: not on a shard)
    PERFORM pg_notify('memoriesdb_embedding', '');
  END IF;$x$);
-- the vindexing queue: distributed by owner (section 3), written by the trigger on a shard into the colocated shard
SELECT pg_temp.patch('memoriesdb_internal.enqueue_vindexing()', $x$BEGIN
  IF regexp_replace(TG_TABLE_NAME$x$, $x$BEGIN
  IF TG_TABLE_NAME ~ '_[0-9]+$' THEN
    -- (Citus: on a shard) the queue is distributed by owner: this owner's shard of it is on this node, written
    -- locally (nested execution); the NOTIFY would reach nobody (the runner listens on the coordinator, and polls)
    IF regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') = 'memories' THEN
      INSERT INTO memoriesdb.vindexing_schedule (owner_id, memory_id, reason) VALUES (NEW.owner_id, NEW.id, 'embedding');
    ELSE
      PERFORM 'PRAGMA:disable:check';
      INSERT INTO memoriesdb.vindexing_schedule (owner_id, memory_id, reason)
      VALUES (coalesce(NEW.owner_id, OLD.owner_id), coalesce(NEW.source_id, OLD.source_id), 'edge');
    END IF;
    RETURN NULL;
  END IF;
  IF regexp_replace(TG_TABLE_NAME$x$);
ALTER FUNCTION memoriesdb_internal.enqueue_vindexing() SET citus.allow_nested_distributed_execution = on;
-- memory_words (the words search_text() scores a large caller's memories by): distributed by owner (section 3),
-- written by the trigger on a memories shard into the colocated shard, as the queue above; transfer() moves a
-- memory by INSERT and DELETE, so its words follow it to the receiver's shard
ALTER FUNCTION memoriesdb_internal.keep_memory_words() SET citus.allow_nested_distributed_execution = on;

-- 3c. forget() and transfer() across shards ----------------------------------------------------------------------
-- forget(): what the foreign keys to memories did on a single node and cannot on Citus (no key to a memory of
-- another owner; no ON DELETE SET NULL with the distribution column): edges of other owners pointing at it, the
-- transfer rows about it (in their receivers' shards), and the idempotency key that named it (NULL: stored once,
-- forgotten since). Multi-shard statements, in the same distributed transaction.
SELECT pg_temp.patch('memoriesdb.forget(uuid)', '  DELETE FROM memoriesdb.memories AS t WHERE t.id = forget.memory_id;',
  $x$  DELETE FROM memoriesdb.memories AS t WHERE t.id = forget.memory_id;
  -- (Citus: no foreign keys across owners' shards: docs/citus.md)
  DELETE FROM memoriesdb.memory_edges AS e WHERE e.target_id = forget.memory_id;
  DELETE FROM memoriesdb.memory_transfers AS x WHERE x.memory_id = forget.memory_id;
  UPDATE memoriesdb.idempotency_keys AS k SET memory_id = NULL WHERE k.memory_id = forget.memory_id;$x$);

-- transfer(): the memory moves to the receiver's shard (the owner is the distribution column; Citus cannot UPDATE
-- it): its row and every row of it are copied under the new owner, same ids, then the giver's are deleted (with
-- them, by the foreign keys, the giver's pending offers of it). One distributed transaction (two-phase commit
-- across the two workers). The audit shows it as what happened on the shards: DELETEs in the giver's chain,
-- INSERTs and the transfer row in the receiver's, sealed with the same txid and naming each other (peers).
-- The moved rows keep their created_at/created_by: stamp_row() keeps them while memoriesdb.citus_moving is on.
SELECT pg_temp.patch('memoriesdb_internal.stamp_row()', '  IF TG_OP = ''INSERT'' THEN
    NEW.created_at', '  IF TG_OP = ''INSERT'' AND NEW.created_at IS NOT NULL AND current_setting(''memoriesdb.citus_moving'', true) = ''on'' THEN
    NULL;  -- (Citus) a row moved to its new owner''s shard by transfer(): its creation stays as it was
  ELSIF TG_OP = ''INSERT'' THEN
    NEW.created_at');

CREATE FUNCTION memoriesdb_internal.citus_move_rows(tbl regclass, owner_col text, memory_col text, from_owner uuid, to_owner uuid,
                                                    memory_id uuid, extra text DEFAULT '') RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cols text;
  vals text;
  n bigint;
BEGIN
  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
         string_agg(CASE WHEN a.attname = owner_col THEN '$2' ELSE 'r.' || quote_ident(a.attname) END, ', ' ORDER BY a.attnum)
    INTO cols, vals
    FROM pg_attribute AS a
   WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s AS r WHERE r.%I = $1 AND r.%I = $3 %s',
                 tbl, cols, vals, tbl, owner_col, memory_col, extra)
    USING from_owner, to_owner, memory_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_move_rows(regclass, text, text, uuid, uuid, uuid, text) IS
  'Internal (Citus): copies the rows of table tbl about memory memory_id from from_owner''s shard to to_owner''s (owner_col set to to_owner, every other column as it was; extra: more of the WHERE clause). transfer() moves a memory with it.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.effect_transfer(transfer_id uuid, memory_id uuid, from_owner uuid, to_owner uuid, note text)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f uuid := effect_transfer.from_owner;
  t uuid := effect_transfer.to_owner;
  m uuid := effect_transfer.memory_id;
  tid uuid;
BEGIN
  -- (the caller locked the memory on the giver's shard)
  EXECUTE 'SET LOCAL memoriesdb.citus_moving = on';
  PERFORM memoriesdb_internal.citus_move_rows('memoriesdb.memories', 'owner_id', 'id', f, t, m);
  -- its insert queued the receiver's embedding jobs anew: the giver's queue state moves instead
  EXECUTE 'DELETE FROM memoriesdb.embedding_schedule AS s WHERE s.owner_id = $1 AND s.memory_id = $2' USING t, m;
  PERFORM memoriesdb_internal.citus_move_rows(x.tbl, 'owner_id', x.col, f, t, m, x.extra)
     FROM (VALUES ('memoriesdb.memory_revisions'::regclass, 'memory_id', ''),
                  ('memoriesdb.embeddings'::regclass, 'memory_id', ''),
                  ('memoriesdb.embedding_schedule'::regclass, 'memory_id', ''),
                  ('memoriesdb.memory_edges'::regclass, 'source_id', ''),
                  -- the new owner needs no grant; the other grants now belong to the new owner, who may unshare them
                  ('memoriesdb.memory_grants'::regclass, 'memory_id', format('AND r.grantee_id <> %L', t))) AS x(tbl, col, extra);
  EXECUTE 'SET LOCAL memoriesdb.citus_moving = off';
  -- the giver's copy goes, and with it (foreign keys) its revisions, embeddings, jobs, edges, grants and the former
  -- owner's pending offers of it (it can give nothing of it any more)
  EXECUTE 'DELETE FROM memoriesdb.memories AS r WHERE r.owner_id = $1 AND r.id = $2' USING f, m;
  INSERT INTO memoriesdb.memory_transfers AS x (id, memory_id, from_owner, to_owner, note)
  VALUES (effect_transfer.transfer_id, m, f, t, effect_transfer.note)
  RETURNING x.id INTO tid;
  RETURN tid;
END
$$;

-- 3d. The embedding queue through the coordinator: claims ----------------------------------------------------------
-- "FOR UPDATE SKIP LOCKED" over every owner's jobs is refused on a distributed table (measured: "could not run
-- distributed query with FOR UPDATE/SHARE commands"). A claim first lists the owners with ready jobs of the model
-- (one query on every shard, no lock), then claims owner by owner with the owner in the query (one shard each,
-- locked and leased there), until the batch is full. The claimed rows are read back by (owner, memory).
SELECT pg_temp.patch_many('memoriesdb.claim_model_embedding_jobs(integer, interval, text, text[])', ARRAY[
  '  m record;
BEGIN',
  '    FOR picked IN
      WITH ready AS (',
  '        SELECT s.memory_id, s.model_id FROM memoriesdb.embedding_schedule AS s
         WHERE s.model_id = m.id',
  'FROM ready WHERE s.memory_id = ready.memory_id',
  '      mids := mids || picked.model_id;
    END LOOP;',
  'JOIN memoriesdb.memories AS mem ON mem.id = j.mid',
  'SET lease_id = gen_random_uuid(),'], ARRAY[
  '  m record;
  o record;
  claim_key text := gen_random_uuid()::text;
BEGIN',
  '    FOR o IN SELECT DISTINCT r.owner_id FROM memoriesdb.embedding_schedule AS r
              WHERE r.model_id = m.id AND r.dead_at IS NULL AND r.run_after <= now() AND r.attempts < max_attempts
                AND (r.lease_until IS NULL OR r.lease_until < now()) LOOP
    EXIT WHEN cardinality(ids) >= batch_size;
    FOR picked IN
      WITH ready AS (',
  '        SELECT s.memory_id, s.model_id FROM memoriesdb.embedding_schedule AS s
         WHERE s.owner_id = o.owner_id AND s.model_id = m.id',
  'FROM ready WHERE s.owner_id = o.owner_id AND s.memory_id = ready.memory_id',
  '      mids := mids || picked.model_id;
    END LOOP;
    END LOOP;',
  'JOIN memoriesdb.memories AS mem ON mem.owner_id = s.owner_id AND mem.id = j.mid',
  -- ("functions used in UPDATE queries on distributed tables must not be VOLATILE": a random key per claim, and
  -- each job's lease id derived from it and the job)
  'SET lease_id = md5(claim_key || s.memory_id::text || s.model_id::text)::uuid,']);

-- completions: the deployed complete_embedding_jobs() is one statement over the whole batch (jobs locked FOR UPDATE,
-- data-modifying CTEs into embeddings, memories and the queue). Citus runs that only on one shard, and even with
-- the owner in every condition it failed on a worker (measured: "invalid input syntax for type uuid: "PGCOPY"",
-- an intermediate result read in the wrong format). On Citus it is the same logic as plain statements, job by
-- job, each on the job's owner's shard: find the job's owner (one read on every shard for the batch), check every
-- vector first (MDB11 for the first bad one, nothing stored), then per job lock it, store, mirror, finish or
-- re-queue. The deployed text must be the one this copy follows: a changed complete_embedding_jobs() stops the
-- deploy here (update this copy, then the digest). Digest of the text as of 7958eb7 (which changed only its plan:
-- each job found by its key; this copy already does).
SELECT CASE WHEN md5(p.prosrc) <> '995bbc6a8cf0419301895b75e27b2e5a' THEN pg_temp.run(format(
         'DO $d$ BEGIN RAISE EXCEPTION %L; END $d$',
         'db/citus/distribute.sql: the deployed complete_embedding_jobs() changed; update its Citus copy (section 3d) and the digest'))
       END
  FROM pg_proc AS p WHERE p.oid = 'memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text)'::regprocedure;

CREATE FUNCTION memoriesdb_internal.citus_embedding_typmod() RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT a.atttypmod FROM pg_catalog.pg_attribute AS a WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding');
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_embedding_typmod() IS
  'Internal (Citus): the dimension of memories.embedding, read on the node it runs on (a catalog subquery next to a shard is shipped to every node as an intermediate result, over connections as the current role).';

CREATE OR REPLACE FUNCTION memoriesdb.complete_embedding_jobs(memory_ids uuid[], lease_ids uuid[], embeddings public.vector[], model text)
RETURNS TABLE (memory_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  owners uuid[];
  dims integer[];
  o uuid;
  mid uuid;
  lid uuid;
  e public.vector;
  j_model uuid;
  j_hash bytea;
  j_leased bytea;
  mem_hash bytea;
  active boolean;
BEGIN
  IF cardinality(memory_ids) IS DISTINCT FROM cardinality(lease_ids)
     OR cardinality(memory_ids) IS DISTINCT FROM cardinality(embeddings) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids, lease_ids and embeddings must have the same length';
  END IF;
  IF model IS NULL OR btrim(model) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'model name is required';
  END IF;
  -- each job's owner and model dimension (a lease names no owner: one read on every shard, no lock)
  SELECT array_agg(x.owner_id ORDER BY x.i), array_agg(x.dimension ORDER BY x.i) INTO owners, dims
    FROM (SELECT u.i, f.owner_id, f.dimension
            FROM unnest(memory_ids, lease_ids) WITH ORDINALITY AS u(mid, lid, i)
            LEFT JOIN (SELECT s.memory_id, s.lease_id, s.owner_id, em.dimension
                         FROM memoriesdb.embedding_schedule AS s JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
                        WHERE s.memory_id = ANY (memory_ids) AND s.lease_id = ANY (lease_ids)) AS f
              ON f.memory_id = u.mid AND f.lease_id = u.lid) AS x;
  -- every vector checked first against its job's model (a job whose lease is gone: only NULL, zero and NaN)
  FOR i IN 1 .. coalesce(cardinality(memory_ids), 0) LOOP
    e := embeddings[i];
    IF e IS NULL OR (dims[i] IS NOT NULL AND public.vector_dims(e) <> dims[i])
       OR public.vector_norm(e) IN (0, 'NaN'::float8, 'Infinity'::float8) THEN
      PERFORM memoriesdb_internal.check_embedding(e, coalesce(dims[i], memoriesdb_internal.citus_embedding_typmod()));
    END IF;
  END LOOP;
  -- then job by job, on its owner's shard
  FOR i IN 1 .. coalesce(cardinality(memory_ids), 0) LOOP
    o := owners[i]; mid := memory_ids[i]; lid := lease_ids[i]; e := public.l2_normalize(embeddings[i]);
    memory_id := mid;
    j_model := NULL;
    IF o IS NOT NULL THEN
      SELECT s.model_id, s.content_hash, s.leased_hash INTO j_model, j_hash, j_leased FROM memoriesdb.embedding_schedule AS s
       WHERE s.owner_id = o AND s.memory_id = mid AND s.lease_id = lid FOR UPDATE;
    END IF;
    IF j_model IS NULL THEN
      outcome := 'lease_lost';
      RETURN NEXT;
      CONTINUE;
    END IF;
    active := (SELECT em.state = 'active' FROM memoriesdb.embedding_models AS em WHERE em.id = j_model);
    mem_hash := (SELECT m.content_hash FROM memoriesdb.memories AS m WHERE m.owner_id = o AND m.id = mid);
    IF mem_hash = j_leased THEN   -- stored only if the content is still the one that was embedded
      INSERT INTO memoriesdb.embeddings AS x (owner_id, memory_id, model_id, content_hash, embedding)
      VALUES (o, mid, j_model, j_leased, e)
      ON CONFLICT ON CONSTRAINT embeddings_pkey DO UPDATE SET content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding;
      IF active THEN   -- the active model's vector is also memories.embedding
        UPDATE memoriesdb.memories AS m
           SET embedding = e, embedding_model = complete_embedding_jobs.model, embedded_at = now(), embedded_hash = j_leased
         WHERE m.owner_id = o AND m.id = mid AND m.content_hash = j_leased;
      END IF;
    END IF;
    IF mem_hash = j_leased AND j_hash = j_leased THEN
      DELETE FROM memoriesdb.embedding_schedule AS s WHERE s.owner_id = o AND s.memory_id = mid AND s.model_id = j_model;
      outcome := 'stored';
    ELSE   -- the content changed after the claim: back to the queue for the new content
      UPDATE memoriesdb.embedding_schedule AS s
         SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL, attempts = 0, run_after = now()
       WHERE s.owner_id = o AND s.memory_id = mid AND s.model_id = j_model;
      outcome := CASE WHEN mem_hash = j_leased THEN 'stored_requeued' ELSE 'stale' END;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;

-- 3e. Search on the distributed tables ----------------------------------------------------------------------------
-- The owners whose shards hold what the caller may see: itself and the owners of its unexpired grants (by scope).
-- The index plan reads the active model's embeddings on these owners' shards only: without the owner in the query
-- every shard's HNSW index is scanned, and on a shard with none of the caller's rows the iterative scan runs on to
-- its whole budget (hnsw.max_scan_tuples) finding nothing.
CREATE FUNCTION memoriesdb_internal.citus_search_owners(f jsonb, grantors uuid[]) RETURNS uuid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();   -- the caller's own grants only
  scope text := coalesce(f->>'scope', 'all');
  owners uuid[] := CASE WHEN scope <> 'own' THEN grantors ELSE '{}' END;   -- (§3j: the caller's, read by the caller)
BEGIN
  IF uid IS NULL THEN RETURN '{}'; END IF;
  RETURN ARRAY(SELECT uid WHERE scope <> 'shared'
               UNION
               SELECT DISTINCT g.owner_id FROM memoriesdb.memory_grants AS g
                WHERE g.owner_id = ANY (owners) AND cardinality(owners) > 0
                  AND g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp()));
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_search_owners(jsonb, uuid[]) IS
  'Internal (Citus): the owners whose memories the context user may see under the filter''s scope (itself, the owners of its unexpired grants), given the context user''s grantors (citus_grantors(), read once per search by its caller, section 3s): the index plan of search() reads their shards only.';
CREATE FUNCTION memoriesdb_internal.citus_search_owners(f jsonb) RETURNS uuid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- the grantors read here, for the callers that have not read them (section 3s)
  RETURN memoriesdb_internal.citus_search_owners(f, CASE WHEN coalesce(f->>'scope', 'all') <> 'own'
                                                          THEN memoriesdb_internal.citus_grantors(memoriesdb.current_user_id())
                                                          ELSE '{}' END);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_search_owners(jsonb) IS
  'Internal (Citus): citus_search_owners(f, grantors) with the context user''s grantors read here: the owners whose memories the context user may see under the filter''s scope.';

-- The coordinator's shell tables have no statistics (pg_class.reltuples 0, pg_stats empty): the plan's "share of
-- the table" would always be 1. On Citus what an index scan must read past is the rows of the shards it scans (the
-- callers' owners' shards), measured here per shard by memoriesdb.citus_refresh_search_statistics() (the shards'
-- own reltuples, kept by their autovacuum). Until it has run, the caller's own count stands for the table (the
-- single node's "statistics older than the caller's rows" rule): the index plan is then considered by count alone,
-- and an index scan that finds fewer than k falls back to the exact plan.
CREATE TABLE memoriesdb_internal.citus_shard_rows (
  shardid bigint PRIMARY KEY,
  row_estimate double precision NOT NULL,
  measured_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memoriesdb_internal.citus_shard_rows IS
  'Internal (Citus, on the coordinator): rows per shard of memoriesdb.memories (the shard''s reltuples), written by citus_refresh_search_statistics(); search()''s plan reads it.';
ALTER TABLE memoriesdb_internal.citus_shard_rows OWNER TO memoriesdb_owner;
GRANT SELECT ON memoriesdb_internal.citus_shard_rows TO memoriesdb_reader;

CREATE FUNCTION memoriesdb.citus_refresh_search_statistics() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM memoriesdb_internal.citus_shard_rows;
  INSERT INTO memoriesdb_internal.citus_shard_rows (shardid, row_estimate)
  SELECT r.shardid, greatest(r.result::double precision, 0)
    FROM pg_catalog.run_command_on_shards('memoriesdb.memories', $c$SELECT reltuples FROM pg_class WHERE oid = '%s'::regclass$c$) AS r
   WHERE r.success;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION memoriesdb.citus_refresh_search_statistics() IS
  'Citus: measures the rows of every shard of memories (its reltuples on the worker) for search()''s plan choice; returns the number of shards measured. Run after a bulk load or a rebalance, and periodically (about 0.3 s for 32 shards).';
REVOKE ALL ON FUNCTION memoriesdb.citus_refresh_search_statistics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb.citus_refresh_search_statistics() TO memoriesdb_worker;

-- the rows of the shards that hold the owners' memories (0 when not measured: the plan then counts the caller's)
CREATE FUNCTION memoriesdb_internal.citus_search_total(owners uuid[]) RETURNS double precision
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN coalesce((SELECT sum(s.row_estimate) FROM memoriesdb_internal.citus_shard_rows AS s
                    WHERE s.shardid IN (SELECT DISTINCT pg_catalog.get_shard_id_for_distribution_column('memoriesdb.memories', o)
                                          FROM unnest(owners) AS o)), 0);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_search_total(uuid[]) IS
  'Internal (Citus): how many rows the shards holding these owners'' memories have (citus_shard_rows; 0 when not measured).';

-- (measured only for a caller past search_exact_max: the owners of its grants are a query on every shard, and a
-- smaller caller's plan is exact whatever the table's size)
SELECT pg_temp.patch_many('memoriesdb_internal.choose_search_plan(jsonb, uuid, uuid[], integer)',
  ARRAY[$x$(SELECT greatest(c.reltuples, 0)::double precision FROM pg_catalog.pg_class AS c
                              WHERE c.oid = 'memoriesdb.memories'::regclass)$x$,
        $x$  IF visible > exact_max THEN
$x$],
  ARRAY['0',
        $x$  IF visible > exact_max THEN
    total := memoriesdb_internal.citus_search_total(memoriesdb_internal.citus_search_owners(f));
$x$]);
-- the index plan: embeddings joined with memories on the owner too (else "the query contains a join that requires
-- repartitioning", measured by bench/citus.py), on the owners' shards only; each shard's index returns its nearest
-- and the coordinator merges them (the order is by distance only). Joined with or without a filter (on a single node a
-- search with no filter reads embeddings alone, under their policy: here that policy's correlated subquery on the
-- memory id would not be pushed down)
SELECT pg_temp.patch_many('memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)',
  ARRAY['JOIN memoriesdb.memories AS m ON m.id = e.memory_id',
        'WHERE e.model_id = %2$L::uuid %4$s',
        $x$CASE WHEN f <> '{}' OR linked IS NOT NULL THEN$x$,
        'USING q, f, uid, linked, k;'],
  ARRAY['JOIN memoriesdb.memories AS m ON m.owner_id = e.owner_id AND m.id = e.memory_id',
        'WHERE e.model_id = %2$L::uuid AND e.owner_id = ANY ($6) %4$s',
        'CASE WHEN true THEN',
        'USING q, f, uid, linked, k, memoriesdb_internal.citus_search_owners(f);']);

-- the exact plan: the caller's own rows and its grants' each ranked where they are (the owner's shard; the grantors'
-- shards), k of each, merged here (the single node's exact_ranking() has the same shape since, its grants joined on
-- the id alone: not called here). As first deployed (one ORDER BY over visible_memories()' UNION ALL) Citus pulled every
-- visible row with its vector to the coordinator to sort them: measured, 95 ms of the coordinator's CPU per search
-- of a 3000-memory tenant.
-- (The single node's two calls of exact_ranking(), with and without the dates, become this one query.) Each row's
-- distance computed once, as exact_ranking() does: the sort key is the branch's distance column, min_similarity
-- tested past the LIMIT (written as ORDER BY the distance, a select list of its negation and a min_similarity test
-- in WHERE, it was computed two or three times a row).
SELECT pg_temp.patch('memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)',
  $x$  IF f_after IS NULL AND f_before IS NULL THEN
    RETURN QUERY SELECT * FROM memoriesdb_internal.exact_ranking(q, k, uid, f_meta, f_scope, NULL, NULL, linked, min_similarity);
  ELSE
    RETURN QUERY SELECT * FROM memoriesdb_internal.exact_ranking(q, k, uid, f_meta, f_scope, f_after, f_before, linked, min_similarity);
  END IF;$x$,
  $x$  RETURN QUERY
    SELECT x.id, (-x.distance)::real, x.content, x.metadata, x.owner_id, x.created_by, x.created_at FROM (
      (SELECT m.id, (m.embedding OPERATOR(public.<#>) q) + 0 AS distance, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
         FROM memoriesdb.memories AS m
        WHERE m.owner_id = uid AND m.embedding IS NOT NULL
          AND memoriesdb_internal.matches_filter(ROW(m.*)::memoriesdb.memories, f, uid, linked)
        ORDER BY 2
        LIMIT k)
      UNION ALL
      (SELECT m.id, (m.embedding OPERATOR(public.<#>) q) + 0 AS distance, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
         FROM memoriesdb.memory_grants AS g JOIN memoriesdb.memories AS m ON m.owner_id = g.owner_id AND m.id = g.memory_id
        WHERE g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp()) AND m.embedding IS NOT NULL
          AND memoriesdb_internal.matches_filter(ROW(m.*)::memoriesdb.memories, f, uid, linked)
        ORDER BY 2
        LIMIT k)) AS x
     WHERE min_similarity IS NULL OR -x.distance >= min_similarity   -- the rows that pass are a prefix of the nearest
     ORDER BY x.distance
     LIMIT k;$x$);

-- full text: the grants' memories joined on the owner too (as visible_memories())
SELECT pg_temp.patch('memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean)',
  'JOIN memoriesdb.memories AS m ON m.id = g.memory_id', 'JOIN memoriesdb.memories AS m ON m.owner_id = g.owner_id AND m.id = g.memory_id');
-- a whole row of a table pushed down to a shard has the shard's row type (memories_102028), which matches_filter()
-- (now filter_holds()) does not take (measured: "function matches_filter(memoriesdb.memories_102028, ...) does not
-- exist"): the row's columns, as a memories row
SELECT pg_temp.patch('memoriesdb_internal.fulltext_ranking(tsquery, text[], bigint, integer, jsonb, uuid[], boolean)',
  'memoriesdb_internal.filter_holds(m, f_meta,', 'memoriesdb_internal.filter_holds(ROW(m.*)::memoriesdb.memories, f_meta,');

-- a correlated subquery over memories from a list (the hits without BM25) is refused ("correlated subqueries are not
-- supported when the FROM clause contains a set returning function"): the same lookup as a function, run as the
-- caller (the policies decide), once per such hit
CREATE FUNCTION memoriesdb_internal.citus_word_similarity(query text, memory_id uuid) RETURNS real
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT public.word_similarity(query, coalesce(m.content_trgm, m.content)) FROM memoriesdb.memories AS m
           WHERE m.id = citus_word_similarity.memory_id);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_word_similarity(text, uuid) IS
  'Internal (Citus): the word similarity of query to a memory''s window, under the caller''s row-level security (NULL when it cannot see it): text_ranking()''s lookup for a full-text match without BM25.';
SELECT pg_temp.patch('memoriesdb_internal.text_ranking(text, integer, jsonb)',
  $x$(SELECT public.word_similarity(query, coalesce(m.content_trgm, m.content))
                                        FROM memoriesdb.memories AS m WHERE m.id = h.id)$x$,
  'memoriesdb_internal.citus_word_similarity(query, h.id)');

-- 3f. Backends vouch through a function --------------------------------------------------------------------------
-- A memoriesdb_backend login is believed on the single node because session_user is a backend. On a worker
-- session_user is the role Citus connected as, and a set_config() context is not propagated: a backend's context
-- would be believed on the coordinator and be nobody on the shards (reads empty, writes half-done). On Citus a
-- backend calls memoriesdb.vouch(user_id) instead: it SET LOCALs the uuid, the vouching login and a proof minted
-- for both (the key's HMAC over [uuid, login, login], as authenticate() mints one over [uuid, login, null]), which every
-- node checks; a bare uuid is nobody for every login, backends included (fail closed on every node), and a
-- vouching login changed after vouch() breaks the proof.
CREATE OR REPLACE FUNCTION memoriesdb.current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  -- (Citus) one expression, inlined; the proof covers the login, and the vouching login when there is one, as a JSON
  -- array [user, login, vouched_by]: unambiguous (red team: with a plain "user|login|L|vouched|L" a backend moved the
  -- vouching into its login, "BE|vouched|BE", and wrote rows vouched by nobody)
  SELECT CASE
    WHEN pg_catalog.current_setting('app.current_user', true) IS NULL
      OR pg_catalog.current_setting('app.current_user', true) OPERATOR(pg_catalog.!~)
         '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' THEN NULL
    WHEN memoriesdb.context_proven(pg_catalog.jsonb_build_array(pg_catalog.current_setting('app.current_user', true),
                                       pg_catalog.current_setting('app.current_login', true),
                                       NULLIF(pg_catalog.current_setting('app.current_user_vouched_by', true), ''))::text,
                                   pg_catalog.current_setting('app.current_user_proof', true))
      THEN pg_catalog.current_setting('app.current_user', true)::pg_catalog.uuid
  END
$$;
CREATE OR REPLACE FUNCTION memoriesdb_internal.context_vouched_by() RETURNS name
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  -- (Citus) the login vouch() named, covered by the proof current_user_id() checked
  SELECT CASE WHEN memoriesdb.current_user_id() IS NULL THEN NULL
              ELSE NULLIF(pg_catalog.current_setting('app.current_user_vouched_by', true), '')::name END
$$;
-- the login of the client the context was proven for (authenticate(), vouch() set it, the proof covers it); without
-- a context, session_user (on a worker: the role Citus connected as)
CREATE FUNCTION memoriesdb_internal.context_login() RETURNS name
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  SELECT CASE WHEN memoriesdb.current_user_id() IS NULL THEN SESSION_USER
              ELSE COALESCE(NULLIF(pg_catalog.current_setting('app.current_login', true), '')::name, SESSION_USER) END
$$;
COMMENT ON FUNCTION memoriesdb_internal.context_login() IS
  'Internal (Citus): the client login the context was proven for (app.current_login, covered by the proof), else session_user: the login audit rows record, also on the workers.';
-- (into a variable first: Citus evaluates the functions of an INSERT's VALUES into a distributed table itself, each
-- call on its own, past a CASE's guard: measured, "invalid input syntax for type uuid" from current_user_id()'s
-- cast of an empty context)
SELECT pg_temp.patch_many('memoriesdb_internal.audit_row()',
  ARRAY['TG_OP, o, n, session_user, vouched,',
        $x$  IF actor IS NOT NULL AND pg_has_role(session_user, 'memoriesdb_backend', 'MEMBER')
     AND NOT memoriesdb.context_proven(current_setting('app.current_user', true), current_setting('app.current_user_proof', true)) THEN
    vouched := session_user;
  END IF;$x$,
        E'  vouched name;\n'],
  ARRAY['TG_OP, o, n, login, vouched,',
        $x$  vouched := memoriesdb_internal.context_vouched_by();   -- (Citus: the login vouch() named, proven)
  login := memoriesdb_internal.context_login();$x$,
        E'  vouched name;\n  login name;\n']);

CREATE FUNCTION memoriesdb.vouch(user_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  login text := session_user;
BEGIN
  IF NOT pg_has_role(session_user, 'memoriesdb_backend', 'MEMBER') THEN
    RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only a memoriesdb_backend login vouches for a user',
      HINT = 'an app login proves its user with memoriesdb.authenticate(api_key)';
  END IF;
  -- (a read of a reference table: it also assigns the distributed transaction id the proof binds)
  IF vouch.user_id IS NULL OR NOT EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = vouch.user_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB02', MESSAGE = 'unknown user', DETAIL = format('no user %s', vouch.user_id);
  END IF;
  EXECUTE format('SET LOCAL app."current_user" = %L', vouch.user_id);
  EXECUTE format('SET LOCAL app.current_login = %L', login);
  EXECUTE format('SET LOCAL app.current_user_vouched_by = %L', login);
  EXECUTE format('SET LOCAL app.current_user_proof = %L',
                 (SELECT memoriesdb_internal.context_proof(jsonb_build_array(vouch.user_id::text, login, login)::text, ck.ipad, ck.opad)
                    FROM memoriesdb_internal.context_key AS ck));
  RETURN vouch.user_id;
END
$$;
COMMENT ON FUNCTION memoriesdb.vouch(uuid) IS
  'Citus: a memoriesdb_backend login acts as user_id for the rest of this transaction, on every node (what set_config(''app.current_user'', ..., true) does on a single node); audit rows and access log entries record the login as vouched_by. 42501 for any other login, MDB02 for an unknown user.';
ALTER FUNCTION memoriesdb.vouch(uuid) OWNER TO memoriesdb_owner;
REVOKE ALL ON FUNCTION memoriesdb.vouch(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb.vouch(uuid) TO memoriesdb_backend;

-- 3g. The graph ------------------------------------------------------------------------------------------------
-- run_vindexing(): the queue drained on every shard (a data-modifying CTE over a distributed table runs on one shard)
SELECT pg_temp.patch('memoriesdb.run_vindexing(text)',
  'WITH drained AS (DELETE FROM memoriesdb.vindexing_schedule RETURNING 1) SELECT count(*)::integer INTO n FROM drained;',
  'DELETE FROM memoriesdb.vindexing_schedule;
  GET DIAGNOSTICS n = ROW_COUNT;');
-- visible_to(): the grant joined on the owner too
SELECT pg_temp.patch('memoriesdb_internal.visible_to(uuid, uuid)', 'WHERE g.memory_id = m.id AND', 'WHERE g.owner_id = m.owner_id AND g.memory_id = m.id AND');
-- unlink(): the edge locked on its owner's shard (FOR UPDATE must name one shard), found by id first
CREATE FUNCTION memoriesdb_internal.citus_edge_owner(edge_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT e.owner_id FROM memoriesdb.memory_edges AS e WHERE e.id = citus_edge_owner.edge_id);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_edge_owner(uuid) IS
  'Internal (Citus): the owner (distribution value) of an edge, found on whichever shard holds it (NULL when none): unlink() locks the edge by (owner, id), on one shard; neighbors() and path() ask whether an edge still exists.';
SELECT pg_temp.patch_many('memoriesdb.unlink(uuid)',
  ARRAY['SELECT * INTO e FROM memoriesdb.memory_edges AS x WHERE x.id = edge_id FOR UPDATE;',
        'DELETE FROM memoriesdb.memory_edges AS x WHERE x.id = e.id;'],
  ARRAY[$x$EXECUTE format('SELECT * FROM memoriesdb.memory_edges AS x WHERE x.owner_id = %L AND x.id = %L FOR UPDATE',
                 memoriesdb_internal.citus_edge_owner(edge_id), edge_id) INTO e;$x$,
        'DELETE FROM memoriesdb.memory_edges AS x WHERE x.owner_id = e.owner_id AND x.id = e.id;']);

-- neighbors(), path(): a recursive CTE may not read a distributed table (Citus: "recursive CTEs are only supported
-- when they contain a filter on the distribution column"); the walk reads the coordinator's memory_graph, and the
-- live edge's existence is asked of the shards by a function (unlink()'s owner lookup, above), once per step
SELECT count(pg_temp.patch(f::regprocedure, 'EXISTS (SELECT 1 FROM memoriesdb.memory_edges AS e WHERE e.id = g.edge_id)',
                           'memoriesdb_internal.citus_edge_owner(g.edge_id) IS NOT NULL'))
  FROM unnest(ARRAY['memoriesdb.neighbors(uuid, integer, text[], text)', 'memoriesdb.path(uuid, uuid, integer)']) AS f;

-- revoke_api_key(): Citus refuses now() inside COALESCE in an UPDATE of a reference table ("non-IMMUTABLE functions
-- are not allowed in CASE or COALESCE statements"; red team: no key could be revoked on Citus): the same, as a
-- condition (a key revoked earlier keeps its time)
SELECT pg_temp.patch('memoriesdb.revoke_api_key(uuid)',
  $x$  UPDATE memoriesdb.api_keys AS a SET revoked_at = coalesce(a.revoked_at, now())
   WHERE a.id = revoke_api_key.key_id AND a.user_id = uid;$x$,
  $x$  UPDATE memoriesdb.api_keys AS a SET revoked_at = now()
   WHERE a.id = revoke_api_key.key_id AND a.user_id = uid AND a.revoked_at IS NULL;
  PERFORM 1 FROM memoriesdb.api_keys AS a WHERE a.id = revoke_api_key.key_id AND a.user_id = uid;$x$);
SELECT pg_temp.patch('memoriesdb.revoke_api_key(text)',
  'UPDATE memoriesdb.api_keys AS a SET revoked_at = coalesce(a.revoked_at, now()) WHERE a.id = k.id;',
  'UPDATE memoriesdb.api_keys AS a SET revoked_at = now() WHERE a.id = k.id AND a.revoked_at IS NULL;');

-- 3i. The memory directory: a memory found by id on one shard ---------------------------------------------------
-- A call that names a memory by id only (recall, verify, provenance; and every lock by id — forget, share,
-- transfer, revise — through citus_owner_of()) asked every shard (32 here) for it: a multi-shard query per call, one
-- round trip to every worker (docs/citus.md §5; the sizing model: the coordinator's work per call caps the cluster).
-- memory_locations (memory id -> owner) is distributed by slot = citus_memory_slot(id), a keyed hash of the id (HMAC
-- under memory_directory_key, which only the owner role reads), colocated with memories. A lookup by id is two router
-- queries: the directory on the slot's shard, then the owner's shard.
-- Why keyed: the directory was distributed by the id itself, and remember() drew the id until it hashed into its
-- owner's shard range, so that the directory row shared the memory's shard. Every id then told its creator's shard
-- (Citus's hash of a uuid is public: 5 bits of 32 shards) to whoever saw it — a grantee, a transfer's receiver —
-- where a single node's id says nothing (red team, 15-redteam-directory.sql); and the draw assumed few shards (512
-- draws missed the range 2% of the time at 128 shards, always for a tenant isolated on a shard of its own).
-- Why the id is still drawn (citus_new_memory_id()), now by its keyed hash: with plain gen_random_uuid() ids the
-- directory row lands on another worker than the memory's for (workers - 1) in workers of the memories, and
-- remember() then commits on two workers (two-phase commit). Measured (2 workers, 2 cores shared): those remember()
-- calls +3 ms at the median (17 -> 20 ms, 1,500 calls), every remember() +2 to +15% against the draw onto the
-- owner's shard. So remember() draws random (version 4) ids until the slot's shard is on the owner's worker (1 draw in
-- workers fits: 2 here, whatever the number of shards, a tenant isolated on a shard of its own too); the memory and
-- its directory row then commit on one worker, as before. What an id tells: to anyone without the key, nothing — the
-- slot is HMAC-SHA-256 of it, a pseudo-random function, so the ids drawn are indistinguishable from gen_random_uuid()'s
-- and the public hash of an id (its shard, its worker) is independent of its owner's; with the key, the worker the
-- owner was on when it was made, which the key's reader (the owner role) reads in the directory anyway.
-- The key must never change: every slot is a function of it (a new key means every directory row written again).
CREATE TABLE memoriesdb_internal.memory_directory_key (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  key        bytea NOT NULL CHECK (octet_length(key) = 32),
  ipad       bytea NOT NULL CHECK (octet_length(ipad) = 64),
  opad       bytea NOT NULL CHECK (octet_length(opad) = 64),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memoriesdb_internal.memory_directory_key IS
  'Private (Citus): the key of the memory directory''s slots, citus_memory_slot(id) = HMAC-SHA-256(key, id) (ipad/opad: the key XOR 0x36/0x5c, zero-padded to 64 bytes, as context_key). Readable by the owner only; never audited. Never to be replaced: every memory_locations row is placed by it (a new key means every row written again, under its new slot).';
ALTER TABLE memoriesdb_internal.memory_directory_key OWNER TO memoriesdb_owner;
ALTER TABLE memoriesdb_internal.memory_directory_key ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_directory_key_owner ON memoriesdb_internal.memory_directory_key TO memoriesdb_owner USING (true) WITH CHECK (true);
REVOKE ALL ON memoriesdb_internal.memory_directory_key FROM PUBLIC;
INSERT INTO memoriesdb_internal.memory_directory_key (key, ipad, opad)
SELECT k, i, o FROM (SELECT public.gen_random_bytes(32) AS k) AS g
 CROSS JOIN LATERAL (
   SELECT string_agg(decode(lpad(to_hex(coalesce(CASE WHEN n < 32 THEN get_byte(g.k, n) END, 0) # 54), 2, '0'), 'hex'), ''::bytea ORDER BY n) AS i,
          string_agg(decode(lpad(to_hex(coalesce(CASE WHEN n < 32 THEN get_byte(g.k, n) END, 0) # 92), 2, '0'), 'hex'), ''::bytea ORDER BY n) AS o
     FROM generate_series(0, 63) AS n) AS pads;

-- The slot: the first 16 bytes of HMAC-SHA-256(key, the id's 16 bytes), as a uuid (the type of memories' distribution
-- column, so that the directory is colocated with memories: its shards move and split with theirs, and remember() can
-- tell whether a slot's shard is on the memory's worker). The
-- built-in sha256() over the pads: a few microseconds (pgcrypto's hmac() looks the digest up at each call). Here it
-- reads the key table, a plain table still; once it is a reference table (section 4), from the placement every node
-- holds (section 4h: no Citus planning per call).
CREATE FUNCTION memoriesdb_internal.citus_memory_slot(memory_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT encode(substr(sha256(k.opad || sha256(k.ipad || uuid_send(memory_id))), 1, 16), 'hex')::uuid
            FROM memoriesdb_internal.memory_directory_key AS k);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_memory_slot(uuid) IS
  'Internal (Citus): the memory directory''s slot of a memory id (memory_locations'' distribution column): the first 16 bytes of HMAC-SHA-256 under memory_directory_key, as a uuid. Callable by the owner role only (it reads the key): no client can tell from an id where its directory row, or anything of its owner, lives.';

-- A new memory's id: random (version 4) ids drawn until the slot's shard is placed on the worker of the owner's shard
-- (Citus colocates them: the same shard index of memory_locations and memories is on one node). 1 draw in W fits
-- with W workers holding equal parts of the hash space; 1024 draws all miss with probability (1 - 1/W)^1024: under
-- 1e-7 up to 64 workers, 3e-4 at 128. A miss, or a worker holding almost none of the hash space (a tenant isolated
-- on a node of its own), is still correct: the directory row then lives on another worker and remember() commits in
-- two phases. The draw stops at the first fit (2 slots on average with 2 workers, 35 µs each with their shard and
-- placement): 0.11-0.15 ms a call, the old draw into the owner's range 0.22 ms at the same moment.
CREATE FUNCTION memoriesdb_internal.citus_new_memory_id(owner_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g integer;
  s bigint;
  id uuid;
BEGIN
  IF owner_id IS NOT NULL THEN
    -- (values first, each lookup by index: a function call in a WHERE clause over pg_dist_placement is evaluated per
    -- row, 20 ms a draw; reading the worker's shards as a set, 0.15 ms)
    s := get_shard_id_for_distribution_column('memoriesdb.memories', owner_id);
    g := (SELECT p.groupid FROM pg_dist_placement AS p WHERE p.shardid = s);
    -- (a loop, not a query over generate_series(1, 1024): that materializes its 1024 rows first, 0.2 ms a call)
    FOR i IN 1 .. 1024 LOOP
      id := gen_random_uuid();
      s := get_shard_id_for_distribution_column('memoriesdb_internal.memory_locations', memoriesdb_internal.citus_memory_slot(id));
      IF EXISTS (SELECT 1 FROM pg_dist_placement AS p WHERE p.shardid = s AND p.groupid = g) THEN
        RETURN id;
      END IF;
    END LOOP;
  END IF;
  RETURN gen_random_uuid();   -- (anywhere else is correct too: the directory row then lives elsewhere)
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_new_memory_id(uuid) IS
  'Internal (Citus): a random (version 4) uuid for a new memory of owner_id whose directory slot (citus_memory_slot(), a keyed hash) is on the worker of the owner''s shard, so that remember() commits on one worker; to anyone without the directory''s key the ids are indistinguishable from gen_random_uuid()''s (gen_random_uuid() itself when owner_id is NULL or no draw fits).';

CREATE TABLE memoriesdb_internal.memory_locations (
  slot      uuid NOT NULL,
  memory_id uuid NOT NULL,
  owner_id  uuid NOT NULL,
  PRIMARY KEY (slot, memory_id)   -- (slot is a function of memory_id: one row per id)
);
COMMENT ON TABLE memoriesdb_internal.memory_locations IS
  'Internal (Citus): the owner (shard) of every memory, by id: written by remember(), forget() and transfer() in their transaction, read by citus_owner_of(); distributed by slot = citus_memory_slot(memory_id), a keyed hash of the id, colocated with memories. Readable by the owner role only.';
ALTER TABLE memoriesdb_internal.memory_locations OWNER TO memoriesdb_owner;
ALTER TABLE memoriesdb_internal.memory_locations ENABLE ROW LEVEL SECURITY;   -- no policy: the owner role only
REVOKE ALL ON memoriesdb_internal.memory_locations FROM PUBLIC;
-- the memories that exist already (a migrated ledger's: scripts/citus.sh migrate checks them after)
INSERT INTO memoriesdb_internal.memory_locations (slot, memory_id, owner_id)
SELECT memoriesdb_internal.citus_memory_slot(m.id), m.id, m.owner_id FROM memoriesdb.memories AS m;

CREATE OR REPLACE FUNCTION memoriesdb_internal.citus_owner_of(memory_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s uuid := memoriesdb_internal.citus_memory_slot(citus_owner_of.memory_id);   -- (a value: Citus prunes on values only)
BEGIN
  -- an unknown id names its slot: the caller then asks the shard that value hashes to (the directory row's shard
  -- index: the worker just asked) and finds nothing, the same one query a hidden memory's owner's shard answers, on
  -- the same worker too (remember() drew the id so that its slot is on its owner's worker). No timing says whether
  -- the id exists. (Named itself, an unknown id sent the caller to the shard its id hashes to, on the other worker
  -- for half of them: a second worker in the transaction, measured 32 vs 24 ms at the median, 80 calls each, a
  -- machine loaded to 6; the fan-out the directory replaced asked every shard either way.)
  RETURN coalesce((SELECT l.owner_id FROM memoriesdb_internal.memory_locations AS l
                    WHERE l.slot = s AND l.memory_id = citus_owner_of.memory_id),
                  s);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_owner_of(uuid) IS
  'Internal (Citus): the owner of a memory, from the memory directory (memory_locations: the shard of the id''s slot), or the slot itself when none (a shard on the same worker is asked and finds nothing, as for a memory the caller may not see): the API then reads or locks the memory by (owner, id), on one shard.';

-- Every lock of a memory by id takes its directory row first (FOR UPDATE, on the slot's shard), then the memory on the
-- owner's shard it names. A call that found the owner without a lock and then waited for the memory's lock while a
-- transfer moved it locked nothing when the lock came (the row had left that shard), went on with no memory and failed
-- where the single node, re-reading the moved row, succeeds (measured: a revise() by the receiver, or by a grantee with
-- write, waiting on a transfer: 23502 "null value in column memory_id of relation memory_revisions", the single node
-- returns revision 2; red team, 15-redteam-directory.sql). transfer() and forget() change the directory row under the
-- same lock, so the waiting call reads the row as they left it: the new owner, or no row (the memory is gone).
CREATE FUNCTION memoriesdb_internal.citus_lock_owner_of(memory_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o uuid;
  s uuid := memoriesdb_internal.citus_memory_slot(citus_lock_owner_of.memory_id);
BEGIN
  SELECT l.owner_id INTO o FROM memoriesdb_internal.memory_locations AS l
   WHERE l.slot = s AND l.memory_id = citus_lock_owner_of.memory_id FOR UPDATE;
  o := coalesce(o, s);   -- (as citus_owner_of(): an unknown id names its slot)
  -- A transfer commits on its two workers one after the other (two-phase commit, no global snapshot): a call that
  -- waited for the directory row can read it, naming the receiver, a moment before the receiver's worker shows the
  -- memory (measured: 1 race in 4 refused MDB03). Wait for it, 1 s at most; the same query for an unknown id, so that
  -- the time says nothing.
  FOR i IN 1 .. 100 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM memoriesdb.memories AS m WHERE m.owner_id = o AND m.id = citus_lock_owner_of.memory_id);
    EXIT WHEN o = s;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN o;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_lock_owner_of(uuid) IS
  'Internal (Citus): citus_owner_of() with the memory''s directory row locked (FOR UPDATE), so that no transfer or forget changes it until the caller''s transaction ends: the API then locks the memory on that owner''s shard. Called by the API functions that lock a memory by id (as the ledger owner).';
ALTER FUNCTION memoriesdb_internal.citus_lock_owner_of(uuid) OWNER TO memoriesdb_owner;
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_lock_owner_of(uuid) FROM PUBLIC;
SELECT pg_temp.patch(f::regprocedure, $x$FOR UPDATE', memoriesdb_internal.citus_owner_of($x$,
                     $x$FOR UPDATE', memoriesdb_internal.citus_lock_owner_of($x$)
  FROM unnest(ARRAY['memoriesdb.forget(uuid)', 'memoriesdb.share(uuid, uuid, text, timestamptz)', 'memoriesdb.transfer(uuid, uuid, text)',
                    'memoriesdb.revise(uuid, text, jsonb)']) AS f;

SELECT pg_temp.patch_many('memoriesdb.remember(text, jsonb)',
  ARRAY['  new_id uuid := gen_random_uuid();',
        '  VALUES (new_id, uid, content, metadata, h);'],
  ARRAY['  new_id uuid := memoriesdb_internal.citus_new_memory_id(uid);   -- (Citus §3i: its directory row on the memory''s worker)',
        '  VALUES (new_id, uid, content, metadata, h);
  INSERT INTO memoriesdb_internal.memory_locations (slot, memory_id, owner_id)   -- (Citus §3i)
  VALUES (memoriesdb_internal.citus_memory_slot(new_id), new_id, uid);']);
SELECT pg_temp.patch('memoriesdb.forget(uuid)', '  -- (Citus: no foreign keys across owners'' shards: docs/citus.md)',
  $x$  EXECUTE 'DELETE FROM memoriesdb_internal.memory_locations AS l WHERE l.slot = $1 AND l.memory_id = $2'   -- (Citus §3i)
    USING memoriesdb_internal.citus_memory_slot(forget.memory_id), forget.memory_id;
  -- (Citus: no foreign keys across owners'' shards: docs/citus.md)$x$);
SELECT pg_temp.patch('memoriesdb_internal.effect_transfer(uuid, uuid, uuid, uuid, text)',
  $x$  EXECUTE 'DELETE FROM memoriesdb.memories AS r WHERE r.owner_id = $1 AND r.id = $2' USING f, m;$x$,
  $x$  EXECUTE 'DELETE FROM memoriesdb.memories AS r WHERE r.owner_id = $1 AND r.id = $2' USING f, m;
  EXECUTE 'UPDATE memoriesdb_internal.memory_locations AS l SET owner_id = $3 WHERE l.slot = $1 AND l.memory_id = $2'   -- (§3i)
    USING memoriesdb_internal.citus_memory_slot(m), m, t;$x$);
-- the reads by id: the owner from the directory first, then one shard (a variable: Citus prunes on values only).
-- Whether the caller may see it is decided before the read, on the coordinator (the owner, or a grant on the owner's
-- shard): a memory the caller may not see is never read. Read as the caller, another tenant's memory was found on its
-- shard and refused there by the policy, whose grant check is a nested distributed query on the worker: a recall of a
-- hidden id took 1 ms longer than of an unknown id (medians 5.4 vs 4.4 ms, 300 calls each, one call told them apart
-- 8 times in 10; red team, 15-redteam-directory.sql). Now both ask the directory and the grants of one shard, on one
-- worker (an unknown id names its slot: citus_owner_of()), and neither reads a memory.
SELECT pg_temp.patch_many(f::regprocedure,
  ARRAY[format('  log_ids uuid[] := ARRAY[%s.memory_id];', n), format('FROM memoriesdb.memories AS m WHERE m.id = %s.memory_id', n)],
  ARRAY[format(E'  log_ids uuid[] := ARRAY[%s.memory_id];\n  citus_owner uuid := memoriesdb_internal.citus_owner_of(%s.memory_id);   -- (Citus §3i)'
               || E'\n  citus_visible boolean := citus_owner = memoriesdb.current_user_id()\n'
               || E'                            OR memoriesdb_internal.citus_granted(citus_owner, %s.memory_id);   -- (Citus §3i)', n, n, n),
        format('FROM memoriesdb.memories AS m WHERE citus_visible AND m.owner_id = citus_owner AND m.id = %s.memory_id', n)])
  FROM (VALUES ('memoriesdb.recall(uuid)', 'recall'), ('memoriesdb.verify(uuid)', 'verify'),
               ('memoriesdb.provenance(uuid)', 'provenance')) AS x(f, n);
SELECT pg_temp.patch('memoriesdb.provenance(uuid)', 'FROM memoriesdb.memory_revisions AS r WHERE r.memory_id = provenance.memory_id',
  'FROM memoriesdb.memory_revisions AS r WHERE r.owner_id = owner AND r.memory_id = provenance.memory_id');

-- 3j. The grants a user received, by grantee ----------------------------------------------------------------------
-- Grants live on their owner's shard; "the grants I received" (every search: how much the caller may see, the
-- owners whose shards to search, the exact plan's shared rows) asked all 32 shards, twice per search (measured with
-- citus.log_remote_commands: 2 multi-shard queries of a small tenant's search). memoriesdb_internal.grantors lists,
-- on the grantee's shard, the owners that granted it something: written with every grant (share(),
-- accept_offer(): effect_share(); transfer(): the grants the new owner takes over), read with one router query, so a
-- search asks only those owners' shards — none for a caller with no grants. A superset: an unshare, an expiry or a
-- forget leaves the pair (the owner's shard then answers nothing); never a subset.
CREATE TABLE memoriesdb_internal.grantors (
  grantee_id uuid NOT NULL,
  owner_id   uuid NOT NULL,
  PRIMARY KEY (grantee_id, owner_id)
);
COMMENT ON TABLE memoriesdb_internal.grantors IS
  'Internal (Citus): (grantee, owner) for every owner that granted the grantee a memory (a superset: kept after an unshare, an expiry or a forget); distributed by grantee_id, colocated with memories. Searches read the grantee''s row to ask only those owners'' shards for its grants. Readable by the owner role only.';
ALTER TABLE memoriesdb_internal.grantors OWNER TO memoriesdb_owner;
ALTER TABLE memoriesdb_internal.grantors ENABLE ROW LEVEL SECURITY;   -- no policy: the owner role only
REVOKE ALL ON memoriesdb_internal.grantors FROM PUBLIC;
INSERT INTO memoriesdb_internal.grantors (grantee_id, owner_id)
SELECT DISTINCT g.grantee_id, g.owner_id FROM memoriesdb.memory_grants AS g;

CREATE FUNCTION memoriesdb_internal.citus_grantors(grantee uuid) RETURNS uuid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN ARRAY(SELECT g.owner_id FROM memoriesdb_internal.grantors AS g WHERE g.grantee_id = citus_grantors.grantee);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_grantors(uuid) IS
  'Internal (Citus): the owners that may have granted grantee a memory (memoriesdb_internal.grantors: one shard); the search functions ask only their shards for grantee''s grants (empty: none).';
-- (owned by the owner role, as the directory is: a definer function of another role, postgres, opened a connection
-- of its own to the worker in every call, measured with citus.log_remote_commands)
ALTER FUNCTION memoriesdb_internal.citus_grantors(uuid) OWNER TO memoriesdb_owner;
ALTER FUNCTION memoriesdb_internal.citus_owner_of(uuid) OWNER TO memoriesdb_owner;

SELECT pg_temp.patch('memoriesdb_internal.effect_share(uuid, uuid, uuid, uuid, text, timestamptz)',
  '  RETURNING g.id INTO gid;',
  '  RETURNING g.id INTO gid;
  INSERT INTO memoriesdb_internal.grantors (grantee_id, owner_id) VALUES (effect_share.grantee, effect_share.owner_id)
  ON CONFLICT DO NOTHING;   -- (Citus §3j)');
SELECT pg_temp.patch('memoriesdb_internal.effect_transfer(uuid, uuid, uuid, uuid, text)',
  $x$  EXECUTE 'SET LOCAL memoriesdb.citus_moving = off';$x$,
  $x$  EXECUTE 'SET LOCAL memoriesdb.citus_moving = off';
  -- (§3j) the grants the new owner took over: their grantees now hold grants of the new owner
  INSERT INTO memoriesdb_internal.grantors (grantee_id, owner_id)
  SELECT DISTINCT g.grantee_id, t FROM memoriesdb.memory_grants AS g WHERE g.owner_id = t AND g.memory_id = m
  ON CONFLICT DO NOTHING;$x$);
-- the readers: the grants by (owner among the grantors, grantee); an empty list asks no shard (a constant false:
-- Citus prunes every shard; "owner_id = ANY ('{}')" alone it sends to all 32)
SELECT pg_temp.patch_many('memoriesdb_internal.visible_counts(bigint, boolean)',
  ARRAY['  uid uuid := memoriesdb.current_user_id();   -- never another user''s: no counts leak',
        'WHERE g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())'],
  ARRAY['  uid uuid := memoriesdb.current_user_id();   -- never another user''s: no counts leak
  citus_grantors uuid[] := memoriesdb_internal.citus_grantors(uid);   -- (Citus §3j)',
        'WHERE g.owner_id = ANY (citus_grantors) AND cardinality(citus_grantors) > 0
                                        AND g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())']);
-- list_memories(): as deployed, every row of every shard under the policy (Citus cannot prune "the rows I may see"):
-- each call read the whole table. Here the caller's own rows on its shard, and its grants' memories on the grantors'
-- shards only; the same rows and columns (a grant on one's own memory, after a transfer back, lists it once, owned).
CREATE OR REPLACE FUNCTION memoriesdb.list_memories()
RETURNS TABLE (id uuid, owned boolean, permission text, revision integer, embedded boolean,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
  grantors uuid[] := memoriesdb_internal.citus_grantors(uid);
BEGIN
  RETURN QUERY
    SELECT x.id, x.owned, x.permission, x.revision, x.embedded, x.created_at, x.updated_at FROM (
      SELECT m.id, true AS owned, 'owner'::text AS permission, m.revision, m.embedding IS NOT NULL AS embedded, m.created_at, m.updated_at
        FROM memoriesdb.memories AS m WHERE m.owner_id = uid
      UNION ALL
      SELECT m.id, false, g.permission, m.revision, m.embedding IS NOT NULL, m.created_at, m.updated_at
        FROM memoriesdb.memory_grants AS g JOIN memoriesdb.memories AS m ON m.owner_id = g.owner_id AND m.id = g.memory_id
       WHERE g.owner_id = ANY (grantors) AND cardinality(grantors) > 0 AND g.owner_id <> uid
         AND g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())) AS x
     ORDER BY x.created_at, x.id;
END
$$;
-- list_grants(memory_id): a SQL function with a parameter over a distributed table, which Citus cannot plan ("could
-- not create distributed plan ... parameters in SQL functions"; measured: every call failed, with an id or NULL; also
-- found by the red team, 15-redteam-directory.sql), and which PL/pgSQL
-- cannot be (a parameter and a result column of one name, memory_id): the SQL function calls a PL/pgSQL one. It reads
-- one memory's grants on its owner's shard (the directory, §3i), or all of the caller's: those it gave (its shard)
-- and those it received (the grantors' shards). The policy (grantee or owner) still decides, as on a single node.
CREATE FUNCTION memoriesdb_internal.citus_list_grants(wanted uuid)
RETURNS TABLE (memory_id uuid, grantee_id uuid, permission text, expires_at timestamptz, received boolean, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uid uuid := memoriesdb.current_user_id();
  owner uuid;
  grantors uuid[];   -- the owners that may have granted it something (§3j: one shard)
BEGIN
  IF wanted IS NOT NULL THEN
    owner := memoriesdb_internal.citus_owner_of(wanted);
    RETURN QUERY
      SELECT g.memory_id, g.grantee_id, g.permission, g.expires_at, g.grantee_id = uid, g.created_at
        FROM memoriesdb.memory_grants AS g WHERE g.owner_id = owner AND g.memory_id = wanted
       ORDER BY g.created_at, g.memory_id, g.grantee_id;
    RETURN;
  END IF;
  grantors := memoriesdb_internal.citus_grantors(uid);
  RETURN QUERY
    SELECT x.memory_id, x.grantee_id, x.permission, x.expires_at, x.received, x.created_at FROM (
      SELECT g.memory_id, g.grantee_id, g.permission, g.expires_at, g.grantee_id = uid AS received, g.created_at
        FROM memoriesdb.memory_grants AS g WHERE g.owner_id = uid
      UNION ALL
      SELECT g.memory_id, g.grantee_id, g.permission, g.expires_at, true, g.created_at
        FROM memoriesdb.memory_grants AS g
       WHERE g.owner_id = ANY (grantors) AND cardinality(grantors) > 0 AND g.owner_id <> uid AND g.grantee_id = uid) AS x
     ORDER BY x.created_at, x.memory_id, x.grantee_id;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_list_grants(uuid) IS
  'Internal (Citus): list_grants()'' rows, read on the shards that hold them (the memory''s owner''s; or the caller''s and its grantors''), under the caller''s policies.';
ALTER FUNCTION memoriesdb_internal.citus_list_grants(uuid) OWNER TO memoriesdb_owner;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.citus_list_grants(uuid) TO memoriesdb_reader;
SELECT pg_temp.run(regexp_replace(pg_get_functiondef('memoriesdb.list_grants(uuid)'::regprocedure),
         '\mAS \$function\$.*\$function\$', E'AS $function$\n  SELECT * FROM memoriesdb_internal.citus_list_grants(list_grants.memory_id)   -- (Citus)\n$function$'));

SELECT pg_temp.patch_many('memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)',
  ARRAY['  uid uuid := memoriesdb.current_user_id();
  q public.vector;',
        'WHERE g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp()) AND m.embedding IS NOT NULL'],
  ARRAY['  uid uuid := memoriesdb.current_user_id();
  citus_grantors uuid[] := memoriesdb_internal.citus_grantors(uid);   -- (Citus §3j)
  q public.vector;',
        'WHERE g.owner_id = ANY (citus_grantors) AND cardinality(citus_grantors) > 0
          AND g.grantee_id = uid AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp()) AND m.embedding IS NOT NULL']);
-- 3h. History after a move ------------------------------------------------------------------------------------------
-- On a single node transfer() is an UPDATE of memories.owner_id (and of its grants' owner_id) in the giver's chain,
-- and the history functions read it so: who_could_read() takes the owner from the memory's newest audit row and the
-- giver from the UPDATE's old image; recall_as_of() takes the revision current at a time from the INSERTs of
-- memory_revisions. On Citus transfer() moves the memory (section 3c): in the giver's chain the DELETEs of the memory
-- and its rows (last images), in the receiver's the INSERTs of the same ids and the transfer row, one txid. Read as
-- is (measured, before this section): recall_as_of() failed ("correlated subqueries are not supported when the FROM
-- clause contains a CTE or subquery"); who_could_read() after a transfer answered that nobody could read it (the
-- giver's DELETE the newest row by id) or, when the receiver's worker numbers its rows higher, the receiver as owner
-- given by himself and every grant that followed the memory as given by him at the transfer's time (the INSERTs of
-- the move read as creations); the moved revisions would read as revisions made at the transfer; audit_receipts() failed
-- ("complex joins are only supported when all distributed tables are co-located ...": its seals and rows joined on
-- the txid, not the chain). And ordering by audit_log.id, as the single node does, means nothing across chains on
-- Citus: each worker numbers its rows from its own range (worker 1 from 2^48, worker 2 from 2^49).
--
-- (a) One transaction, one time: an audit row's created_at was the worker's now(), the start of the worker's part of
-- the distributed transaction, so a transfer's rows carried two times (one per worker), neither the time its rows
-- were stamped with (stamp_row(): citus_now(), the distributed transaction's stamp). The history counts a change
-- from the start of its transaction: audit rows are stamped with citus_now() too, the same on every node.
ALTER TABLE memoriesdb.audit_log ALTER COLUMN created_at SET DEFAULT memoriesdb_internal.citus_now();

-- (b) The history of a memory in the single node's form: its audit rows from every chain (one query on every shard,
-- gathered on the coordinator), a move read back as what it stands for. A DELETE in a chain and an INSERT of the
-- same row (table, id) in the same transaction (txid) in the chain the transfer row of that transaction names as the
-- receiver, the DELETE in the giver's chain, are one UPDATE: the DELETE's old image, the INSERT's new image, at the
-- DELETE's place in the giver's chain (the single node's UPDATE of the owner). What has no partner stays as written
-- (the receiver's own grant, deleted; the giver's offers). Ordered by time (one per transaction, (a)), within a
-- transaction by the chain's place along its moves (the giver's rows before the receiver's: 0 for the first giver,
-- 1 for its receiver, ...) and by id within the chain (rows of one chain are written on one node); id is that
-- position, so the single node's queries ("the newest row": ORDER BY id DESC) read it unchanged.
CREATE FUNCTION memoriesdb_internal.citus_memory_history(m uuid, tables text[])
RETURNS TABLE (id bigint, created_at timestamptz, created_by uuid, table_name text, row_id uuid, memory_id uuid, op text,
               old_row jsonb, new_row jsonb, vouched_by name, txid xid8, chain uuid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  h jsonb;
BEGIN
  -- (gathered into one value first: the rest is a local query, none of Citus's limits on correlated subqueries or
  -- joins across chains apply)
  SELECT jsonb_agg(jsonb_build_object('id', a.id, 'created_at', a.created_at, 'created_by', a.created_by, 'table_name', a.table_name,
                                      'row_id', a.row_id, 'op', a.op, 'old_row', a.old_row, 'new_row', a.new_row,
                                      'vouched_by', a.vouched_by, 'txid', a.txid::text, 'chain', a.chain))
    INTO h
    FROM memoriesdb.audit_log AS a
   WHERE a.memory_id = citus_memory_history.m AND a.table_name = ANY (citus_memory_history.tables || 'memory_transfers'::text);
  RETURN QUERY
  WITH RECURSIVE r AS MATERIALIZED (
    SELECT e.k, x.id, x.created_at, x.created_by, x.table_name, x.row_id, x.op, x.old_row, x.new_row, x.vouched_by,
           x.txid::xid8 AS txid, x.chain
      FROM jsonb_array_elements(coalesce(h, '[]'::jsonb)) WITH ORDINALITY AS e(j, k),
           jsonb_to_record(e.j) AS x(id bigint, created_at timestamptz, created_by uuid, table_name text, row_id uuid, op text,
                                    old_row jsonb, new_row jsonb, vouched_by name, txid text, chain uuid)
  ), moves AS (                   -- the transfers of the memory: giver and receiver, per transaction
    SELECT DISTINCT t.txid, (t.new_row->>'from_owner')::uuid AS giver, (t.new_row->>'to_owner')::uuid AS receiver
      FROM r AS t WHERE t.table_name = 'memory_transfers' AND t.op = 'INSERT'
  ), depth (txid, chain, n) AS (  -- each chain's place along the moves of one transaction
    SELECT v.txid, v.giver, 0 FROM moves AS v
     WHERE NOT EXISTS (SELECT 1 FROM moves AS p WHERE p.txid = v.txid AND p.receiver = v.giver)
    UNION
    SELECT v.txid, v.receiver, d.n + 1 FROM depth AS d JOIN moves AS v ON v.txid = d.txid AND v.giver = d.chain WHERE d.n < 64
  ), place AS (
    SELECT d.txid, d.chain, max(d.n) AS n FROM depth AS d GROUP BY d.txid, d.chain
  ), pairs AS (                   -- a DELETE in the giver's chain, the INSERT of the same row in the receiver's
    SELECT d.k AS del_k, i.k AS ins_k
      FROM moves AS v
      JOIN r AS d ON d.txid = v.txid AND d.chain = v.giver AND d.op = 'DELETE'
      JOIN r AS i ON i.txid = v.txid AND i.chain = v.receiver AND i.op = 'INSERT'
                 AND i.table_name = d.table_name AND i.row_id = d.row_id
  ), single AS (
    SELECT r.k, r.id, r.created_at, r.created_by, r.table_name, r.row_id, r.op, r.old_row, r.new_row, r.vouched_by, r.txid, r.chain
      FROM r WHERE NOT EXISTS (SELECT 1 FROM pairs AS p WHERE p.del_k = r.k OR p.ins_k = r.k)
    UNION ALL
    SELECT d.k, d.id, d.created_at, d.created_by, d.table_name, d.row_id, 'UPDATE', d.old_row, i.new_row, d.vouched_by, d.txid, d.chain
      FROM pairs AS p JOIN r AS d ON d.k = p.del_k JOIN r AS i ON i.k = p.ins_k
  )
  SELECT row_number() OVER (ORDER BY s.created_at, coalesce(pl.n, 0), s.id, s.k), s.created_at, s.created_by, s.table_name,
         s.row_id, citus_memory_history.m, s.op, s.old_row, s.new_row, s.vouched_by, s.txid, s.chain
    FROM single AS s LEFT JOIN place AS pl ON pl.txid = s.txid AND pl.chain = s.chain
   ORDER BY 1;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_memory_history(uuid, text[]) IS
  'Internal (Citus): the audit rows about memory m of the given tables, from every chain, in the single node''s form: each move of transfer() (a DELETE in the giver''s chain and the INSERT of the same row in the receiver''s, in one transaction with the transfer row naming both) as one UPDATE at the DELETE''s place; id is the row''s position in the history (time, place along the transaction''s moves, id within the chain), not audit_log.id. who_could_read() and recall_as_of() read it instead of audit_log.';
ALTER FUNCTION memoriesdb_internal.citus_memory_history(uuid, text[]) OWNER TO memoriesdb_owner;   -- run by the history functions (as it)
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_memory_history(uuid, text[]) FROM PUBLIC;

SELECT pg_temp.patch('memoriesdb.who_could_read(uuid, timestamptz)', 'FROM memoriesdb.audit_log AS a',
  $x$FROM memoriesdb_internal.citus_memory_history(who_could_read.memory_id, ARRAY['memories', 'memory_grants']) AS a   -- (Citus: section 3h)$x$);
SELECT pg_temp.patch('memoriesdb.recall_as_of(uuid, timestamptz)', 'FROM memoriesdb.audit_log AS a',
  $x$FROM memoriesdb_internal.citus_memory_history(recall_as_of.memory_id, ARRAY['memories', 'memory_revisions']) AS a   -- (Citus: section 3h)$x$);

-- (c) Receipts: the seals of the caller's chain and the rows they cover joined on the chain's distribution value
-- (chain_key: the chain, or the all-ones uuid for the legacy chain), one shard each. The receiver's seal of a move
-- covers its INSERTs and the transfer row: one receipt, as the single node's seal of the transfer row.
SELECT pg_temp.patch_many('memoriesdb.audit_receipts(uuid)',
  ARRAY['WHERE (s.chain = uid OR s.chain IS NULL)', 'WHERE a.memory_id = audit_receipts.memory_id AND a.txid = s.txid'],
  ARRAY['WHERE s.chain_key IN (uid, ''ffffffff-ffff-ffff-ffff-ffffffffffff'') AND (s.chain = uid OR s.chain IS NULL)   -- (Citus: section 3h)',
        'WHERE a.chain_key = s.chain_key AND a.memory_id = audit_receipts.memory_id AND a.txid = s.txid']);
-- verify_receipt(): every read on the receipt's chain's shard (chain_key; Citus refused the seals of one chain read
-- from every shard, "cannot push down this subquery"), whole rows rebuilt as the tables' row types (on a shard a row
-- is of the shard's type, as in audit_findings()).
SELECT pg_temp.patch_many('memoriesdb.verify_receipt(jsonb, jsonb)',
  ARRAY[E'  bad text;\n',
        'chain_id := CASE WHEN chain_name <> ''legacy'' THEN chain_name::uuid END;',
        'WHERE chain_name = ''legacy'' AND t.chain IS NULL',
        'WHERE t.chain = chain_id AND t.chain_seq',
        'memoriesdb_internal.audit_seal_hash(s)',
        'WHERE a.txid = s.txid AND a.chain IS NOT DISTINCT FROM s.chain',
        'memoriesdb_internal.audit_canonical(a)'],
  ARRAY[E'  bad text;\n  ck uuid;\n',
        'chain_id := CASE WHEN chain_name <> ''legacy'' THEN chain_name::uuid END;
  ck := coalesce(chain_id, ''ffffffff-ffff-ffff-ffff-ffffffffffff''::uuid);   -- (Citus: the chain''s shard, section 3h)',
        'WHERE t.chain_key = ck AND chain_name = ''legacy'' AND t.chain IS NULL',
        'WHERE t.chain_key = ck AND t.chain = chain_id AND t.chain_seq',
        'memoriesdb_internal.audit_seal_hash(ROW(s.seq, s.txid, s.first_id, s.last_id, s.row_count, s.rows_digest, s.prev_hash,
               s.seal_hash, s.created_at, s.chain, s.chain_seq, s.peers, s.chain_key)::memoriesdb.audit_seals)',
        'WHERE a.chain_key = ck AND a.txid = s.txid AND a.chain IS NOT DISTINCT FROM s.chain',
        'memoriesdb_internal.audit_canonical(ROW(a.id, a.created_at, a.created_by, a.db_role, a.application_name, a.txid,
               a.table_name, a.row_id, a.memory_id, a.op, a.old_row, a.new_row, a.row_hash, a.login, a.vouched_by, a.chain,
               a.chain_key)::memoriesdb.audit_log)']);

-- 3k. Offers accepted on their sender's shard ----------------------------------------------------------------------
-- accept_offer() locked the memory and then the offer by id alone (measured: "could not run distributed query with
-- FOR UPDATE/SHARE commands"; no offer could be accepted on Citus). The offer is looked up first (no lock; offers
-- are distributed by sender), then the memory is locked on its owner's shard (the directory row first, §3i) and the offer on
-- its sender's, in the order share() and transfer() take them; it is deleted there.
SELECT pg_temp.patch_many('memoriesdb.accept_offer(uuid)',
  ARRAY['  mid uuid;',
        '  SELECT x.memory_id INTO mid FROM memoriesdb.memory_offers AS x WHERE x.id = accept_offer.offer_id AND x.recipient_id = uid;',
        '    PERFORM 1 FROM memoriesdb.memories AS t WHERE t.id = mid FOR UPDATE;
    SELECT * INTO o FROM memoriesdb.memory_offers AS x WHERE x.id = accept_offer.offer_id AND x.recipient_id = uid FOR UPDATE;',
        '  DELETE FROM memoriesdb.memory_offers AS x WHERE x.id = o.id;'],
  ARRAY['  mid uuid;
  sender uuid;   -- (Citus §3k)',
        '  SELECT x.memory_id, x.sender_id INTO mid, sender FROM memoriesdb.memory_offers AS x
   WHERE x.id = accept_offer.offer_id AND x.recipient_id = uid;',
        $x$    EXECUTE format('SELECT 1 FROM memoriesdb.memories AS t WHERE t.owner_id = %L AND t.id = %L FOR UPDATE',
                   memoriesdb_internal.citus_lock_owner_of(mid), mid);
    EXECUTE format('SELECT * FROM memoriesdb.memory_offers AS x WHERE x.sender_id = %L AND x.id = %L AND x.recipient_id = %L FOR UPDATE',
                   sender, accept_offer.offer_id, uid) INTO o;$x$,
        '  DELETE FROM memoriesdb.memory_offers AS x WHERE x.sender_id = o.sender_id AND x.id = o.id;']);

-- 3l. What the single-node suite found (db/tests/*.sql through the coordinator: docs/citus.md, "The single-node
-- suite on Citus"; tests: db/citus/tests/11-single-node-parity.sql) ------------------------------------------------
-- authenticate() after vouch() in one transaction (a backend that vouched, then proved a key): the proof is minted
-- over [user, login, null], but vouch()'s app.current_user_vouched_by stayed set, so every node checked it against
-- [user, login, vouching login] and the context was nobody (measured: 27-as-of, "no user context"). On a single node
-- the key's context holds. authenticate() clears it.
SELECT pg_temp.patch('memoriesdb.authenticate(text)',
  $x$  EXECUTE format('SET LOCAL app.current_login = %L', session_user);
$x$,
  $x$  EXECUTE format('SET LOCAL app.current_login = %L', session_user);
  EXECUTE 'SET LOCAL app.current_user_vouched_by = ''''';   -- (a vouch() earlier in the transaction: not this proof's)
$x$);

-- link() of an acyclic edge type (derived_from, supersedes, ...) failed: its cycle check, reaches(), is a recursive
-- CTE over memory_edges ("recursive CTEs are only supported when they contain a filter on the distribution column",
-- measured: 09-graph, 13-graph-traversal, 21-access-log-doors). The same walk, breadth first, one query over the
-- edges per step (every shard: edges are stored with their source's owner), each step's new memories kept only when
-- user_id may see them (visible_to(), on the coordinator): a hidden memory is never stepped on, as on a single node.
CREATE OR REPLACE FUNCTION memoriesdb_internal.reaches(from_id uuid, to_id uuid, edge_type text, directed boolean, user_id uuid)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  seen uuid[] := ARRAY[from_id];
  frontier uuid[] := ARRAY[from_id];
  found_ids uuid[];
BEGIN
  WHILE cardinality(frontier) > 0 LOOP
    IF to_id = ANY (frontier) THEN RETURN true; END IF;
    found_ids := ARRAY(SELECT e.target_id FROM memoriesdb.memory_edges AS e
                   WHERE e.edge_type = reaches.edge_type AND e.source_id = ANY (frontier)
                  UNION
                  SELECT e.source_id FROM memoriesdb.memory_edges AS e
                   WHERE NOT directed AND e.edge_type = reaches.edge_type AND e.target_id = ANY (frontier));
    frontier := ARRAY(SELECT DISTINCT n FROM unnest(found_ids) AS n
                       WHERE NOT n = ANY (seen) AND memoriesdb_internal.visible_to(n, user_id));
    seen := seen || frontier;
  END LOOP;
  RETURN false;
END
$$;

-- the query cache: cache_query_vector() stamped a replaced entry with clock_timestamp() and now() in ON CONFLICT DO
-- UPDATE SET ("functions used in the DO UPDATE SET clause of INSERTs on distributed tables must be marked IMMUTABLE",
-- measured: 30-query-cache: nothing could be cached), and cached_query_vector()'s LRU touch set used_at to
-- clock_timestamp() ("functions used in UPDATE queries on distributed tables must not be VOLATILE"): the proposed
-- row's own columns (their defaults: the same clock_timestamp() and now()), and the time taken before the UPDATE.
SELECT pg_temp.patch('memoriesdb.cache_query_vector(text, text, public.vector)',
  'DO UPDATE SET vector = excluded.vector, used_at = clock_timestamp(), created_at = now();',
  'DO UPDATE SET vector = excluded.vector, used_at = excluded.used_at, created_at = excluded.created_at;');
SELECT pg_temp.patch_many('memoriesdb.cached_query_vector(text, text)',
  ARRAY[E'  v public.vector;\n', 'UPDATE memoriesdb_internal.query_cache AS c SET used_at = clock_timestamp()'],
  ARRAY[E'  v public.vector;\n  touched timestamptz;\n',
        E'touched := clock_timestamp();\n    UPDATE memoriesdb_internal.query_cache AS c SET used_at = touched']);

-- fail_embedding_job() (a worker's report of a provider error) locked the job by memory and lease (FOR UPDATE on
-- every shard: refused, measured: 08-queue, 24-queue-health) and drew its backoff's jitter with random() inside the
-- UPDATE (refused: VOLATILE): the job's owner is found first, the job locked on its shard, the retry time computed
-- before the UPDATE, both UPDATEs on the owner's shard.
SELECT pg_temp.patch_many('memoriesdb.fail_embedding_job(uuid, uuid, text, boolean)',
  ARRAY[$x$  cap  double precision := memoriesdb.setting('backoff_max_seconds')::float8;
$x$,
        $x$  SELECT * INTO job FROM memoriesdb.embedding_schedule AS s
   WHERE s.memory_id = fail_embedding_job.memory_id AND s.lease_id = fail_embedding_job.lease_id
   FOR UPDATE;$x$,
        'WHERE s.memory_id = job.memory_id AND s.model_id = job.model_id;',
        $x$  -- exponential backoff with jitter: base * 2^(attempts-1), capped
$x$,
        'run_after = now() + make_interval(secs => least(cap, base * 2 ^ (job.attempts - 1)) * (0.75 + random() / 2)),'],
  ARRAY[$x$  cap  double precision := memoriesdb.setting('backoff_max_seconds')::float8;
  retry_at timestamptz;
$x$,
        $x$  EXECUTE format('SELECT * FROM memoriesdb.embedding_schedule AS s WHERE s.owner_id = %L AND s.memory_id = %L AND s.lease_id = %L FOR UPDATE',
                 (SELECT s.owner_id FROM memoriesdb.embedding_schedule AS s
                   WHERE s.memory_id = fail_embedding_job.memory_id AND s.lease_id = fail_embedding_job.lease_id LIMIT 1),
                 fail_embedding_job.memory_id, fail_embedding_job.lease_id) INTO job;$x$,
        'WHERE s.owner_id = job.owner_id AND s.memory_id = job.memory_id AND s.model_id = job.model_id;',
        $x$  -- exponential backoff with jitter: base * 2^(attempts-1), capped
  retry_at := now() + make_interval(secs => least(cap, base * 2 ^ (job.attempts - 1)) * (0.75 + random() / 2));
$x$,
        'run_after = retry_at,']);

-- claim_embedding_jobs() (the claim of workers before v0.5: the active model's jobs) is one FOR UPDATE SKIP LOCKED
-- over every owner's jobs (refused, measured: 07-audit, 08-queue, 24-queue-health, 29-requeue), as
-- claim_model_embedding_jobs() was (section 3d): the same claim through it, for the active model only (the same
-- caps, errors and access-log entry).
SELECT pg_temp.patch('memoriesdb.claim_embedding_jobs(integer, interval, text)',
  (SELECT substring(p.prosrc FROM E'DECLARE\n.*END\n') FROM pg_proc AS p
    WHERE p.oid = 'memoriesdb.claim_embedding_jobs(integer, interval, text)'::regprocedure),
  $x$DECLARE
  active text := (SELECT em.name FROM memoriesdb.embedding_models AS em WHERE em.state = 'active');
BEGIN
  -- (Citus: section 3l)
  RETURN QUERY SELECT c.memory_id, c.lease_id, c.content, c.content_hash, c.attempts
                 FROM memoriesdb.claim_model_embedding_jobs(batch_size, lease, worker, ARRAY[active]) AS c;
END
$x$);

-- requeue_dead_embedding_jobs(): each id's outcome was a correlated subquery into the queue from a list ("correlated
-- subqueries are not supported when the FROM clause contains a set returning function", measured: 29-requeue): the
-- named memories' jobs are read first, in one query.
SELECT pg_temp.patch_many('memoriesdb.requeue_dead_embedding_jobs(uuid[])',
  ARRAY[E'  revived uuid[];\n',
        E'  RETURN QUERY   -- each id once, in the order first given; NULL elements name no memory\n',
        $x$WHEN EXISTS (SELECT 1 FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id = w.mid) THEN 'not_dead'$x$],
  ARRAY[E'  revived uuid[];\n  jobs uuid[];\n',
        $x$  jobs := ARRAY(SELECT s.memory_id FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id = ANY (requeue_dead_embedding_jobs.memory_ids));
  RETURN QUERY   -- each id once, in the order first given; NULL elements name no memory
$x$,
        $x$WHEN w.mid = ANY (jobs) THEN 'not_dead'$x$]);
SELECT pg_temp.patch_many('memoriesdb.requeue_dead_embedding_jobs(uuid[], text)',
  ARRAY[E'  revived uuid[];\n',
        E'  RETURN QUERY   -- each id once, in the order first given; NULL elements name no memory\n',
        $x$WHEN EXISTS (SELECT 1 FROM memoriesdb.embedding_schedule AS s WHERE s.memory_id = w.mid AND s.model_id = target.id)
                THEN 'not_dead'$x$],
  ARRAY[E'  revived uuid[];\n  jobs uuid[];\n',
        $x$  jobs := ARRAY(SELECT s.memory_id FROM memoriesdb.embedding_schedule AS s
                 WHERE s.memory_id = ANY (requeue_dead_embedding_jobs.memory_ids) AND s.model_id = target.id);
  RETURN QUERY   -- each id once, in the order first given; NULL elements name no memory
$x$,
        $x$WHEN w.mid = ANY (jobs) THEN 'not_dead'$x$]);

-- link() from a memory shared with the caller (its owner another user) failed: the edge's owner_id (its distribution
-- value, the source's owner: the edge lives on its source's shard) defaulted to the caller ("violates foreign key
-- constraint memory_edges_owner_id_source_id_fkey", measured: 21-access-log-doors). The source's owner, looked up.
-- (Read into a variable first: Citus evaluates an INSERT's VALUES itself, section 3f.)
SELECT pg_temp.patch_many('memoriesdb.link(uuid, uuid, text, real, jsonb)',
  ARRAY[E'  edge_id uuid;\n',
        $x$  INSERT INTO memoriesdb.memory_edges AS e (source_id, target_id, edge_type, weight, metadata)
  VALUES (source, target, t.name, weight, metadata)$x$],
  ARRAY[E'  edge_id uuid;\n  source_owner uuid;\n',
        $x$  source_owner := memoriesdb_internal.citus_owner_of(source);   -- (Citus: section 3l)
  INSERT INTO memoriesdb.memory_edges AS e (owner_id, source_id, target_id, edge_type, weight, metadata)
  VALUES (source_owner, source, target, t.name, weight, metadata)$x$]);

-- list_edges() showed an edge whose target the caller may not see (measured: 09-graph, "bob sees no edge while only
-- one end is shared with him": he saw two, and the hidden memories' ids). The single node's policy asks for both ends
-- visible; on Citus it checks the source only (the target may be another owner's, on another node: section 2). The
-- targets are checked here, in one query of memories under the caller's policies (the same rule, for them).
-- (the filter first: the lookup added after it repeats it)
SELECT pg_temp.patch_many('memoriesdb.list_edges(uuid)',
  ARRAY['   WHERE list_edges.memory_id IS NULL OR list_edges.memory_id IN (e.source_id, e.target_id)',
        E'#variable_conflict use_column\nBEGIN\n'],
  ARRAY['   WHERE (list_edges.memory_id IS NULL OR list_edges.memory_id IN (e.source_id, e.target_id)) AND e.target_id = ANY (visible)',
        $x$#variable_conflict use_column
DECLARE
  visible uuid[];
BEGIN
  -- (Citus: section 3l) the targets the caller may see
  visible := ARRAY(SELECT m.id FROM memoriesdb.memories AS m
                    WHERE m.id = ANY (ARRAY(SELECT DISTINCT e.target_id FROM memoriesdb.memory_edges AS e
                                             WHERE list_edges.memory_id IS NULL OR list_edges.memory_id IN (e.source_id, e.target_id))));
$x$]);

-- release_embedding_jobs() (a worker stopping gives its leases back) is a SQL function with parameters over a
-- distributed table that section 3 did not convert (its one statement reads no table with FROM): "could not create
-- distributed plan" (measured: 08-queue). The same UPDATE in PL/pgSQL.
SELECT pg_temp.patch_many('memoriesdb.release_embedding_jobs(uuid[], uuid[])',
  ARRAY[$x$ LANGUAGE sql
$x$, $x$  WITH released AS (
    UPDATE memoriesdb.embedding_schedule AS s
       SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL,
           attempts = greatest(s.attempts - 1, 0), run_after = now()
      FROM unnest(memory_ids, lease_ids) AS j(mid, lid)
     WHERE s.memory_id = j.mid AND s.lease_id = j.lid
    RETURNING 1)
  SELECT count(*)::int FROM released
$x$],
  ARRAY[$x$ LANGUAGE plpgsql
$x$, $x$DECLARE
  released integer;
BEGIN
  -- (Citus: section 3l)
  UPDATE memoriesdb.embedding_schedule AS s
     SET lease_id = NULL, lease_until = NULL, leased_hash = NULL, leased_by = NULL, leased_at = NULL,
         attempts = greatest(s.attempts - 1, 0), run_after = now()
    FROM unnest(memory_ids, lease_ids) AS j(mid, lid)
   WHERE s.memory_id = j.mid AND s.lease_id = j.lid;
  GET DIAGNOSTICS released = ROW_COUNT;
  RETURN released;
END
$x$]);

-- the embedding models (33-models, 35-import-embeddings): add_model() queued a job per memory without its owner
-- ("the partition column of table memoriesdb.embedding_schedule should have a value", measured: no model could be
-- added on Citus), and model_progress() joined embeddings and memories on the id only ("the query contains a join
-- that requires repartitioning"): add_model() queues with the owner (model_progress(): below).
SELECT pg_temp.patch('memoriesdb.add_model(text, text, integer)',
  $x$  INSERT INTO memoriesdb.embedding_schedule (memory_id, model_id, content_hash)
  SELECT m.id, new_id, m.content_hash FROM memoriesdb.memories AS m;$x$,
  $x$  INSERT INTO memoriesdb.embedding_schedule (owner_id, memory_id, model_id, content_hash)   -- (Citus: section 3l)
  SELECT m.owner_id, m.id, new_id, m.content_hash FROM memoriesdb.memories AS m;$x$);
-- model_progress(), joined on the owner too, still failed: Citus ran its three aggregates as intermediate results joined with the
-- models (a reference table) over a connection to the coordinator itself as memoriesdb_owner, which logs in on the
-- workers only ("role memoriesdb_owner is not permitted to log in", measured). The same counts as PL/pgSQL, each
-- aggregate a statement of its own, joined with the models here.
CREATE OR REPLACE FUNCTION memoriesdb.model_progress()
RETURNS TABLE (model text, provider text, dimension integer, state text, done bigint, total bigint, pending bigint,
               leased bigint, dead bigint, activated_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  n_total bigint := (SELECT count(*) FROM memoriesdb.memories);
  done_by jsonb;
  jobs_by jsonb;
BEGIN
  -- (Citus: section 3l)
  SELECT coalesce(jsonb_object_agg(d.model_id, d.n), '{}') INTO done_by
    FROM (SELECT e.model_id, count(*) AS n FROM memoriesdb.embeddings AS e
            JOIN memoriesdb.memories AS m ON m.owner_id = e.owner_id AND m.id = e.memory_id AND m.content_hash = e.content_hash
           GROUP BY e.model_id) AS d;
  SELECT coalesce(jsonb_object_agg(j.model_id, jsonb_build_array(j.pending, j.leased, j.dead)), '{}') INTO jobs_by
    FROM (SELECT s.model_id,
                 count(*) FILTER (WHERE s.dead_at IS NULL AND (s.lease_until IS NULL OR s.lease_until < now())) AS pending,
                 count(*) FILTER (WHERE s.dead_at IS NULL AND s.lease_until >= now()) AS leased,
                 count(*) FILTER (WHERE s.dead_at IS NOT NULL) AS dead
            FROM memoriesdb.embedding_schedule AS s GROUP BY s.model_id) AS j;
  RETURN QUERY
  SELECT em.name, em.provider, em.dimension, em.state, coalesce((done_by->>em.id::text)::bigint, 0),
         CASE WHEN em.state = 'retired' THEN 0 ELSE n_total END,
         coalesce((jobs_by->em.id::text->>0)::bigint, 0), coalesce((jobs_by->em.id::text->>1)::bigint, 0),
         coalesce((jobs_by->em.id::text->>2)::bigint, 0), em.activated_at, em.created_at
    FROM memoriesdb.embedding_models AS em
   ORDER BY em.state = 'retired', em.created_at, em.id;
END
$$;

-- audit_seal_pending() waited for a transaction that was writing a chain's first seal instead of leaving the chain
-- for later (measured: 32-audit-pending, "audit_seal_pending() skips a chain still held": the sealer hung until the
-- holder ended). audit_lock_chain() bounds that INSERT with a short lock_timeout set by set_config(..., true), which
-- does not reach the worker where the chain's shard is (section 1): SET LOCAL, which does.
SELECT pg_temp.patch_many('memoriesdb_internal.audit_lock_chain(uuid)',
  ARRAY[$x$PERFORM set_config('lock_timeout', '100ms', true);$x$, $x$PERFORM set_config('lock_timeout', was, true);$x$],
  ARRAY[$x$EXECUTE 'SET LOCAL lock_timeout = ''100ms''';   -- (Citus: section 3l; propagated to the chain's worker)$x$,
        $x$EXECUTE format('SET LOCAL lock_timeout = %L', was);$x$]);

-- 3n. import_embeddings() on the cluster ------------------------------------------------------------------------
-- import_embeddings() (the operator's `memoriesdb import-embeddings`) failed at every batch with a row (measured:
-- 35-import-embeddings, "could not run distributed query with FOR UPDATE/SHARE commands"): it locks the batch's
-- memories by id alone (FOR NO KEY UPDATE over every shard) and stores them in one statement over every owner's
-- shards (data-modifying CTEs joined with memories on the id only). On Citus, as complete_embedding_jobs() (section
-- 3d): the owners first, from the memory directory (section 3i), its rows locked FOR UPDATE shard by shard of the
-- directory (as citus_lock_owner_of() does for one id: a transfer or a forget changes that row under the same lock,
-- so the import reads the owner they leave; the ids in order, the shards in order: two imports never deadlock);
-- then the memories on their owners' shards, locked FOR NO KEY UPDATE as on a single node (a revise() waits until
-- the commit); each row classified here on the coordinator exactly as the deployed function does; then the vectors
-- stored, mirrored (active model) and the jobs finished with one statement of each per shard of memories (the
-- owners hashed to one shard together: one router statement, not one per owner nor per row). Statements: at most
-- one per shard of the directory and four per shard of memories that the batch touches (32 + 128 here), whatever its
-- size. The same outcomes, order, errors and limits as deployed. This is a copy of the deployed logic: the deploy
-- stops here when the deployed function's text (its digest) changes, so the copy cannot silently fall behind (update
-- it, then the digest). Tests: db/citus/tests/17-import-and-context.sql; the single-node suite's 35-import-embeddings.
SELECT CASE WHEN md5(p.prosrc) <> 'ae124e8f8138c95bc496af7ed96ee6dd' THEN pg_temp.run(format(
         'DO $d$ BEGIN RAISE EXCEPTION %L; END $d$',
         'db/citus/distribute.sql: the deployed import_embeddings() changed; update its Citus copy (section 3n) and the digest'))
       END
  FROM pg_proc AS p WHERE p.oid = 'memoriesdb.import_embeddings(text, uuid[], text[], public.vector[])'::regprocedure;

CREATE OR REPLACE FUNCTION memoriesdb.import_embeddings(model text, memory_ids uuid[], content_hashes text[],
                                                         embeddings public.vector[])
RETURNS TABLE (memory_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  max_rows constant integer := 5000;   -- one call is one transaction: bounded
  target memoriesdb.embedding_models;
  n integer := coalesce(cardinality(memory_ids), 0);
  grp record;
  r record;
  dir_ids uuid[] := '{}';      -- the directory's rows of the batch (locked): memory -> owner
  dir_owners uuid[] := '{}';
  todo_ids uuid[];             -- named by the directory, not found on the owner's shard yet
  todo_owners uuid[];
  found_ids uuid[] := '{}';    -- the memories found on their owners' shards (locked), with their content hash
  found_owners uuid[] := '{}';
  found_hashes bytea[] := '{}';
  c_ids uuid[];                -- each row's memory and outcome, in input order; for the stored ones also:
  c_outcomes text[];
  c_owners uuid[];             -- its owner,
  c_hashes bytea[];            -- the content hash,
  c_vectors public.vector[];   -- the vector, normalised
BEGIN
  IF model IS NULL OR btrim(model) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'model name is required',
      DETAIL = 'import_embeddings() was called without a model',
      HINT = 'name a registered model (model_progress() lists them)';
  END IF;
  IF n IS DISTINCT FROM coalesce(cardinality(content_hashes), 0) OR n IS DISTINCT FROM coalesce(cardinality(embeddings), 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'memory_ids, content_hashes and embeddings must have the same length',
      DETAIL = format('%s memory ids, %s content hashes, %s embeddings', n, coalesce(cardinality(content_hashes), 0),
                      coalesce(cardinality(embeddings), 0)),
      HINT = 'one element of each array per row imported';
  END IF;
  IF n > max_rows THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB12', MESSAGE = 'too many rows in one import batch',
      DETAIL = format('%s rows; at most %s per call', n, max_rows),
      HINT = format('split the import into batches of at most %s rows (memoriesdb import-embeddings --batch)', max_rows);
  END IF;
  -- no activation, pause or retirement while the batch is stored (those take SHARE ROW EXCLUSIVE);
  -- imports do not wait for one another here
  LOCK TABLE memoriesdb.embedding_models IN SHARE MODE;
  target := memoriesdb_internal.model_named(import_embeddings.model);   -- MDB16
  IF target.state = 'retired' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB31', MESSAGE = 'a retired model takes no vectors',
      DETAIL = format('model %L was retired at %s', target.name, target.retired_at),
      HINT = 'register the model again under another name with add_model(), then import into that one';
  END IF;
  IF n = 0 THEN RETURN; END IF;

  -- (Citus: section 3n) the owners: the directory's rows, locked on their shards (one statement per shard of the
  -- directory, the shards and the ids in order: no deadlock between imports, nor with a call locking one id)
  -- (the directory is distributed by each id's keyed slot, section 3i)
  FOR grp IN SELECT array_agg(s.mid ORDER BY s.mid) AS ids, array_agg(s.slot) AS slots
               FROM (SELECT x.mid, x.slot, pg_catalog.get_shard_id_for_distribution_column('memoriesdb_internal.memory_locations', x.slot) AS sh
                       FROM (SELECT DISTINCT u.mid, memoriesdb_internal.citus_memory_slot(u.mid) AS slot
                               FROM unnest(memory_ids) AS u(mid) WHERE u.mid IS NOT NULL) AS x) AS s
              GROUP BY s.sh ORDER BY s.sh LOOP
    FOR r IN SELECT l.memory_id, l.owner_id FROM memoriesdb_internal.memory_locations AS l
              WHERE l.slot = ANY (grp.slots) AND l.memory_id = ANY (grp.ids) ORDER BY l.memory_id FOR UPDATE LOOP
      dir_ids := dir_ids || r.memory_id;
      dir_owners := dir_owners || r.owner_id;
    END LOOP;
  END LOOP;
  -- the memories on their owners' shards (the owners of one shard in one statement), locked as on a single node: they
  -- stay as checked until the commit (a revise() waits). A transfer commits on its two workers one after the other:
  -- the directory row, once its lock is ours, can name the receiver a moment before the receiver's worker shows the
  -- memory (as citus_lock_owner_of() waits for it, 1 s at most)
  todo_ids := dir_ids;
  todo_owners := dir_owners;
  FOR attempt IN 1 .. 100 LOOP
    FOR grp IN SELECT array_agg(DISTINCT s.owner) AS owners, array_agg(s.mid) AS ids
                 FROM (SELECT d.mid, d.owner, pg_catalog.get_shard_id_for_distribution_column('memoriesdb.memories', d.owner) AS sh
                         FROM unnest(todo_ids, todo_owners) AS d(mid, owner)) AS s
                GROUP BY s.sh ORDER BY s.sh LOOP
      FOR r IN SELECT m.id, m.owner_id, m.content_hash FROM memoriesdb.memories AS m
                WHERE m.owner_id = ANY (grp.owners) AND m.id = ANY (grp.ids) ORDER BY m.id FOR NO KEY UPDATE LOOP
        found_ids := found_ids || r.id;
        found_owners := found_owners || r.owner_id;
        found_hashes := found_hashes || r.content_hash;
      END LOOP;
    END LOOP;
    SELECT array_agg(d.mid), array_agg(d.owner) INTO todo_ids, todo_owners
      FROM unnest(todo_ids, todo_owners) AS d(mid, owner) WHERE d.mid <> ALL (found_ids);
    EXIT WHEN todo_ids IS NULL;
    PERFORM pg_sleep(0.01);
  END LOOP;

  -- each row's outcome, as deployed (here, on the coordinator: the memories found are values now)
  SELECT array_agg(c.mid ORDER BY c.i), array_agg(c.outcome ORDER BY c.i), array_agg(c.owner ORDER BY c.i),
         array_agg(c.hb ORDER BY c.i), array_agg(CASE WHEN c.outcome = 'stored' THEN public.l2_normalize(c.e) END ORDER BY c.i)
    INTO c_ids, c_outcomes, c_owners, c_hashes, c_vectors
    FROM (
      WITH input AS (
        SELECT u.mid, lower(u.h) AS h, u.e, u.i FROM unnest(memory_ids, content_hashes, embeddings) WITH ORDINALITY AS u(mid, h, e, i)
      ), found AS (
        -- the memory where the directory says it is
        SELECT f.id, f.owner_id, f.content_hash
          FROM unnest(found_ids, found_owners, found_hashes) AS f(id, owner_id, content_hash)
          JOIN unnest(dir_ids, dir_owners) AS d(mid, owner) ON d.mid = f.id AND d.owner = f.owner_id
      )
      SELECT i.mid, i.i, i.e, m.owner_id AS owner,
             CASE WHEN i.h ~ '^[0-9a-f]{64}$' THEN decode(i.h, 'hex') END AS hb,
             CASE WHEN i.mid IS NULL THEN 'no_memory'
                  WHEN i.i > min(i.i) OVER (PARTITION BY i.mid) THEN 'duplicate'
                  WHEN m.id IS NULL THEN 'no_memory'
                  WHEN i.h IS NULL OR i.h !~ '^[0-9a-f]{64}$' THEN 'invalid_hash'
                  WHEN decode(i.h, 'hex') <> m.content_hash THEN 'hash_mismatch'
                  WHEN i.e IS NULL THEN 'invalid_vector'
                  WHEN public.vector_dims(i.e) <> target.dimension THEN 'wrong_dimension'
                  WHEN public.vector_norm(i.e) IN (0, 'NaN'::float8, 'Infinity'::float8) THEN 'invalid_vector'
                  ELSE 'stored' END AS outcome
        FROM input AS i LEFT JOIN found AS m ON m.id = i.mid) AS c;

  -- stored, mirrored (the active model's vector is also memories.embedding: search(), the graph, as
  -- complete_embedding_jobs() writes it) and finished, per shard of memories: the owners hashed to one shard together
  FOR grp IN SELECT array_agg(DISTINCT g.owner) AS owners, array_agg(g.owner) AS o, array_agg(g.mid) AS ids,
                    array_agg(g.hb) AS hbs, array_agg(g.emb) AS embs
               FROM (SELECT u.mid, u.owner, u.hb, u.emb,
                            pg_catalog.get_shard_id_for_distribution_column('memoriesdb.memories', u.owner) AS sh
                       FROM unnest(c_ids, c_outcomes, c_owners, c_hashes, c_vectors) AS u(mid, outcome, owner, hb, emb)
                      WHERE u.outcome = 'stored') AS g
              GROUP BY g.sh ORDER BY g.sh LOOP
    INSERT INTO memoriesdb.embeddings AS e (owner_id, memory_id, model_id, content_hash, embedding)
    SELECT u.o, u.mid, target.id, u.hb, u.emb FROM unnest(grp.o, grp.ids, grp.hbs, grp.embs) AS u(o, mid, hb, emb)
    ON CONFLICT ON CONSTRAINT embeddings_pkey DO UPDATE SET content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding;
    IF target.state = 'active' THEN
      UPDATE memoriesdb.memories AS m
         SET embedding = u.emb, embedding_model = target.name, embedded_at = now(), embedded_hash = u.hb
        FROM unnest(grp.ids, grp.hbs, grp.embs) AS u(mid, hb, emb)
       WHERE m.owner_id = ANY (grp.owners) AND m.id = u.mid AND m.content_hash = u.hb;
    END IF;
    -- the (memory, model) job for this content is done: no worker embeds it again. A job a worker holds
    -- (leased, even past its lease) is left to finish: its complete stores the same content's vector;
    -- removed under it, the complete would take it for a lost lease (and check the vector against the mirror)
    DELETE FROM memoriesdb.embedding_schedule AS s
     USING unnest(grp.ids, grp.hbs) AS u(mid, hb)
     WHERE s.owner_id = ANY (grp.owners) AND s.memory_id = u.mid AND s.model_id = target.id AND s.content_hash = u.hb
       AND s.lease_id IS NULL;
  END LOOP;
  RETURN QUERY SELECT u.mid, u.oc FROM unnest(c_ids, c_outcomes) WITH ORDINALITY AS u(mid, oc, i) ORDER BY u.i;
END
$$;

-- 3r. authenticate() and vouch() in an implicit transaction ---------------------------------------------------------
-- The proof binds the distributed transaction id (section 1). Citus assigns one only when the transaction starts a
-- coordinated transaction: a transaction block's first query on a table does, but in an implicit transaction (one
-- statement, autocommit) a read of a reference table on the coordinator's own placement does not (a read-only task
-- opens no remote transaction there). So `SELECT memoriesdb.authenticate(key)` in autocommit, as its first call,
-- minted its proof over no id: context_proof() was NULL and authenticate() failed with "syntax error at or near
-- NULL" (SET LOCAL app.current_user_proof = NULL; measured, red team of the fifth slice: it failed closed). Now the
-- id is assigned first, the way Citus assigns it for an intermediate result (create_intermediate_result() starts the
-- coordinated transaction; the result is empty, written on this node only, and removed at the transaction's end):
-- authenticate() and vouch() then work in autocommit as on a single node (the context lasts for that one statement;
-- the calls of that statement carry it to the workers, section 4c). Where Citus's function is not executable (a
-- hardened cluster), or no id was assigned, the call fails with MDB33 instead of minting a proof over nothing.
-- Tests: db/citus/tests/17-import-and-context.sql.
CREATE FUNCTION memoriesdb_internal.citus_ensure_transaction_id() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.get_current_transaction_id() AS t WHERE t.transaction_number <> 0)
     AND has_function_privilege('pg_catalog.create_intermediate_result(text, text)', 'EXECUTE') THEN
    PERFORM pg_catalog.create_intermediate_result('memoriesdb_context', 'SELECT 1 WHERE false');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.get_current_transaction_id() AS t WHERE t.transaction_number <> 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB33', MESSAGE = 'no distributed transaction to bind the context to',
      DETAIL = 'on Citus a context is proven for one distributed transaction, and this implicit transaction has no id yet',
      HINT = 'call it inside a transaction block: BEGIN; SELECT memoriesdb.authenticate(...); ... COMMIT;';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_ensure_transaction_id() IS
  'Internal (Citus): makes sure the transaction has a distributed transaction id, which the context''s proof binds (Citus assigns it for an intermediate result: an empty one, on this node); MDB33 when none can be assigned. Called by authenticate() and vouch() before they mint a proof.';
SELECT pg_temp.patch('memoriesdb.authenticate(text)',
  $x$  EXECUTE format('SET LOCAL app."current_user" = %L', r.user_id);$x$,
  $x$  PERFORM memoriesdb_internal.citus_ensure_transaction_id();   -- (Citus: section 3r; MDB33)
  EXECUTE format('SET LOCAL app."current_user" = %L', r.user_id);$x$);
SELECT pg_temp.patch('memoriesdb.vouch(uuid)',
  $x$  EXECUTE format('SET LOCAL app."current_user" = %L', vouch.user_id);$x$,
  $x$  PERFORM memoriesdb_internal.citus_ensure_transaction_id();   -- (Citus: section 3r; MDB33)
  EXECUTE format('SET LOCAL app."current_user" = %L', vouch.user_id);$x$);

-- 3s. search() reads the grantors once -------------------------------------------------------------------------
-- A search read memoriesdb_internal.grantors (section 3j: one router query to the caller's shard) once for its exact
-- plan's shared rows (vector_ranking()) and again for the plan's count of the caller's grants (choose_search_plan()
-- -> visible_counts()): twice per search; a caller past search_exact_max four times (the counts again, and the
-- owners whose shards the plan measures: citus_search_owners()), five with the index plan (measured:
-- pg_stat_xact_user_functions with track_functions = pl, one search per transaction). vector_ranking() reads them
-- once and hands them down: choose_search_plan(), visible_counts() and citus_search_owners() take them as an
-- argument (made from the deployed text: the same plan, the same counts). One read per search, whatever the plan.
-- (The other callers keep the forms that read them themselves.) Test: db/citus/tests/17-import-and-context.sql.
-- visible_counts(cap, use_stats, grantors) and choose_search_plan(f, uid, linked, k, grantors): the deployed (and
-- patched) functions with the grantors as an argument, created from their text, owned and granted as they are
SELECT pg_temp.patch_many('memoriesdb_internal.visible_counts(bigint, boolean)',
  ARRAY['visible_counts(cap bigint, use_stats boolean, OUT',
        'citus_grantors uuid[] := memoriesdb_internal.citus_grantors(uid);   -- (Citus §3j)'],
  ARRAY['visible_counts(cap bigint, use_stats boolean, grantors uuid[], OUT',
        'citus_grantors uuid[] := grantors;   -- (Citus §3j, §3s: read by the caller)']);
SELECT pg_temp.patch_many('memoriesdb_internal.choose_search_plan(jsonb, uuid, uuid[], integer)',
  ARRAY['choose_search_plan(f jsonb, uid uuid, linked uuid[], k integer, OUT',
        'memoriesdb_internal.visible_counts(exact_max, false)',
        'memoriesdb_internal.citus_search_owners(f)',
        'ELSE cap END, true)',
        'memoriesdb_internal.visible_counts(cap, true)'],
  ARRAY['choose_search_plan(f jsonb, uid uuid, linked uuid[], k integer, grantors uuid[], OUT',
        'memoriesdb_internal.visible_counts(exact_max, false, grantors)',
        'memoriesdb_internal.citus_search_owners(f, grantors)',
        'ELSE cap END, true, grantors)',
        'memoriesdb_internal.visible_counts(cap, true, grantors)']);
DO $d$
DECLARE
  x record;
BEGIN
  FOR x IN SELECT v.derived, p.proowner::regrole AS owner, p.proacl, obj_description(p.oid, 'pg_proc') AS note
             FROM (VALUES ('memoriesdb_internal.visible_counts(bigint, boolean)', 'memoriesdb_internal.visible_counts(bigint, boolean, uuid[])'),
                          ('memoriesdb_internal.choose_search_plan(jsonb, uuid, uuid[], integer)',
                           'memoriesdb_internal.choose_search_plan(jsonb, uuid, uuid[], integer, uuid[])')) AS v(original, derived)
             JOIN pg_proc AS p ON p.oid = v.original::regprocedure LOOP
    EXECUTE format('ALTER FUNCTION %s OWNER TO %I', x.derived, x.owner);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', x.derived);
    PERFORM pg_temp.run(format('GRANT EXECUTE ON FUNCTION %s TO %I', x.derived, a.grantee::regrole))
       FROM aclexplode(x.proacl) AS a WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> x.owner;
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', x.derived, x.note || ' (Citus §3s: with the context user''s grantors, read by the caller.)');
  END LOOP;
END
$d$;
SELECT pg_temp.patch_many('memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)',
  ARRAY['memoriesdb_internal.choose_search_plan(f, uid, linked, k)', 'memoriesdb_internal.citus_search_owners(f);'],
  ARRAY['memoriesdb_internal.choose_search_plan(f, uid, linked, k, citus_grantors)',
        'memoriesdb_internal.citus_search_owners(f, citus_grantors);']);

-- 3m. The embedding models' lifecycle on the cluster ---------------------------------------------------------------
-- activate_model() (measured: 33-models through the coordinator; every later model test failed with it): its
-- completeness check joined memories and embeddings on the memory id only ("complex joins are only supported when all
-- distributed tables are co-located and joined on their distribution columns"), and so did the mirror's rewrite (an
-- UPDATE ... FROM embeddings) and its sweep of the vectors of other models (NOT EXISTS, correlated on the id). Each on
-- the owner too: the count and both UPDATEs are then pushed down to every shard, each shard joining its own rows.
SELECT pg_temp.patch_many('memoriesdb.activate_model(text)',
  ARRAY['LEFT JOIN memoriesdb.embeddings AS e ON e.memory_id = m.id AND e.model_id = target.id;',
        'WHERE e.memory_id = m.id AND e.model_id = target.id;',
        'WHERE e.memory_id = m.id AND e.model_id = target.id);'],
  ARRAY['LEFT JOIN memoriesdb.embeddings AS e ON e.owner_id = m.owner_id AND e.memory_id = m.id AND e.model_id = target.id;   -- (Citus: section 3m)',
        'WHERE e.owner_id = m.owner_id AND e.memory_id = m.id AND e.model_id = target.id;',
        'WHERE e.owner_id = m.owner_id AND e.memory_id = m.id AND e.model_id = target.id);']);
-- A model of another dimension retypes memories.embedding in the call, as on a single node: the vindexing trigger
-- dropped, ALTER COLUMN TYPE, the trigger created again. Citus propagates each to the workers' copies of the table and
-- to every shard (measured: in one transaction after the mirror's multi-shard UPDATE, as memoriesdb_owner, the
-- function's owner, who logs in on the workers; vector(N) on all 32 shards and both workers' tables, the trigger on
-- every shard as enqueue_vindexing_<shard>, as distribute.sql made them). Only the trigger's DROP and CREATE are refused
-- ("triggers are not supported on distributed tables", measured) unless citus.enable_unsafe_triggers is on, as this
-- file sets it for the ledger's own triggers (the top: they run on the shards by design): on for the call. Kept in
-- the call rather than left to a deploy step, because the retype is what keeps the mirror of one dimension: a
-- worker's late completion of the previous model's job (another dimension) fails on the new column type instead of
-- writing a vector that search() could not compare; and an operator's one command stays one command. Its cost, as on
-- a single node, is a rewrite of the table with every tenant's reads and writes waiting for the commit, here of every
-- shard until the two-phase commit: measured with 157 memories (load average 6 on 2 cores), 1.6-2.5 s with the
-- retype, 0.8-0.9 s without (the single node: 0.1-0.25 s either way). Activation is a rare operator call.
ALTER FUNCTION memoriesdb.activate_model(text) SET citus.enable_unsafe_triggers = on;

-- search() by the name of a model that is not the active one (a filling or paused model, as an operator checks it
-- before activate_model()): its index plan joined embeddings and memories on the id only, twice (the index scan, then
-- the rows read back with their vectors), "the query contains a join that requires repartitioning" (measured: this
-- file's test, 16-models.sql). As vector_ranking()'s (section 3e): joined on the owner too, on the owners' shards only,
-- the similarities taken with the ids in the index scan's statement, the rows then read by id.
SELECT pg_temp.patch_many('memoriesdb_internal.model_vector_ranking(public.vector, uuid, integer, integer, jsonb, real)',
  ARRAY[E'  ids uuid[];\n',
        'SELECT array_agg(r.memory_id ORDER BY r.distance) FROM (',
        'OPERATOR(public.<=>) $1 AS distance
          FROM memoriesdb.embeddings AS e JOIN memoriesdb.memories AS m ON m.id = e.memory_id',
        'WHERE e.model_id = %2$L::uuid AND',
        'INTO ids USING q, f, uid, linked, k;',
        $x$        SELECT m.id, (-(e.embedding OPERATOR(public.<#>) q))::real, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
          FROM unnest(ids) WITH ORDINALITY AS u(id, ord) JOIN memoriesdb.memories AS m ON m.id = u.id
          JOIN memoriesdb.embeddings AS e ON e.memory_id = m.id AND e.model_id = model_vector_ranking.model_id
         WHERE min_similarity IS NULL OR -(e.embedding OPERATOR(public.<#>) q) >= min_similarity$x$],
  ARRAY[E'  ids uuid[];\n  sims real[];\n',
        'SELECT array_agg(r.memory_id ORDER BY r.distance), array_agg(r.similarity ORDER BY r.distance) FROM (',
        'OPERATOR(public.<=>) $1 AS distance, (-(e.embedding OPERATOR(public.<#>) $1))::real AS similarity
          FROM memoriesdb.embeddings AS e JOIN memoriesdb.memories AS m ON m.owner_id = e.owner_id AND m.id = e.memory_id',
        'WHERE e.model_id = %2$L::uuid AND e.owner_id = ANY ($6) AND',
        'INTO ids, sims USING q, f, uid, linked, k, memoriesdb_internal.citus_search_owners(f);   -- (Citus: section 3m)',
        $x$        SELECT m.id, u.sim, m.content, m.metadata, m.owner_id, m.created_by, m.created_at
          FROM unnest(ids, sims) WITH ORDINALITY AS u(id, sim, ord) JOIN memoriesdb.memories AS m ON m.id = u.id
         WHERE min_similarity IS NULL OR u.sim >= min_similarity$x$]);

-- 3o. The history's times and a grantee's view of transfers ------------------------------------------------------
-- (a) The history's times (measured: the single-node suite's 27-as-of, 23 of 48). An audit row's time, and a row's
-- created_at/updated_at, were the distributed transaction's stamp (citus_now(), section 3h): Citus takes it when the
-- transaction first touches a distributed or reference table, 0.2-0.3 ms after the coordinator's now() of the same
-- transaction (more when the client waits between BEGIN and its first call). A client sees now() as the change's time,
-- and on a single node every row and audit row of the transaction has it: recall_as_of() and who_could_read() at that
-- now() answered the state before the change. The coordinator's transaction_timestamp() is now set with the context
-- (authenticate(), vouch()) and carried to the workers by every API call before it writes (section 4c) as app.citus_now
-- = '<microseconds since the epoch>:<proof>', and citus_now() uses it on every node. A client can SET LOCAL any app.*
-- setting, which Citus propagates, so the value is believed only with its proof: the context key's HMAC
-- (context_proof(), as authenticate() mints a context's) over ["citus_now", <microseconds>] and the distributed
-- transaction (initiating backend, number, stamp). Only authenticate(), vouch() and the carry mint it, over the
-- coordinator's own transaction_timestamp() (the owner's functions, which read the key): a client can neither choose
-- the time nor reuse another transaction's value (a JSON array of two elements is no context's subject, which is one of
-- three: no proof serves as the other). And the time must not be after the stamp (the coordinator starts its
-- transaction before it takes the stamp). Without a proven value (a worker's local transaction, a write before any
-- carry, a value the client set itself, which the next call's carry replaces with this transaction's on every node) it
-- is the stamp as before, never a time the client chose; with no distributed transaction yet, now(). Tests:
-- db/citus/tests/18-as-of-times.sql (the back-dating attacks).
CREATE OR REPLACE FUNCTION memoriesdb_internal.citus_now() RETURNS timestamptz
LANGUAGE plpgsql STABLE
-- (no SET clause, every name qualified, as context_proof(): it runs for every row stamped and every audit row, and a
-- function's SET costs about 8 of the 60 µs of a call, measured on the loaded coordinator; its callers pin theirs)
AS $$
DECLARE
  t record;
  carried text := pg_catalog.current_setting('app.citus_now', true);
  at timestamptz;
BEGIN
  SELECT x.transaction_number, x.transaction_stamp INTO t FROM pg_catalog.get_current_transaction_id() AS x;
  IF t.transaction_number IS NULL OR t.transaction_number OPERATOR(pg_catalog.=) 0 THEN
    RETURN pg_catalog.now();
  END IF;
  IF carried OPERATOR(pg_catalog.~) '^[0-9]{1,17}:[0-9a-f]{64}$' THEN   -- (the proof checked only when it may be one)
    -- (exact: an integer of microseconds)
    at := 'epoch'::pg_catalog.timestamptz
          OPERATOR(pg_catalog.+) (pg_catalog.split_part(carried, ':', 1)::pg_catalog.int8 OPERATOR(pg_catalog.*) '1 microsecond'::pg_catalog.interval);
    IF at OPERATOR(pg_catalog.<=) t.transaction_stamp
       AND memoriesdb.context_proven(pg_catalog.jsonb_build_array('citus_now', pg_catalog.split_part(carried, ':', 1))::pg_catalog.text,
                                     pg_catalog.split_part(carried, ':', 2)) THEN
      RETURN at;
    END IF;
  END IF;
  RETURN t.transaction_stamp;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_now() IS
  'Internal (Citus): the time of the transaction''s changes, the same on every node: the coordinator''s transaction_timestamp() as carried by the API call (app.citus_now, proven by the context key''s HMAC over it and the distributed transaction: section 3o), else the distributed transaction''s stamp, else now(). stamp_row() and the audit rows stamp with it, so every replica of a reference table gets the same row and the history answers at the client''s now() as on a single node.';

-- The value is minted where the key is read anyway: by authenticate() and vouch() (their read of context_key for the
-- context's proof), and by the carry when there is none (a call in a transaction without them). Measured: reading
-- the key through Citus in every call cost 0.4 ms of the coordinator per call (recall() +0.5 ms, remember() +1 ms, p50).
CREATE FUNCTION memoriesdb_internal.citus_now_tag(ipad bytea, opad bytea) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT u.at_us::text || ':' || memoriesdb_internal.context_proof(jsonb_build_array('citus_now', u.at_us::text)::text, ipad, opad)
    FROM (SELECT (EXTRACT(epoch FROM transaction_timestamp()) * 1000000)::bigint AS at_us) AS u
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_now_tag(bytea, bytea) IS
  'Internal (Citus): the value of app.citus_now for this transaction, ''<transaction_timestamp() in microseconds since the epoch>:<proof>'', the proof the context key''s HMAC (its pads given) over ["citus_now", microseconds] and the distributed transaction; NULL before the transaction has a distributed transaction id (section 3o).';
ALTER FUNCTION memoriesdb_internal.citus_now_tag(bytea, bytea) OWNER TO memoriesdb_owner;
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_now_tag(bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.citus_now_tag(bytea, bytea) TO memoriesdb_reader;

CREATE FUNCTION memoriesdb_internal.citus_carry_now() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER   -- (the context key, when it mints)
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  at_us bigint := (EXTRACT(epoch FROM transaction_timestamp()) * 1000000)::bigint;
  tag text := current_setting('app.citus_now', true);
BEGIN
  -- the value authenticate() or vouch() minted (or an earlier call), when it holds for this transaction: carried as it
  -- is (its proof checked here: the node's own placement of the key, no query through Citus)
  IF tag IS NULL OR split_part(tag, ':', 1) <> at_us::text
     OR NOT coalesce(memoriesdb.context_proven(jsonb_build_array('citus_now', at_us::text)::text, split_part(tag, ':', 2)), false) THEN
    -- none, or not this transaction's (the client's own): minted here. (The read of context_key, a reference table,
    -- assigns the distributed transaction id the proof binds when the transaction has none yet.)
    SELECT memoriesdb_internal.citus_now_tag(ck.ipad, ck.opad) INTO tag FROM memoriesdb_internal.context_key AS ck;
  END IF;
  IF tag IS NOT NULL THEN
    EXECUTE format('SET LOCAL app.citus_now = %L', tag);
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_carry_now() IS
  'Internal (Citus): SET LOCAL app.citus_now (propagated by Citus) to this transaction''s value: the one already set when its proof holds (authenticate() and vouch() set it), else minted (citus_now_tag()). citus_carry_context() runs it one executor level down in every API call; citus_now() believes the value on every node (section 3o). true.';
ALTER FUNCTION memoriesdb_internal.citus_carry_now() OWNER TO memoriesdb_owner;
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_carry_now() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.citus_carry_now() TO memoriesdb_reader;   -- (the read functions' carry)
-- (citus_carry_context(), created in section 4c, runs it: patched there)
-- authenticate() and vouch(): the value minted in their read of the key, set with the context
SELECT pg_temp.patch_many('memoriesdb.authenticate(text)',
  ARRAY[E'DECLARE\n',
        $x$  EXECUTE format('SET LOCAL app.current_user_proof = %L', (SELECT memoriesdb_internal.context_proof(
                   jsonb_build_array(r.user_id::text, session_user::text, NULL::text)::text, ck.ipad, ck.opad)
     FROM memoriesdb_internal.context_key AS ck));$x$],
  ARRAY[E'DECLARE\n  citus_proof text;\n  citus_now_tag text;\n',
        $x$  SELECT memoriesdb_internal.context_proof(jsonb_build_array(r.user_id::text, session_user::text, NULL::text)::text, ck.ipad, ck.opad),
         memoriesdb_internal.citus_now_tag(ck.ipad, ck.opad)   -- (Citus: section 3o)
    INTO citus_proof, citus_now_tag FROM memoriesdb_internal.context_key AS ck;
  EXECUTE format('SET LOCAL app.current_user_proof = %L', citus_proof);
  IF citus_now_tag IS NOT NULL THEN
    EXECUTE format('SET LOCAL app.citus_now = %L', citus_now_tag);
  END IF;$x$]);
SELECT pg_temp.patch_many('memoriesdb.vouch(uuid)',
  ARRAY[E'DECLARE\n',
        $x$  EXECUTE format('SET LOCAL app.current_user_proof = %L',
                 (SELECT memoriesdb_internal.context_proof(jsonb_build_array(vouch.user_id::text, login, login)::text, ck.ipad, ck.opad)
                    FROM memoriesdb_internal.context_key AS ck));$x$],
  ARRAY[E'DECLARE\n  citus_proof text;\n  citus_now_tag text;\n',
        $x$  SELECT memoriesdb_internal.context_proof(jsonb_build_array(vouch.user_id::text, login, login)::text, ck.ipad, ck.opad),
         memoriesdb_internal.citus_now_tag(ck.ipad, ck.opad)   -- (Citus: section 3o)
    INTO citus_proof, citus_now_tag FROM memoriesdb_internal.context_key AS ck;
  EXECUTE format('SET LOCAL app.current_user_proof = %L', citus_proof);
  IF citus_now_tag IS NOT NULL THEN
    EXECUTE format('SET LOCAL app.citus_now = %L', citus_now_tag);
  END IF;$x$]);
-- stamp_row(): the time once per row (it was asked for twice per insert: each check of the proof costs)
SELECT pg_temp.patch_many('memoriesdb_internal.stamp_row()',
  ARRAY[E'  actor uuid := memoriesdb.current_user_id();\n', 'NEW.created_at := memoriesdb_internal.citus_now();',
        'NEW.updated_at := memoriesdb_internal.citus_now();'],
  ARRAY[E'  actor uuid := memoriesdb.current_user_id();\n  stamped_at timestamptz := memoriesdb_internal.citus_now();   -- (Citus: section 3o)\n',
        'NEW.created_at := stamped_at;', 'NEW.updated_at := stamped_at;']);

-- (b) A grantee's view of a memory's transfers (measured: a grantee's provenance() had no "transferred" event; the
-- single-node suite, 06-transfer; db/citus/tests/11-single-node-parity.sql). On a single node the transfer rows are
-- visible to whoever may see the memory (memory_transfers_visible: memory_id IN (SELECT id FROM memories), the memories
-- policy applied as the caller). On Citus a policy cannot look the memory up elsewhere (a transfer row lives on its
-- receiver's shard, the memory on its owner's, maybe another node: section 2), so the shards' policy shows them to the
-- memory's current owner only (citus_owns_memory()). provenance() found the memory visible first (the owner, or a
-- grant on the owner's shard, section 3i); it now reads the transfer rows with the owner's rights, through a helper
-- that checks that visibility again (the same two router queries as provenance()'s: no other caller shows them), and
-- shows their users by the same pseudonyms (disclosed_user(), on the coordinator, as on a single node). A direct
-- SELECT of memory_transfers by an app login still shows the owner's only.
CREATE FUNCTION memoriesdb_internal.citus_memory_transfers(memory_id uuid)
RETURNS TABLE (created_at timestamptz, created_by uuid, from_owner uuid, to_owner uuid, note text)
LANGUAGE plpgsql STABLE SECURITY DEFINER   -- (the owner's rights: every receiver's shard)
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  viewer uuid := memoriesdb.current_user_id();
  owner uuid := memoriesdb_internal.citus_owner_of(citus_memory_transfers.memory_id);
BEGIN
  IF viewer IS NULL OR owner IS NULL
     OR NOT (owner = viewer OR memoriesdb_internal.citus_granted(owner, citus_memory_transfers.memory_id)) THEN
    RETURN;   -- (the memory is not the caller's to see: nothing)
  END IF;
  RETURN QUERY SELECT x.created_at, x.created_by, x.from_owner, x.to_owner, x.note
                 FROM memoriesdb.memory_transfers AS x WHERE x.memory_id = citus_memory_transfers.memory_id;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_memory_transfers(uuid) IS
  'Internal (Citus): the transfer rows of a memory the caller may see (its owner, or a grantee: the single node''s memory_transfers_visible), read with the owner''s rights from every receiver''s shard; nothing for a memory the caller may not see. provenance() reads them so (section 3o).';
ALTER FUNCTION memoriesdb_internal.citus_memory_transfers(uuid) OWNER TO memoriesdb_owner;
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_memory_transfers(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.citus_memory_transfers(uuid) TO memoriesdb_reader;   -- (provenance()'s owner)
-- The events are gathered first, each in a statement of its own, and shown on the coordinator: in one query the
-- revisions' router query (the owner's shard) made Citus push the whole query to that worker, the helper and
-- disclosed_user() with it ("cannot execute a distributed query from a query on a shard", measured).
SELECT pg_temp.patch_many('memoriesdb.provenance(uuid)',   -- (in this order: the fourth adds the two reads, the old FROMs)
  ARRAY[E'  owner uuid;\n',
        'FROM memoriesdb.memory_revisions AS r WHERE r.owner_id = owner AND r.memory_id = provenance.memory_id',
        'FROM memoriesdb.memory_transfers AS x WHERE x.memory_id = provenance.memory_id',
        E'  RETURN QUERY   -- user ids the caller does not deal with are shown as pseudonyms (disclosed_user())\n'],
  ARRAY[E'  owner uuid;\n  citus_revisions jsonb;\n  citus_transfers jsonb;\n',
        'FROM jsonb_to_recordset(coalesce(citus_revisions, ''[]'')) AS r(created_at timestamptz, created_by uuid, revision integer, content_hash bytea)',
        'FROM jsonb_to_recordset(coalesce(citus_transfers, ''[]'')) AS x(created_at timestamptz, created_by uuid, from_owner uuid, to_owner uuid, note text)',
        E'  -- (Citus: section 3o) the revisions on the owner\'s shard, the transfers with the owner\'s rights, then the rest here
  citus_revisions := (SELECT jsonb_agg(jsonb_build_object(\'created_at\', r.created_at, \'created_by\', r.created_by,
                                                          \'revision\', r.revision, \'content_hash\', r.content_hash))
                        FROM memoriesdb.memory_revisions AS r WHERE r.owner_id = owner AND r.memory_id = provenance.memory_id);
  citus_transfers := (SELECT jsonb_agg(to_jsonb(t)) FROM memoriesdb_internal.citus_memory_transfers(provenance.memory_id) AS t);
  RETURN QUERY   -- user ids the caller does not deal with are shown as pseudonyms (disclosed_user())\n']);

-- 4g. Clients on the workers ---------------------------------------------------------------------------------------
-- A worker is a PostgreSQL server with the ledger's database, its functions and, through Citus, every client login
-- (test_setup.psql's and configure_login()'s roles are propagated; citus.sh migrate copies the logins there). Red
-- team (db/citus/tests/19-redteam-workers.sql), measured before this section: a backend login connected to a worker
-- vouched there and remember() wrote a memory on the shard; and it needed no route to the worker at all: from the
-- coordinator, run_command_on_workers($$SELECT memoriesdb.vouch(u); SELECT memoriesdb.remember(...)$$) (Citus's UDF,
-- executable by PUBLIC) opened connections to the workers as the backend's own login, from the coordinator's address
-- (which the workers' pg_hba.conf must admit), and wrote one memory per worker. Reads there failed only by accident
-- (recall(): "schema memoriesdb_dblink does not exist", the access log's writer is the coordinator's; authenticate():
-- "relation memoriesdb.access_log does not exist"). Two layers, neither needing the other:
--   1. the ledger's database on a worker admits the roles Citus connects as and no client: CONNECT revoked from
--      PUBLIC, granted to memoriesdb_owner and memoriesdb_reader (the SECURITY DEFINER functions' owners) and
--      memoriesdb_auditor (Citus connects as the current role, and an auditor login SELECTs the audit tables through
--      the coordinator itself). Measured, the whole Citus suite: the workers saw connections as memoriesdb_owner,
--      memoriesdb_reader and postgres only. Per database and per node, not propagated (the coordinator's clients
--      keep CONNECT there): citus_close_workers() below, run after the commit, and again after citus_add_node();
--      citus_worker_access() reports a worker where it does not hold (a GRANT ON DATABASE on the coordinator is
--      propagated to the workers by Citus, and a copy made with CREATE DATABASE ... TEMPLATE has the default ACL).
--   2. every API function refuses on a node that is not the coordinator (MDB34): authenticate() and vouch() (no
--      context can be set on a worker) and, through the context carry every other API call runs first (section 4c),
--      the rest. The node is citus_is_coordinator(): group 0 in pg_dist_local_group and nodes in pg_dist_node, catalog
--      tables a superuser writes; not application_name ('citus_internal gpid=...', which any client may send) nor
--      session_user (Citus connects as the auditor's own login). No API function runs on a worker for Citus (measured:
--      the whole suite with the refusal in place); the shards' policies and triggers call current_user_id(),
--      context_proven() and setting(), which stay callable there (no memory read; the proof needs the key).
--   What stays a rule of the deployment: the roles that may connect (memoriesdb_owner above all: the tables' owner,
--   BYPASSRLS) must authenticate on the workers with a credential only the cluster's nodes hold (pg_dist_authinfo,
--   or certificates), from the nodes' addresses only; citus_worker_access() reads each worker's pg_hba.conf and
--   names the rules that admit more (docs/citus.md, section 1: clients on the workers).
CREATE FUNCTION memoriesdb_internal.citus_refuse_off_coordinator() RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stack text;
BEGIN
  IF pg_catalog.citus_is_coordinator() THEN
    RETURN true;
  END IF;
  -- (not written to the access log: its writer is the coordinator's; nothing was read or decided)
  GET DIAGNOSTICS stack = PG_CONTEXT;
  RAISE EXCEPTION USING ERRCODE = 'MDB34', MESSAGE = 'the ledger answers on the coordinator only',
    DETAIL = format('%s called on a Citus worker (port %s) by %s',
                    coalesce((regexp_match(stack, 'function "?memoriesdb\.([a-z_]+)"?\(', 'n'))[1], 'an API function'),
                    coalesce(inet_server_port()::text, 'local socket'), session_user),
    HINT = 'connect to the coordinator; the workers admit the cluster''s nodes only (docs/citus.md, section 1)';
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_refuse_off_coordinator() IS
  'Internal (Citus): true on the coordinator; on any other node raises MDB34 (the ledger''s API answers on the coordinator only: a client connected to a worker, or relayed to one by run_command_on_workers(), gets no context and reads nothing there). authenticate(), vouch() and the context carry (hence every API call) run it first. citus_is_coordinator() reads catalog tables only a superuser writes.';
-- authenticate() and vouch(): as their first declaration (they do not carry the context: they set it)
SELECT count(pg_temp.run(regexp_replace(pg_get_functiondef(p.oid), '\mAS \$function\$\n((\s*#[^\n]*\n)*)',
         E'AS $function$\n\\1DECLARE\n  citus_on_coordinator boolean := memoriesdb_internal.citus_refuse_off_coordinator();   -- (Citus: section 4g)\n')))
  FROM pg_proc AS p
 WHERE p.oid IN ('memoriesdb.authenticate(text)'::regprocedure, 'memoriesdb.vouch(uuid)'::regprocedure);

-- The workers' side of layer 1, and its check: run by a superuser on the coordinator, after the commit (the
-- commands reach each worker over connections of their own) and after every citus_add_node() (a node added later
-- gets the database's owner from Citus, not its grants: measured, Citus 13.2.2 commands/dependencies.c).
CREATE FUNCTION memoriesdb_internal.citus_close_workers() RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $f$
DECLARE
  failed text;
  n integer;
BEGIN
  -- (propagation off on the worker: a GRANT ON DATABASE there would be sent on to the other nodes, and Citus refuses
  -- it off the coordinator) every grantee but the three loses CONNECT, PUBLIC included
  SELECT count(*), string_agg(format('%s:%s: %s', w.nodename, w.nodeport, w.result), '; ') FILTER (WHERE NOT w.success)
    INTO n, failed
    FROM run_command_on_workers(format($c$DO $d$
DECLARE
  g record;
BEGIN
  PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
  FOR g IN SELECT DISTINCT a.grantee FROM pg_database AS d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) AS a
            WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT' AND a.grantee <> d.datdba LOOP
    IF g.grantee = 0 THEN
      EXECUTE format('REVOKE CONNECT ON DATABASE %%I FROM PUBLIC', current_database());
    ELSIF g.grantee::regrole::text NOT IN ('memoriesdb_owner', 'memoriesdb_reader', 'memoriesdb_auditor') THEN
      EXECUTE format('REVOKE CONNECT ON DATABASE %%I FROM %%I', current_database(), g.grantee::regrole);
    END IF;
  END LOOP;
  EXECUTE format('GRANT CONNECT ON DATABASE %%I TO memoriesdb_owner, memoriesdb_reader, memoriesdb_auditor', current_database());
END
$d$$c$)) AS w;
  IF failed IS NOT NULL THEN
    RAISE EXCEPTION 'the ledger''s database could not be closed to clients on %', failed;
  END IF;
  RETURN n;
END
$f$;
COMMENT ON FUNCTION memoriesdb_internal.citus_close_workers() IS
  'Internal (Citus), for a superuser on the coordinator: on every worker, the ledger''s database admits (CONNECT) memoriesdb_owner, memoriesdb_reader and memoriesdb_auditor only, the roles Citus connects as, and no client login (PUBLIC''s CONNECT and every other grant revoked, on the workers only). Run by db/citus/distribute.sql and after citus_add_node(). Returns the number of workers.';

-- one worker's own check (run there by citus_worker_access()): the logins that may connect besides the three roles
-- and the superusers, and the pg_hba.conf rules (the node's own, or rules given as pg_hba_file_rules rows in JSON, for
-- a test) that let more than the cluster's nodes log in. A rule matters when it admits this database (by name, all,
-- or same*) to a role that may connect (by name, +group, or all); it is fine from a node's address (one host: /32,
-- /128, or a node's host name) with a credential; the host itself (loopback, samehost, local sockets) is left to the
-- host's own accounts.
CREATE FUNCTION memoriesdb_internal.citus_node_access_problems(nodes text[], rules jsonb DEFAULT NULL) RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
  net inet;
  who text;
BEGIN
  IF rules IS NULL THEN
    RETURN QUERY
      SELECT format('logins that may connect to %s: %s (only memoriesdb_owner, memoriesdb_reader and memoriesdb_auditor''s members may; memoriesdb_internal.citus_close_workers())',
                    current_database(), string_agg(a.rolname, ', ' ORDER BY a.rolname))
        FROM pg_roles AS a
       WHERE a.rolcanlogin AND NOT a.rolsuper AND has_database_privilege(a.oid, current_database(), 'CONNECT')
         AND NOT pg_has_role(a.oid, 'memoriesdb_owner', 'MEMBER') AND NOT pg_has_role(a.oid, 'memoriesdb_reader', 'MEMBER')
         AND NOT pg_has_role(a.oid, 'memoriesdb_auditor', 'MEMBER')
      HAVING count(*) > 0;
    rules := (SELECT jsonb_agg(to_jsonb(h)) FROM pg_hba_file_rules AS h);
  END IF;
  FOR r IN SELECT * FROM jsonb_to_recordset(coalesce(rules, '[]')) AS x(line_number integer, type text, database text[],
                                                                        user_name text[], address text, netmask text,
                                                                        auth_method text, error text) LOOP
    who := format('pg_hba.conf line %s (%s %s %s %s%s %s)', r.line_number, r.type, array_to_string(r.database, ','),
                  array_to_string(r.user_name, ','), coalesce(r.address, ''), coalesce('/' || r.netmask, ''), r.auth_method);
    IF r.error IS NOT NULL THEN
      RETURN NEXT format('%s: %s', who, r.error);
      CONTINUE;
    END IF;
    CONTINUE WHEN r.type = 'local' OR r.address = 'samehost'
               OR NOT (r.database && ARRAY['all', 'sameuser', 'samerole', 'samegroup', current_database()]::text[])
               OR NOT EXISTS (SELECT 1 FROM unnest(r.user_name) AS u
                               WHERE u = 'all' OR u LIKE '+%'
                                  OR EXISTS (SELECT 1 FROM pg_roles AS a WHERE a.rolname = u
                                              AND (a.rolsuper OR has_database_privilege(a.oid, current_database(), 'CONNECT'))));
    net := NULL;
    IF r.address ~ '^[0-9]{1,3}(\.[0-9]{1,3}){3}$|:' THEN   -- (an address; else all, samenet, a host or domain name)
      -- the rule's network: from its lowest to its highest address (inet_merge: the smallest network holding both)
      net := CASE WHEN r.netmask IS NULL THEN r.address::inet
                  ELSE inet_merge(r.address::inet & r.netmask::inet, r.address::inet | ~ r.netmask::inet) END;
      CONTINUE WHEN net <<= '127.0.0.0/8'::inet OR net <<= '::1/128'::inet;
    END IF;
    IF r.auth_method = 'trust' THEN
      RETURN NEXT format('%s: trust: whoever reaches this address logs in as any role that may connect (memoriesdb_owner: every shard) with no credential', who);
    END IF;
    IF r.address IN ('all', 'samenet') OR (net IS NOT NULL AND masklen(net) < CASE family(net) WHEN 4 THEN 32 ELSE 128 END) THEN
      RETURN NEXT format('%s: a range: it admits many addresses; only the cluster''s nodes (%s) may log in as the roles Citus connects as', who, array_to_string(nodes, ', '));
    -- (an address is compared with the nodes' names in pg_dist_node: when a node is registered by host name, an
    -- address rule cannot be told to be a node's, and only ranges and trust are reported)
    ELSIF coalesce(host(net), r.address) <> ALL (nodes)
          AND (net IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(nodes) AS n WHERE n !~ '^[0-9]{1,3}(\.[0-9]{1,3}){3}$|:')) THEN
      RETURN NEXT format('%s: another address: %s is not a node of the cluster (%s)', who, coalesce(host(net), r.address), array_to_string(nodes, ', '));
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_node_access_problems(text[], jsonb) IS
  'Internal (Citus), for a superuser on a worker (citus_worker_access() runs it on each): the client logins that may connect to the ledger''s database there, and the pg_hba.conf rules (this node''s, or the given pg_hba_file_rules rows as JSON) that let a role that may connect log in from more than the cluster''s nodes (a range, another address, trust); the host''s own (local sockets, loopback, samehost) is left to its accounts. One text per problem.';

CREATE FUNCTION memoriesdb_internal.citus_worker_access() RETURNS TABLE (node text, problem text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  nodes text[] := (SELECT array_agg(DISTINCT n.nodename ORDER BY n.nodename) FROM pg_dist_node AS n);
BEGIN
  RETURN QUERY
    SELECT format('%s:%s', w.nodename, w.nodeport),
           CASE WHEN w.success THEN p ELSE 'could not be checked: ' || w.result END
      FROM run_command_on_workers(format('SELECT string_agg(p, %L) FROM memoriesdb_internal.citus_node_access_problems(%L) AS p',
                                         E'\n', nodes)) AS w,
           LATERAL unnest(CASE WHEN w.success THEN string_to_array(nullif(w.result, ''), E'\n') ELSE ARRAY[w.result] END) AS p;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_worker_access() IS
  'Internal (Citus), for a superuser on the coordinator: what lets a client reach the ledger on a worker, per worker: client logins that may connect to its database (citus_close_workers() closes it), and pg_hba.conf rules that let the roles Citus connects as log in from more than the cluster''s nodes (a deployment rule: docs/citus.md, section 1). No rows: none found. db/citus/distribute.sql fails on the first kind and warns on the second.';

-- (again for the functions created or replaced since)
SELECT count(pg_temp.run(format('ALTER FUNCTION %s SET plan_cache_mode = force_custom_plan', p.oid::regprocedure)))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND p.prolang = (SELECT l.oid FROM pg_language AS l WHERE l.lanname = 'plpgsql')
   AND p.prosrc ~ '(FROM|JOIN|INTO|UPDATE)\s+memoriesdb'
   AND NOT coalesce('plan_cache_mode=force_custom_plan' = ANY (p.proconfig), false);

-- The API functions that lock a memory (FOR UPDATE, on its owner's shard) and then write its rows: one connection
-- per worker for the whole call. Measured (twice, share() after a transaction that ran link()): the owner lookup
-- on every shard opens several connections per worker; the lock went over one, the grant's INSERT (whose foreign
-- key needs a KEY SHARE lock on that row) over another, which waited for the first: the same distributed
-- transaction waiting for itself, cancelled "since it was involved in a distributed deadlock".
SELECT count(pg_temp.run(format('ALTER FUNCTION %s SET citus.max_adaptive_executor_pool_size = 1', f)))
  FROM unnest(ARRAY['memoriesdb.forget(uuid)', 'memoriesdb.share(uuid, uuid, text, timestamptz)', 'memoriesdb.transfer(uuid, uuid, text)',
                    'memoriesdb.revise(uuid, text, jsonb)', 'memoriesdb.link(uuid, uuid, text, real, jsonb)',
                    'memoriesdb.claim_model_embedding_jobs(integer, interval, text, text[])',
                    'memoriesdb.complete_embedding_jobs(uuid[], uuid[], public.vector[], text)']) AS f;

-- Distributing memories drops, by CASCADE, the functions whose signature names its row type (measured: Citus moves
-- the local rows into a shard and drops the old table: "drop cascades to function
-- memoriesdb_internal.matches_filter(memoriesdb.memories_102013, ...)", and visible_memories(uuid)): every ledger
-- function is saved here (definition, owner, grants, comment) and the missing ones are created again after step 4.
CREATE TEMP TABLE citus_saved_functions ON COMMIT DROP AS
  SELECT p.oid::regprocedure::text AS sig, pg_get_functiondef(p.oid) AS def, p.proowner::regrole::text AS owner,
         p.proacl, obj_description(p.oid, 'pg_proc') AS note
    FROM pg_proc AS p
   WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace);

-- Distributing a table dropped its COMMENT and its columns' (measured: memories, api_keys, memory_grants and nine more
-- had none after step 4; the single-node suite's 01-schema, "every table has a COMMENT"): saved here by name, set
-- again after step 4.
CREATE TEMP TABLE citus_saved_comments ON COMMIT DROP AS
  SELECT format('%I.%I', n.nspname, c.relname) AS tbl, a.attname, d.description
    FROM pg_description AS d
    JOIN pg_class AS c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
   WHERE n.nspname IN ('memoriesdb', 'memoriesdb_internal') AND c.relkind IN ('r', 'p');

-- Distributing memory_edges re-creates the materialized view memory_graph over it without its indexes (measured: no
-- unique index left, so REFRESH ... CONCURRENTLY failed): saved here, created again after step 4.
CREATE TEMP TABLE citus_saved_indexes ON COMMIT DROP AS
  SELECT i.indexname, i.indexdef FROM pg_indexes AS i WHERE i.schemaname = 'memoriesdb' AND i.tablename = 'memory_graph';

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
  'memoriesdb_internal.edge_type_links', 'memoriesdb_internal.memory_directory_key']) AS t;

-- by owner, colocated with memories
SELECT create_distributed_table('memoriesdb.memories', 'owner_id', shard_count => 32);
SELECT create_distributed_table(t, c, colocate_with => 'memoriesdb.memories') FROM (VALUES
  ('memoriesdb.memory_revisions', 'owner_id'), ('memoriesdb.memory_grants', 'owner_id'),
  ('memoriesdb.memory_transfers', 'to_owner'), ('memoriesdb.memory_edges', 'owner_id'),
  ('memoriesdb.embedding_schedule', 'owner_id'), ('memoriesdb.embeddings', 'owner_id'),
  ('memoriesdb.idempotency_keys', 'owner_id'), ('memoriesdb.memory_offers', 'sender_id'),
  ('memoriesdb_internal.query_cache', 'owner_id'), ('memoriesdb.vindexing_schedule', 'owner_id'),
  ('memoriesdb_internal.memory_words', 'owner_id'),
  ('memoriesdb.audit_log', 'chain_key'), ('memoriesdb.audit_seals', 'chain_key'),
  ('memoriesdb_internal.audit_chain_heads', 'chain'), ('memoriesdb_internal.audit_pending', 'chain'),
  ('memoriesdb_internal.memory_locations', 'slot'), ('memoriesdb_internal.grantors', 'grantee_id')) AS v(t, c);


-- the foreign keys to memories, now between colocated distributed tables (before, Citus refuses a local table's
-- foreign key to a distributed one)
ALTER TABLE memoriesdb.memory_revisions ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.memory_grants ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.memory_edges ADD FOREIGN KEY (owner_id, source_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.embedding_schedule ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.embeddings ADD FOREIGN KEY (owner_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memoriesdb.memory_offers ADD FOREIGN KEY (sender_id, memory_id) REFERENCES memoriesdb.memories (owner_id, id) ON DELETE CASCADE;
-- (idempotency_keys: Citus refuses ON DELETE SET NULL on a key that includes the distribution column: no foreign
-- key; forget() clears the key's memory_id itself: section 3c)

SELECT count(*) FROM (
  SELECT format('ALTER TABLE %s ENABLE TRIGGER USER', c.oid::regclass) AS ddl
    FROM pg_class AS c WHERE c.relkind = 'r' AND c.relnamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
) AS d, LATERAL (SELECT pg_temp.run(d.ddl)) AS r;

SELECT count(pg_temp.run(i.indexdef)) FROM citus_saved_indexes AS i
 WHERE to_regclass(format('memoriesdb.%I', i.indexname)) IS NULL;
SELECT count(pg_temp.run(CASE WHEN s.attname IS NULL THEN format('COMMENT ON TABLE %s IS %L', s.tbl, s.description)
                              ELSE format('COMMENT ON COLUMN %s.%I IS %L', s.tbl, s.attname, s.description) END))
  FROM citus_saved_comments AS s
 WHERE CASE WHEN s.attname IS NULL THEN obj_description(s.tbl::regclass, 'pg_class') IS NULL
            ELSE col_description(s.tbl::regclass, (SELECT a.attnum FROM pg_attribute AS a
                                                    WHERE a.attrelid = s.tbl::regclass AND a.attname = s.attname)) IS NULL END;


-- the functions the distribution dropped (see above), as they were; in no particular order, so a body is not checked
-- against functions not restored yet (matches_filter() calls filter_holds(), both dropped: measured, "function
-- memoriesdb_internal.filter_holds(...) does not exist" when matches_filter() came first)
SELECT set_config('check_function_bodies', 'off', false);
SELECT count(*) FROM (
  SELECT f.sig, pg_temp.run(f.def), pg_temp.run(format('ALTER FUNCTION %s OWNER TO %I', f.sig, f.owner)),
         pg_temp.run(format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig)),
         (SELECT count(pg_temp.run(format('GRANT EXECUTE ON FUNCTION %s TO %s', f.sig,
                   CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(a.grantee::regrole::text) END)))
            FROM aclexplode(f.proacl) AS a WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> (SELECT r.oid FROM pg_roles AS r WHERE r.rolname = f.owner)),
         pg_temp.run(format('COMMENT ON FUNCTION %s IS %L', f.sig, f.note))
    FROM citus_saved_functions AS f WHERE to_regprocedure(f.sig) IS NULL
) AS restored;
SELECT CASE WHEN EXISTS (SELECT 1 FROM citus_saved_functions AS f WHERE to_regprocedure(f.sig) IS NULL)
            THEN pg_temp.run('DO $d$ BEGIN RAISE EXCEPTION ''a ledger function dropped by the distribution was not restored''; END $d$') END;
RESET check_function_bodies;

-- Every API call with at most one connection per worker for a multi-shard query (measured by bench/citus.py with
-- the client's sessions so set: recall() with 8 clients 3.6x faster, a small search() 1.5x, the workers' CPU per
-- call a quarter to a half; the default opens up to 16 per worker in parallel, each a new worker backend). On the
-- functions, so that it holds for every client login without configuring it (those that lock have it already).
SELECT count(pg_temp.run(format('ALTER FUNCTION %s SET citus.max_adaptive_executor_pool_size = 1', p.oid::regprocedure)))
  FROM pg_proc AS p
 WHERE p.pronamespace = 'memoriesdb'::regnamespace AND p.prosecdef AND p.prokind = 'f'
   AND NOT coalesce('citus.max_adaptive_executor_pool_size=1' = ANY (p.proconfig), false);

-- 4b. The context's proof, checked per row by the policies on the shards ------------------------------------------
-- A policy on a distributed table may hold no subquery, so the shards' policies call current_user_id() per row
-- where the single node's take it once ((SELECT memoriesdb.current_user_id()), an init plan), and with it
-- context_proven(), which read the key through Citus (a reference table from a query on a shard: nested
-- distributed execution, planned by Citus at every call). Measured: about 145 µs of a worker's CPU per row of an
-- exact search. The key is read here from the reference table's placement on the node itself (every node has
-- one, under the same shard id, also a node added later), a plain local table: no Citus planning, no SET of
-- allow_nested_distributed_execution, no forced custom plan.
DO $d$
DECLARE
  placement text := (SELECT format('memoriesdb_internal.%I', 'context_key_' || s.shardid) FROM pg_dist_shard AS s
                      WHERE s.logicalrelid = 'memoriesdb_internal.context_key'::regclass);
BEGIN
  IF placement IS NULL THEN RAISE EXCEPTION 'context_key is not a reference table'; END IF;
  -- context_proof()'s expression written out: as a call it is a SQL function the planner cannot inline (it calls
  -- volatile Citus functions), planned again at every call: 88 µs per proof checked, against 10 µs (measured on
  -- a worker). Must stay what context_proof() computes (the Citus tests authenticate and read through it).
  EXECUTE format($f$CREATE OR REPLACE FUNCTION memoriesdb.context_proven(user_id text, proof text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $b$
BEGIN
  RETURN proof IS NOT NULL AND proof <> '' AND proof = (
    SELECT encode(sha256(k.opad || sha256(k.ipad || convert_to(user_id || '|citus|' || citus_backend_gpid()::text
             || '|' || t.initiator_node_identifier::text || '|' || t.transaction_number::text
             || '|' || (EXTRACT(epoch FROM t.transaction_stamp) * 1000000)::bigint::text, 'UTF8'))), 'hex')
      FROM %s AS k, get_current_transaction_id() AS t
     WHERE t.transaction_number <> 0);
END
$b$$f$, placement);
END
$d$;

-- 4c. One context per call, on every node ---------------------------------------------------------------------
-- The coordinator reads the context from its own settings, the workers from what was SET LOCAL (propagated);
-- set_config() and a session-level SET change the coordinator's only. Red team: a client that emptied its proof
-- with set_config() after authenticate() was nobody on the coordinator (which writes the access log) and itself
-- on the workers (which read): recall() of a memory shared with it returned the content logged with actor NULL;
-- with two keys, a read as one user on the workers was logged as the other. No setting a client can write tells
-- the coordinator what the workers hold, so every API call first carries the coordinator's context to them (SET
-- LOCAL: sent to the workers' connections already in the transaction, replayed on those opened later), before
-- anything else it does (as its first declaration: some declarations read tables). Cost: nothing to send when
-- the call opens its connections itself (the usual authenticate-then-call transaction); one round trip per
-- setting otherwise (bench/results/citus.md). Tests: db/citus/tests/09-context-carried.sql, 12-redteam-context.sql.
-- Citus propagates a SET LOCAL only in what it takes for a multi-statement transaction: a transaction block, a DO
-- block, or a function it sees being executed (an executor level below the client's statement, and then only with
-- citus.function_opens_transaction_block on, which a session may switch off). Red team: the carry ran as a PL/pgSQL
-- simple expression (no executor) at the level of the client's statement, so in an implicit transaction it
-- propagated nothing, while authenticate() one level down (query_to_xml('SELECT memoriesdb.authenticate(...)'))
-- did: the proof emptied on the coordinator then read as the user on the workers, logged with actor NULL; a second
-- authenticate() at the top, the coordinator's user logged for the workers' read. The SETs therefore run one
-- executor level down (a query with a FROM clause), with citus.function_opens_transaction_block pinned on.
CREATE FUNCTION memoriesdb_internal.citus_carry_setting(name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- never set in this session (NULL): never propagated either, nothing on the workers to overwrite
  IF current_setting(name, true) IS NOT NULL THEN
    EXECUTE format('SET LOCAL app.%I = %L', split_part(name, '.', 2), current_setting(name, true));
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_carry_setting(text) IS
  'Internal (Citus): SET LOCAL of one app.* context setting to its current value on the coordinator (propagated by Citus when called one executor level down, as citus_carry_context() does). true.';
ALTER FUNCTION memoriesdb_internal.citus_carry_setting(text) OWNER TO memoriesdb_owner;
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_carry_setting(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.citus_carry_setting(text) TO memoriesdb_reader;
CREATE FUNCTION memoriesdb_internal.citus_carry_context() RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET citus.propagate_set_commands = 'local'   -- whatever the session set (red team: it switched it off, then set_config)
SET citus.function_opens_transaction_block = on   -- (red team: switched off, a function's SET LOCAL is not propagated)
AS $$
BEGIN
  -- (on a worker: MDB34 before anything, section 4g; every API call but authenticate() and vouch() runs this first)
  PERFORM memoriesdb_internal.citus_refuse_off_coordinator();
  -- (a query, not a simple expression: an executor level down, where Citus propagates a SET LOCAL also in an
  -- implicit transaction)
  PERFORM memoriesdb_internal.citus_carry_setting(s.name)
     FROM unnest(ARRAY['app.current_user', 'app.current_user_proof', 'app.current_login', 'app.current_user_vouched_by']) AS s(name);
  RETURN true;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.citus_carry_context() IS
  'Internal (Citus): SET LOCAL of the coordinator''s context settings (app.current_user, app.current_user_proof, app.current_login, app.current_user_vouched_by), which Citus propagates to the workers: every API call runs it first, so that a context changed with set_config() or a session-level SET (seen by the coordinator only) is the one the workers apply too. true.';
ALTER FUNCTION memoriesdb_internal.citus_carry_context() OWNER TO memoriesdb_owner;   -- run by the API functions (as it)
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_carry_context() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoriesdb_internal.citus_carry_context() TO memoriesdb_reader;   -- (owner of the read functions)
-- the functions that set the context propagate it whatever the session set too
ALTER FUNCTION memoriesdb.authenticate(text) SET citus.propagate_set_commands = 'local';
ALTER FUNCTION memoriesdb.vouch(uuid) SET citus.propagate_set_commands = 'local';
-- PL/pgSQL: as the first declaration, after the body's compiler options (#variable_conflict), which come first
SELECT count(pg_temp.run(regexp_replace(pg_get_functiondef(p.oid), '\mAS \$function\$\n((\s*#[^\n]*\n)*)',
         E'AS $function$\n\\1DECLARE\n  citus_context_carried boolean := memoriesdb_internal.citus_carry_context();   -- (Citus: section 4c)\n')))
  FROM pg_proc AS p
 WHERE p.pronamespace = 'memoriesdb'::regnamespace AND p.prosecdef AND p.prokind = 'f'
   AND p.prolang = (SELECT l.oid FROM pg_language AS l WHERE l.lanname = 'plpgsql')
   -- these set the context themselves, or are called by the shards' policies and triggers
   AND p.proname NOT IN ('authenticate', 'vouch', 'context_proven', 'setting');
-- SQL: a statement before the body's (a SQL function returns its last statement's result)
SELECT count(pg_temp.run(regexp_replace(pg_get_functiondef(p.oid), '\mAS \$function\$',
         E'AS $function$\n  SELECT memoriesdb_internal.citus_carry_context();   -- (Citus: section 4c)\n')))
  FROM pg_proc AS p
 WHERE p.pronamespace = 'memoriesdb'::regnamespace AND p.prosecdef AND p.prokind = 'f' AND p.prosqlbody IS NULL
   AND p.prolang = (SELECT l.oid FROM pg_language AS l WHERE l.lanname = 'sql');
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_proc AS p
                          WHERE p.pronamespace = 'memoriesdb'::regnamespace AND p.prosecdef AND p.prokind = 'f'
                            AND p.proname NOT IN ('authenticate', 'vouch', 'context_proven', 'setting')
                            AND p.prosrc NOT LIKE '%memoriesdb_internal.citus_carry_context();   -- (Citus: section 4c)%')
            THEN pg_temp.run('DO $e$ BEGIN RAISE EXCEPTION ''an API function does not carry the context (section 4c)''; END $e$') END;

-- 4d. No connection to a worker as a superuser ----------------------------------------------------------------
-- Red team: a client's SET LOCAL is propagated by Citus as the whole text of the client's query (docs/citus.md,
-- section 1: open), so statements the client appended to it ran on the workers over every connection of the
-- transaction, as the role that connection was opened for. The Citus helpers above were created by the deploy's
-- superuser, and a SECURITY DEFINER one that reads a distributed table (citus_owner_of() under forget(), share(),
-- transfer(), revise()) opened its connections as postgres: the client's statements ran as a superuser on a worker
-- (COPY ... TO PROGRAM: the worker's operating system). They run as the ledger's owner instead (BYPASSRLS, as they
-- need). The access log's dblink drivers must stay the superuser's (dblink on a trust server): the one that reads
-- a table reads the coordinator's own placement of access_log_sink, a plain local table, never through Citus (with
-- citus.enable_local_execution switched off by the client it read the sink from a worker, as postgres).
SELECT count(pg_temp.run(format('ALTER FUNCTION %s OWNER TO memoriesdb_owner', p.oid::regprocedure)))
  FROM pg_proc AS p JOIN pg_roles AS r ON r.oid = p.proowner
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace) AND p.prosecdef AND r.rolsuper
   AND p.prosrc NOT LIKE '%memoriesdb_dblink.%' AND p.proname <> 'setup_access_logger';
DO $d$
DECLARE
  placement text := (SELECT format('memoriesdb.%I', 'access_log_sink_' || s.shardid) FROM pg_dist_shard AS s
                      WHERE s.logicalrelid = 'memoriesdb.access_log_sink'::regclass);
BEGIN
  IF placement IS NULL OR to_regclass(placement) IS NULL THEN
    RAISE EXCEPTION 'access_log_sink is not a reference table with a placement on the coordinator';
  END IF;
  PERFORM pg_temp.patch('memoriesdb_internal.append_access_entry_autonomously(uuid, timestamptz, uuid, name, name, text, text, uuid[], bytea, text, bytea, text)',
    'SELECT * INTO STRICT s FROM memoriesdb.access_log_sink;',
    format('SELECT * INTO STRICT s FROM %s;   -- (Citus, section 4d: the coordinator''s own placement, not through Citus)', placement));
END
$d$;
-- what is left to a superuser reads no ledger table through Citus (the dblink drivers; setup_access_logger() is a
-- superuser's to run)
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_proc AS p JOIN pg_roles AS r ON r.oid = p.proowner
                          WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
                            AND p.prosecdef AND r.rolsuper AND p.proname <> 'setup_access_logger'
                            AND (p.prosrc NOT LIKE '%memoriesdb_dblink.%'
                                 OR p.prosrc ~ '(FROM|JOIN|INTO|UPDATE)\s+memoriesdb(_internal)?\.(?!access_log_sink_[0-9])'))
            THEN pg_temp.run($e$DO $x$ BEGIN RAISE EXCEPTION 'a superuser''s SECURITY DEFINER ledger function reads a table through Citus (section 4d)'; END $x$$e$) END;

-- 4e. The client's role and application name on the workers' audit rows (the single-node suite, 07-audit) ------------
-- An audit row records the client's role (SET ROLE, else the login) and application_name. On a worker the trigger
-- read the worker connection's: the role Citus connected as (memoriesdb_owner) and 'citus_internal gpid=…', for
-- every client's writes (measured). The coordinator's values are carried with the context (section 4c) as one
-- setting, app.citus_client (a JSON array [role, application_name]), set by every API call before it writes: a
-- client's own SET LOCAL of it is overwritten by the next call, which is where every write happens. It is carried
-- one executor level down with the rest (set here on the coordinator, then SET LOCAL by citus_carry_setting()): SET
-- LOCAL in this function's own body is not propagated in an implicit transaction (measured, once authenticate()
-- worked there, section 3r: `SELECT authenticate(key), remember(...)` in autocommit wrote its audit row with role
-- memoriesdb_owner and application 'citus_internal gpid=…').
SELECT pg_temp.patch_many('memoriesdb_internal.citus_carry_context()',
  ARRAY[$x$  PERFORM memoriesdb_internal.citus_carry_setting(s.name)$x$,
        $x$'app.current_user_vouched_by']) AS s(name);$x$],
  ARRAY[$x$  PERFORM set_config('app.citus_client',
                    jsonb_build_array(coalesce(nullif(current_setting('role'), 'none'), session_user::text),
                                      nullif(current_setting('application_name'), ''))::text, true);   -- (section 4e)
  PERFORM memoriesdb_internal.citus_carry_setting(s.name)$x$,
        $x$'app.current_user_vouched_by', 'app.citus_client']) AS s(name);$x$]);
COMMENT ON FUNCTION memoriesdb_internal.citus_carry_context() IS
  'Internal (Citus): SET LOCAL of the coordinator''s context settings (app.current_user, app.current_user_proof, app.current_login, app.current_user_vouched_by), which Citus propagates to the workers: every API call runs it first, so that a context changed with set_config() or a session-level SET (seen by the coordinator only) is the one the workers apply too; and of app.citus_client, the client''s role and application_name for the audit rows written on the workers. true.';
-- (section 3o) and the coordinator's transaction_timestamp(), proven, for citus_now() on every node: one executor level
-- down, as the context's settings (propagated in an implicit transaction too), after them
SELECT pg_temp.patch('memoriesdb_internal.citus_carry_context()',
  $x$  RETURN true;$x$,
  $x$  PERFORM memoriesdb_internal.citus_carry_now() FROM unnest(ARRAY[true]) AS s(x);   -- (Citus: section 3o)
  RETURN true;$x$);
COMMENT ON FUNCTION memoriesdb_internal.citus_carry_context() IS
  'Internal (Citus): SET LOCAL of the coordinator''s context settings (app.current_user, app.current_user_proof, app.current_login, app.current_user_vouched_by), which Citus propagates to the workers: every API call runs it first, so that a context changed with set_config() or a session-level SET (seen by the coordinator only) is the one the workers apply too; of app.citus_client, the client''s role and application_name for the audit rows written on the workers; and of app.citus_now, the coordinator''s transaction_timestamp() with its proof, the time of the call''s changes on every node (citus_carry_now(), section 3o). true.';
-- (read into a variable first: Citus evaluates an INSERT's VALUES itself, past a CASE's guard, section 3f)
SELECT pg_temp.patch_many('memoriesdb_internal.audit_row()',
  ARRAY[E'  login name;\n',
        E'  login := memoriesdb_internal.context_login();\n',
        $x$          coalesce(nullif(current_setting('role'), 'none'), session_user::text),
          nullif(current_setting('application_name'), ''),$x$],
  ARRAY[E'  login name;\n  client jsonb;\n',
        $x$  login := memoriesdb_internal.context_login();
  client := nullif(current_setting('app.citus_client', true), '')::jsonb;   -- (Citus: section 4e)
$x$,
        $x$          coalesce(client->>0, nullif(current_setting('role'), 'none'), session_user::text),
          CASE WHEN client IS NOT NULL THEN client->>1 ELSE nullif(current_setting('application_name'), '') END,$x$]);

-- 4f. The overlay's own functions are owned and granted as the ledger's (the single-node suite, 01-schema and
-- 16-privileges) -----------------------------------------------------------------------------------------------
-- The functions this file creates were owned by the deploying superuser and executable by PUBLIC (as every function
-- is when created), five of them SECURITY DEFINER: running as a superuser, callable by any role with USAGE on
-- memoriesdb_internal (the owner and reader roles; on the workers those log in). As the ledger's internal functions:
-- owned by memoriesdb_owner, executable by it and by memoriesdb_reader (the read functions' owner: the shards'
-- policies and the search run them with its rights), by no one else; citus_refresh_search_statistics() (the
-- worker's: run_command_on_shards() as memoriesdb_owner, which logs in on the workers) is the owner's too. (The
-- access logger's functions stay the superuser's, as deployed: dblink needs it.)
SELECT count(pg_temp.run(format('ALTER FUNCTION %s OWNER TO memoriesdb_owner', p.oid::regprocedure)))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND p.proowner = (SELECT r.oid FROM pg_roles AS r WHERE r.rolname = current_user)
   AND (p.proname LIKE 'citus\_%' OR p.proname = 'context_login');
SELECT count(pg_temp.run(format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure))),
       count(pg_temp.run(format('GRANT EXECUTE ON FUNCTION %s TO memoriesdb_reader', p.oid::regprocedure)))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND (p.proname LIKE 'citus\_%' OR p.proname = 'context_login') AND p.proname <> 'citus_refresh_search_statistics';
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_proc AS p
                          WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
                            AND has_function_privilege('public', p.oid, 'EXECUTE'))
            THEN pg_temp.run('DO $e$ BEGIN RAISE EXCEPTION ''PUBLIC may execute a ledger function (section 4f)''; END $e$') END;

-- 4h. The memory directory's key, read from the node's own placement (section 3i) ---------------------------------
-- citus_memory_slot() runs in every lookup by id (citus_owner_of(), on the coordinator) and in remember(), forget()
-- and transfer(). memory_directory_key is a reference table now; read through Citus, each call would be planned and
-- executed by Citus (as context_proven()'s key was: section 4b). Read here from the placement every node holds,
-- under the same shard id (a node added later too), a plain local table. Callable by the owner role only: the key is
-- its own, and every caller runs as it (remember() and its citus_new_memory_id(), forget(), effect_transfer(),
-- citus_owner_of(), citus_lock_owner_of()); section 4f granted the overlay's functions to memoriesdb_reader, not these.
DO $d$
DECLARE
  placement text := (SELECT format('memoriesdb_internal.%I', 'memory_directory_key_' || s.shardid) FROM pg_dist_shard AS s
                      WHERE s.logicalrelid = 'memoriesdb_internal.memory_directory_key'::regclass);
BEGIN
  IF placement IS NULL THEN RAISE EXCEPTION 'memory_directory_key is not a reference table'; END IF;
  EXECUTE format($f$CREATE OR REPLACE FUNCTION memoriesdb_internal.citus_memory_slot(memory_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $b$
BEGIN
  RETURN (SELECT encode(substr(sha256(k.opad || sha256(k.ipad || uuid_send(memory_id))), 1, 16), 'hex')::uuid
            FROM %s AS k);
END
$b$$f$, placement);
END
$d$;
REVOKE ALL ON FUNCTION memoriesdb_internal.citus_memory_slot(uuid), memoriesdb_internal.citus_new_memory_id(uuid)
  FROM PUBLIC, memoriesdb_reader;

-- 5. Every function of the ledger on every node (the triggers and policies on the shards call them, and the
-- functions they call); distributed, so a later CREATE OR REPLACE on the coordinator reaches the workers too.
-- (the workers run with check_function_bodies = off: a SQL function may name one copied after it)
SELECT count(create_distributed_function(p.oid::regprocedure))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND NOT EXISTS (SELECT 1 FROM pg_dist_object AS o WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid);
-- (the single-node suite, 01-schema: on a worker every function of the ledger was executable by PUBLIC (measured:
-- 197 on each), and the grants were not the coordinator's (recall() not granted to memoriesdb_app, context_proven()
-- to no one): Citus created each function there with the default privileges and copied some of the grants. Every
-- grant of the coordinator is made again here, which Citus propagates to the workers, then PUBLIC's is revoked on
-- every node: each node executes as the coordinator does.)
SELECT count(pg_temp.run(format('GRANT EXECUTE ON FUNCTION %s TO %I', p.oid::regprocedure, a.grantee::regrole)))
  FROM pg_proc AS p, aclexplode(p.proacl) AS a
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
   AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;
SELECT count(pg_temp.run(format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure)))
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace);

COMMIT;
-- (checked on the workers once committed: run_command_on_workers() runs outside this session's transaction)
DO $e$
BEGIN
  IF EXISTS (SELECT 1 FROM run_command_on_workers($q$
               SELECT count(*) FROM pg_proc AS p
                WHERE p.pronamespace IN ('memoriesdb'::regnamespace, 'memoriesdb_internal'::regnamespace)
                  AND has_function_privilege('public', p.oid, 'EXECUTE')$q$) AS w
              WHERE NOT w.success OR w.result <> '0') THEN
    RAISE EXCEPTION 'PUBLIC may execute a ledger function on a worker (section 5)';
  END IF;
END
$e$;

-- (section 4g, on the workers once committed, as the check above) the ledger's database admits no client there; a
-- pg_hba.conf rule that lets more than the cluster's nodes log in is the deployment's to fix (a WARNING)
SELECT memoriesdb_internal.citus_close_workers() AS workers_closed_to_clients;
DO $e$
DECLARE
  p record;
BEGIN
  FOR p IN SELECT * FROM memoriesdb_internal.citus_worker_access() LOOP
    IF p.problem LIKE 'logins that may connect %' OR p.problem LIKE 'could not be checked: %' THEN
      RAISE EXCEPTION 'a worker admits clients to the ledger (section 4g): %: %', p.node, p.problem;
    END IF;
    RAISE WARNING 'worker %: %', p.node, p.problem
      USING HINT = 'the roles Citus connects as must log in on the workers from the cluster''s nodes only, with a credential (docs/citus.md, section 1)';
  END LOOP;
END
$e$;
