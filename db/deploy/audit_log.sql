-- Deploy memoriesdb:audit_log to pg
-- Reworked after @v0.4.0 (released version: audit_log@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: audit_log@v0.4.0
-- requires: audit_chains
-- requires: audit_pending
-- requires: internal_schema
-- Live functions of the audit log and its hash chains: row hashing, per-owner chains sealed per transaction,
-- append-only enforcement, verification (with or without a checkpoint kept outside), checkpoints, receipts.
-- Design: the header of audit_log@v0.1.0.sql (tables, triggers) and of audit_chains.sql (per-owner chains).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework audit_log`.
-- Run once, by audit_log@v0.1.0.sql: tables audit_log and audit_seals, their indexes, policies and triggers. (The function bodies
-- in audit_log@v0.1.0.sql and audit_log@v0.2.0.sql are released versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;


-- canonical serialisation: a JSON array (unambiguous field boundaries, NULL
-- stays null) with the timestamp as integer microseconds since the epoch, so
-- the hash does not depend on TimeZone, DateStyle or dump/restore.
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_canonical(a memoriesdb.audit_log) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- fields added later are appended only to the rows that have them, so a row keeps
  -- the canonical form, and the hash, it was sealed with: login and vouched_by (v0.4),
  -- chain (v0.5: a row of a per-owner chain always carries all three)
  RETURN convert_to((jsonb_build_array(
    a.id, (extract(epoch FROM a.created_at) * 1000000)::bigint, a.created_by, a.db_role,
    a.application_name, a.txid::text, a.table_name, a.row_id, a.memory_id, a.op,
    a.old_row, a.new_row)
    || CASE WHEN a.chain IS NOT NULL THEN jsonb_build_array(a.login, a.vouched_by, a.chain)
            WHEN a.login IS NOT NULL OR a.vouched_by IS NOT NULL
            THEN jsonb_build_array(a.login, a.vouched_by) ELSE '[]'::jsonb END)::text, 'UTF8');
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_canonical(memoriesdb.audit_log) IS
  'The bytes an audit row''s row_hash is the SHA-256 of. Independent of session settings. login and vouched_by are part of it when present (rows from v0.4 on), chain for rows of per-owner chains (v0.5 on).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_hash_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  NEW.row_hash := sha256(memoriesdb_internal.audit_canonical(NEW));
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_hash_row() IS
  'Trigger (BEFORE INSERT on audit_log): sets row_hash to the SHA-256 of the row''s canonical form.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'MDB20',
    MESSAGE = format('%s is append-only: %s refused', TG_TABLE_NAME, TG_OP),
    HINT = 'audit rows can never be changed or removed, not even by their owner';
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.refuse_change() IS 'Trigger: refuses UPDATE, DELETE and TRUNCATE on the append-only tables (statement level, so it fires even when no row matches).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_seal_hash(s memoriesdb.audit_seals) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- a seal of a per-owner chain also covers when it was sealed, its chain, its
  -- position and its peers; a legacy seal keeps the form it was sealed with
  RETURN sha256(convert_to((jsonb_build_array(s.seq, s.txid::text, s.first_id, s.last_id, s.row_count,
           encode(s.rows_digest, 'hex'), encode(s.prev_hash, 'hex'))
    || CASE WHEN s.chain IS NOT NULL
            THEN jsonb_build_array((extract(epoch FROM s.created_at) * 1000000)::bigint, s.chain, s.chain_seq,
                                   coalesce(s.peers, '[]'::jsonb))
            ELSE '[]'::jsonb END)::text, 'UTF8'));
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_seal_hash(memoriesdb.audit_seals) IS
  'The seal_hash a seal must carry. For per-owner chains it covers created_at, chain, chain_seq and peers too.';

-- genesis: the prev_hash of seal 1 of the legacy chain
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_genesis() RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT sha256('memoriesdb audit chain'::bytea) $$;
COMMENT ON FUNCTION memoriesdb_internal.audit_genesis() IS
  'Internal: the prev_hash of the first seal of the legacy chain.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_genesis(chain uuid) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT sha256(convert_to('memoriesdb audit chain ' || chain::text, 'UTF8')) $$;
COMMENT ON FUNCTION memoriesdb_internal.audit_genesis(uuid) IS
  'Internal: the prev_hash of the first seal of a per-owner chain (distinct per chain: a seal cannot be moved to another chain).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_common_chain() RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
COMMENT ON FUNCTION memoriesdb_internal.audit_common_chain() IS
  'Internal: the chain of audit rows about no owner (users, config, the edge types the deploy seeds).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_chain_name(chain uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(chain::text, 'legacy') $$;
COMMENT ON FUNCTION memoriesdb_internal.audit_chain_name(uuid) IS
  'Internal: a chain''s name in checkpoints and receipts: the owner''s uuid, or legacy for the single chain of the rows written before per-owner chains.';

-- a chain's lock: its head row, taken without waiting. NULL when another transaction holds it (its
-- seal fired early and it is still open, say): the caller's rows of that chain then wait in
-- audit_pending instead of the caller waiting for that transaction.
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_lock_chain(c uuid) RETURNS memoriesdb_internal.audit_chain_heads
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  h memoriesdb_internal.audit_chain_heads;
  was text;
BEGIN
  IF current_setting('transaction_isolation') = 'read committed' THEN
    SELECT * INTO h FROM memoriesdb_internal.audit_chain_heads AS t WHERE t.chain = c FOR UPDATE SKIP LOCKED;
  ELSE
    -- REPEATABLE READ, SERIALIZABLE: a head another transaction moved since this one's snapshot (any
    -- commit in the chain: another tenant's write into it, the worker's sealing) cannot be locked
    -- (40001); rather than failing this commit for it, its rows wait as for a held chain. The only
    -- subtransaction of a commit, and only at these levels.
    BEGIN
      SELECT * INTO h FROM memoriesdb_internal.audit_chain_heads AS t WHERE t.chain = c FOR UPDATE SKIP LOCKED;
    EXCEPTION WHEN serialization_failure THEN
      RETURN NULL;
    END;
  END IF;
  IF FOUND THEN RETURN h; END IF;
  IF EXISTS (SELECT 1 FROM memoriesdb_internal.audit_chain_heads AS t WHERE t.chain = c) THEN
    RETURN NULL;                                   -- held by another transaction
  END IF;
  -- the chain's first seal: its head row. Another open transaction inserting it too would make this
  -- insert wait for its end: a short lock_timeout turns that wait into "held by another"
  was := current_setting('lock_timeout');
  PERFORM set_config('lock_timeout', '100ms', true);
  BEGIN
    INSERT INTO memoriesdb_internal.audit_chain_heads (chain, chain_seq, seal_hash)
    VALUES (c, 0, memoriesdb_internal.audit_genesis(c)) ON CONFLICT DO NOTHING;
  EXCEPTION WHEN lock_not_available OR serialization_failure THEN   -- (40001: inserted since a REPEATABLE READ snapshot)
    PERFORM set_config('lock_timeout', was, true);
    RETURN NULL;
  END;
  PERFORM set_config('lock_timeout', was, true);
  SELECT * INTO h FROM memoriesdb_internal.audit_chain_heads AS t WHERE t.chain = c FOR UPDATE SKIP LOCKED;
  RETURN h;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_lock_chain(uuid) IS
  'Internal: locks a chain (its row in audit_chain_heads, created at its first seal) without waiting and returns its head; NULL when another transaction holds it, or (REPEATABLE READ, SERIALIZABLE) moved it since this transaction''s snapshot.';

-- what of transaction x's rows in chain c no seal covers yet: a waiting group (its range, count and
-- digest, as a seal would hold them); n = 0 when there is none
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_unsealed(x xid8, c uuid)
RETURNS TABLE (first_id bigint, last_id bigint, n bigint, digest bytea)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT min(a.id), max(a.id), count(*), sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id))
    FROM memoriesdb.audit_log AS a
   WHERE a.txid = x AND a.chain = c
     AND NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS q
                      WHERE q.txid = x AND q.chain = c AND a.id BETWEEN q.first_id AND q.last_id)
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_unsealed(xid8, uuid) IS
  'Internal: the audit rows of transaction x in chain c that no seal covers (a group waiting for its seal): first and last id, count, and the digest a seal of them would hold. Used by the sealer (audit_adopt), the checkpoint''s waiting list and its verification.';

-- the seals waiting for chain c (committed transactions' rows, audit_pending), oldest first, as the
-- next seals of c after head; the caller holds c's lock. Returns the new head.
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_adopt(c uuid, head memoriesdb_internal.audit_chain_heads, max_seals integer)
RETURNS memoriesdb_internal.audit_chain_heads
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p record;
  g record;
  s memoriesdb.audit_seals;
BEGIN
  FOR p IN SELECT ap.txid FROM memoriesdb_internal.audit_pending AS ap
            WHERE ap.chain = c ORDER BY ap.created_at, ap.txid LIMIT max_seals
  LOOP
    SELECT u.first_id, u.last_id, u.n::integer AS n, u.digest INTO g
      FROM memoriesdb_internal.audit_unsealed(p.txid, c) AS u;
    IF g.n > 0 THEN
      s := ROW(nextval('memoriesdb_internal.audit_seal_seq'), p.txid, g.first_id, g.last_id, g.n, g.digest,
               head.seal_hash, NULL, clock_timestamp(), c, head.chain_seq + 1, NULL)::memoriesdb.audit_seals;
      -- the transaction's seals in its other chains that name this one as sealed later (with their
      -- position), and its other chains still waiting (none yet)
      SELECT jsonb_agg(jsonb_build_object('chain', o.chain, 'seq', o.seq) ORDER BY o.chain, o.seq) INTO s.peers
        FROM (SELECT q.chain, q.chain_seq AS seq FROM memoriesdb.audit_seals AS q
               WHERE q.txid = p.txid AND q.chain IS NOT NULL AND q.chain <> c
                 AND q.peers @> jsonb_build_array(jsonb_build_object('chain', c, 'seq', NULL))
              UNION
              SELECT w.chain, NULL FROM memoriesdb_internal.audit_pending AS w
               WHERE w.txid = p.txid AND w.chain <> c) AS o;
      s.seal_hash := memoriesdb_internal.audit_seal_hash(s);
      INSERT INTO memoriesdb.audit_seals SELECT s.*;
      head.chain_seq := s.chain_seq;
      head.seal_hash := s.seal_hash;
    END IF;
    DELETE FROM memoriesdb_internal.audit_pending AS ap WHERE ap.chain = c AND ap.txid = p.txid;
  END LOOP;
  RETURN head;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_adopt(uuid, memoriesdb_internal.audit_chain_heads, integer) IS
  'Internal: seals up to max_seals of the waiting (chain, transaction) pairs of chain c, oldest first, each as the next seal of c naming the transaction''s seals in other chains (peers; seq null for one still waiting). The caller holds c''s lock; returns the new head (not yet written to audit_chain_heads).';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_seal_now(x xid8) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g record;
  head memoriesdb_internal.audit_chain_heads;
  s memoriesdb.audit_seals;
  seals memoriesdb.audit_seals[] := ARRAY[]::memoriesdb.audit_seals[];
  waiting boolean := EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w WHERE w.txid = x);
BEGIN
  -- (no EXCEPTION block, no subtransaction per commit: a chain's head row is locked, so two seals
  -- cannot claim one position; under REPEATABLE READ a head moved since the snapshot counts as held)
  -- one seal per chain the transaction wrote to, in ascending chain order; a chain another
  -- transaction holds is not waited for: its rows wait in audit_pending for the chain's next sealer
  FOR g IN
    SELECT a.chain, min(a.id) AS first_id, max(a.id) AS last_id, count(*)::integer AS n,
           sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id)) AS digest
      FROM memoriesdb.audit_log AS a
     WHERE a.txid = x AND a.chain IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS p
                        WHERE p.txid = x AND p.chain = a.chain AND a.id BETWEEN p.first_id AND p.last_id)
       AND NOT EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w WHERE w.chain = a.chain AND w.txid = x)
     GROUP BY a.chain ORDER BY a.chain
  LOOP
    head := memoriesdb_internal.audit_lock_chain(g.chain);
    IF head.chain IS NULL THEN
      INSERT INTO memoriesdb_internal.audit_pending (chain, txid) VALUES (g.chain, x) ON CONFLICT DO NOTHING;
      waiting := true;
      CONTINUE;
    END IF;
    -- the lock held: first the chain's waiting seals of committed transactions (a few; the rest
    -- for the next sealer or audit_seal_pending())
    IF EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w WHERE w.chain = g.chain) THEN
      head := memoriesdb_internal.audit_adopt(g.chain, head, 16);
    END IF;
    s := ROW(nextval('memoriesdb_internal.audit_seal_seq'), x, g.first_id, g.last_id, g.n, g.digest,
             head.seal_hash, NULL, clock_timestamp(), g.chain, head.chain_seq + 1, NULL)::memoriesdb.audit_seals;
    seals := seals || s;
  END LOOP;
  FOR i IN 1 .. cardinality(seals) LOOP
    s := seals[i];
    IF cardinality(seals) > 1 OR waiting THEN   -- the others of this transaction, e.g. both owners of a transfer
      SELECT jsonb_agg(jsonb_build_object('chain', o.chain, 'seq', o.seq) ORDER BY o.chain) INTO s.peers
        FROM (SELECT o.chain, o.chain_seq AS seq FROM unnest(seals) AS o WHERE o.chain <> s.chain
              UNION ALL   -- its chains that wait (now, or since a seal fired earlier in it)
              SELECT w.chain, NULL FROM memoriesdb_internal.audit_pending AS w WHERE w.txid = x) AS o;
    END IF;
    s.seal_hash := memoriesdb_internal.audit_seal_hash(s);
    INSERT INTO memoriesdb.audit_seals SELECT s.*;
    UPDATE memoriesdb_internal.audit_chain_heads AS h SET chain_seq = s.chain_seq, seal_hash = s.seal_hash
     WHERE h.chain = s.chain;
  END LOOP;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_seal_now(xid8) IS
  'Internal: seals transaction x''s unsealed audit rows, one seal per chain they belong to, each chained to its chain''s head and naming the others (peers). A chain held by another transaction is not waited for: its rows wait in audit_pending (a peer with seq null) for the chain''s next sealer. Before its own seal of a chain, seals up to 16 of the chain''s waiting ones.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_seal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- fires once per audit row at COMMIT; the first firing seals them all (or lists them as waiting)
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS s
                  WHERE s.txid = NEW.txid AND s.chain IS NOT DISTINCT FROM NEW.chain
                    AND NEW.id BETWEEN s.first_id AND s.last_id)
     AND NOT EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w WHERE w.chain = NEW.chain AND w.txid = NEW.txid) THEN
    PERFORM memoriesdb_internal.audit_seal_now(NEW.txid);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_seal() IS
  'Trigger (deferred constraint trigger on audit_log, fires at COMMIT): seals the transaction''s audit rows once, through audit_seal_now().';

CREATE OR REPLACE FUNCTION memoriesdb.audit_seal_pending(max_seals integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  c uuid;
  head memoriesdb_internal.audit_chain_heads;
  before bigint;
  done integer := 0;
BEGIN
  IF max_seals IS NULL OR max_seals < 1 OR max_seals > 100000 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB05', MESSAGE = 'max_seals out of range',
      DETAIL = format('max_seals = %s', coalesce(max_seals::text, 'NULL')), HINT = 'between 1 and 100000';
  END IF;
  FOR c IN SELECT DISTINCT w.chain FROM memoriesdb_internal.audit_pending AS w ORDER BY w.chain LOOP
    EXIT WHEN done >= max_seals;
    head := memoriesdb_internal.audit_lock_chain(c);
    CONTINUE WHEN head.chain IS NULL;              -- held by another transaction: its sealer's turn
    before := head.chain_seq;
    head := memoriesdb_internal.audit_adopt(c, head, max_seals - done);
    done := done + (head.chain_seq - before)::integer;
    UPDATE memoriesdb_internal.audit_chain_heads AS h SET chain_seq = head.chain_seq, seal_hash = head.seal_hash
     WHERE h.chain = c;
  END LOOP;
  RETURN done;
END
$$;
COMMENT ON FUNCTION memoriesdb.audit_seal_pending(integer) IS
  'Seals up to max_seals audit-row groups that wait for their chain (committed while another transaction held the chain), each chain in its order; a chain still held is skipped. Returns how many seals it wrote. The runner''s worker calls it after each batch and memoriesdb anchor before each checkpoint; call it until it returns 0 to seal everything. MDB05 for max_seals outside 1..100000.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_strip(j jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- embeddings are replaced by their SHA-256 and derived search columns left
  -- out, so the log stays lean
  RETURN CASE WHEN j ? 'embedding'
    THEN (j - 'embedding' - 'content_tsv' - 'content_trgm') || jsonb_build_object('embedding_sha256',
           CASE WHEN j->>'embedding' IS NOT NULL THEN encode(sha256(convert_to(j->>'embedding', 'UTF8')), 'hex') END)
    ELSE j - 'content_tsv' - 'content_trgm' END;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_strip(jsonb) IS
  'Internal: a row image as the audit log keeps it: the embedding replaced by its SHA-256, derived search columns (content_tsv, content_trgm) left out.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_chain_of(memory_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- the memory's owner; a memory removed in this statement (rows deleted with it by
  -- forget()): the owner its last audited image names
  RETURN coalesce(
    (SELECT m.owner_id FROM memoriesdb.memories AS m WHERE m.id = audit_chain_of.memory_id),
    (SELECT (coalesce(a.new_row, a.old_row)->>'owner_id')::uuid FROM memoriesdb.audit_log AS a
      WHERE a.memory_id = audit_chain_of.memory_id AND a.table_name = 'memories'
      ORDER BY a.id DESC LIMIT 1));
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_chain_of(uuid) IS
  'Internal: the chain of an audit row about a memory: the memory''s owner (for a memory just removed, the owner its last audit row names).';

-- the generic row trigger every ledger table carries
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o jsonb;
  n jsonb;
  r jsonb;
  before jsonb;
  memory_col text := nullif(TG_ARGV[0], '');
  owner_col text := nullif(TG_ARGV[1], '');
  actor uuid := memoriesdb.current_user_id();
  vouched name;
  chain uuid;
BEGIN
  -- who vouched: a backend login's context that no proof backs (for any other login the
  -- context was proven, or is none: no second proof check)
  IF actor IS NOT NULL AND pg_has_role(session_user, 'memoriesdb_backend', 'MEMBER')
     AND NOT memoriesdb.context_proven(current_setting('app.current_user', true), current_setting('app.current_user_proof', true)) THEN
    vouched := session_user;
  END IF;
  IF TG_OP <> 'INSERT' THEN o := to_jsonb(OLD); END IF;
  IF TG_OP <> 'DELETE' THEN n := to_jsonb(NEW); END IF;
  IF TG_TABLE_NAME = 'memories' THEN   -- audit_strip(), inline
    IF o IS NOT NULL THEN
      o := (o - 'embedding' - 'content_tsv' - 'content_trgm') || jsonb_build_object('embedding_sha256',
             CASE WHEN o->>'embedding' IS NOT NULL THEN encode(sha256(convert_to(o->>'embedding', 'UTF8')), 'hex') END);
    END IF;
    IF n IS NOT NULL THEN
      n := (n - 'embedding' - 'content_tsv' - 'content_trgm') || jsonb_build_object('embedding_sha256',
             CASE WHEN n->>'embedding' IS NOT NULL THEN encode(sha256(convert_to(n->>'embedding', 'UTF8')), 'hex') END);
    END IF;
  END IF;
  r := coalesce(n, o);
  -- the chain: the owner the row is about as it was before the change (a transfer's
  -- UPDATE of the memory stays in the giver's chain; the transfer row is the receiver's)
  before := coalesce(o, n);
  IF owner_col IS NOT NULL THEN
    chain := (before->>owner_col)::uuid;
  ELSIF memory_col IS NOT NULL THEN
    chain := memoriesdb_internal.audit_chain_of((before->>memory_col)::uuid);
  END IF;
  INSERT INTO memoriesdb.audit_log
    (created_by, db_role, application_name, table_name, row_id, memory_id, op, old_row, new_row, login, vouched_by, chain)
  VALUES (actor,
          coalesce(nullif(current_setting('role'), 'none'), session_user::text),
          nullif(current_setting('application_name'), ''),
          TG_TABLE_NAME, (r->>'id')::uuid,
          CASE WHEN memory_col IS NOT NULL THEN (r->>memory_col)::uuid END,
          TG_OP, o, n, session_user, vouched,
          coalesce(chain, memoriesdb_internal.audit_common_chain()));
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_row() IS
  'Trigger (AFTER ROW, every ledger table): writes one audit_log row: the context user, the role in force (db_role), the login (session_user), the memoriesdb_backend login that vouched for the context, if any, and the chain. TG_ARGV[0] names the column holding the memory the row is about, TG_ARGV[1] the column holding the owner whose chain it belongs to (else the memory''s owner, else the common chain).';

-- reading the chains ---------------------------------------------------------
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_merkle_root(chains jsonb) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  level bytea[];
  nxt bytea[];
BEGIN
  SELECT coalesce(array_agg(sha256(convert_to(format('memoriesdb-leaf:%s:%s:%s', e->>'chain', e->>'seq', e->>'hash'), 'UTF8'))
                            ORDER BY o), '{}')
    INTO level FROM jsonb_array_elements(coalesce(chains, '[]'::jsonb)) WITH ORDINALITY AS t(e, o);
  IF cardinality(level) = 0 THEN RETURN sha256(convert_to('memoriesdb-empty', 'UTF8')); END IF;
  WHILE cardinality(level) > 1 LOOP
    nxt := '{}';
    FOR i IN 1 .. cardinality(level) BY 2 LOOP
      nxt := nxt || CASE WHEN i < cardinality(level) THEN sha256(level[i] || level[i + 1]) ELSE level[i] END;
    END LOOP;
    level := nxt;
  END LOOP;
  RETURN level[1];
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_merkle_root(jsonb) IS
  'Internal: the Merkle root over a checkpoint''s chain heads, in their order: leaf = SHA-256 of "memoriesdb-leaf:<chain>:<seq>:<hash hex>", a level reduced pairwise by SHA-256(left || right), an odd last node carried up; no chains: SHA-256 of "memoriesdb-empty".';

CREATE OR REPLACE FUNCTION memoriesdb.audit_checkpoint() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
  -- one statement, one snapshot: every head as of the same moment
  WITH RECURSIVE chains AS (
    (SELECT s.chain FROM memoriesdb.audit_seals AS s WHERE s.chain IS NOT NULL ORDER BY s.chain LIMIT 1)
    UNION ALL
    SELECT (SELECT s.chain FROM memoriesdb.audit_seals AS s WHERE s.chain > c.chain ORDER BY s.chain LIMIT 1)
      FROM chains AS c WHERE c.chain IS NOT NULL
  ), heads AS (
    SELECT c.chain::text AS chain, h.chain_seq AS seq, encode(h.seal_hash, 'hex') AS hash
      FROM chains AS c
      CROSS JOIN LATERAL (SELECT s.chain_seq, s.seal_hash FROM memoriesdb.audit_seals AS s
                           WHERE s.chain = c.chain ORDER BY s.chain_seq DESC LIMIT 1) AS h
     WHERE c.chain IS NOT NULL
    UNION ALL
    SELECT 'legacy', l.seq, encode(l.seal_hash, 'hex')
      FROM (SELECT s.seq, s.seal_hash FROM memoriesdb.audit_seals AS s WHERE s.chain IS NULL
             ORDER BY s.seq DESC LIMIT 1) AS l
  ), list AS (
    SELECT coalesce(jsonb_agg(jsonb_build_object('chain', h.chain, 'seq', h.seq, 'hash', h.hash)
                              ORDER BY h.chain COLLATE "C"), '[]'::jsonb) AS chains
      FROM heads AS h
  )
  SELECT jsonb_build_object(
           'format', 'memoriesdb-checkpoint/1',
           'ledger', (SELECT i.ledger_id FROM memoriesdb_internal.ledger_identity AS i),
           'database', current_database(),
           'taken_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'audit_rows', (SELECT coalesce(max(a.id), 0) FROM memoriesdb.audit_log AS a),
           'chains', l.chains,
           'root', encode(memoriesdb_internal.audit_merkle_root(l.chains), 'hex'))
         -- the groups that wait for their seal (their chain held): under no seal yet, so the checkpoint
         -- commits to them itself (their row count and digest); absent when none waits
         || CASE WHEN w.waiting IS NOT NULL THEN jsonb_build_object('waiting', w.waiting) ELSE '{}'::jsonb END
    FROM list AS l,
         (SELECT jsonb_agg(jsonb_build_object('chain', p.chain, 'txid', p.txid::text, 'rows', g.n,
                                              'digest', encode(g.digest, 'hex')) ORDER BY p.chain, p.txid) AS waiting
            FROM memoriesdb_internal.audit_pending AS p
            CROSS JOIN LATERAL memoriesdb_internal.audit_unsealed(p.txid, p.chain) AS g
           WHERE g.n > 0) AS w
$$;
COMMENT ON FUNCTION memoriesdb.audit_checkpoint() IS
  'A checkpoint of the audit history, to keep outside the database (memoriesdb anchor signs and stores it): the ledger''s id, the time, the newest audit row id, every chain''s head (chain, seq, seal hash) and the Merkle root over them, and (only when some wait) the groups of audit rows waiting for their seal: chain, txid, row count, digest. verify_audit_chain(checkpoint) later proves the history still contains it.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_seal_at(chain_name text, at_pos bigint) RETURNS memoriesdb.audit_seals
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s memoriesdb.audit_seals;
BEGIN
  IF chain_name = 'legacy' THEN
    SELECT * INTO s FROM memoriesdb.audit_seals AS t WHERE t.chain IS NULL AND t.seq = at_pos;
  ELSE
    SELECT * INTO s FROM memoriesdb.audit_seals AS t WHERE t.chain = chain_name::uuid AND t.chain_seq = at_pos;
  END IF;
  RETURN s;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_seal_at(text, bigint) IS
  'Internal: the seal at a position of a chain named as in checkpoints (a uuid, or legacy); all NULL when there is none. One index lookup.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_chain_end(chain_name text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF chain_name = 'legacy' THEN
    RETURN (SELECT t.seq FROM memoriesdb.audit_seals AS t WHERE t.chain IS NULL ORDER BY t.seq DESC LIMIT 1);
  END IF;
  RETURN (SELECT max(t.chain_seq) FROM memoriesdb.audit_seals AS t WHERE t.chain = chain_name::uuid);
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_chain_end(text) IS
  'Internal: the newest position of a chain named as in checkpoints; NULL when it has no seal.';

-- the checkpoint's own problems and the log's against it: one lookup per chain, no scan of the log
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_checkpoint_findings(checkpoint jsonb)
RETURNS TABLE (audit_id bigint, problem text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- 6. against a checkpoint kept outside: the checkpoint itself
  SELECT NULL::bigint, 'the checkpoint''s root does not match its chains (the checkpoint was altered)'
   WHERE checkpoint->>'root' IS DISTINCT FROM encode(memoriesdb_internal.audit_merkle_root(checkpoint->'chains'), 'hex')
  UNION ALL
  SELECT NULL::bigint, format('the checkpoint is of another ledger (%s, this one is %s)', checkpoint->>'ledger', i.ledger_id)
    FROM memoriesdb_internal.ledger_identity AS i
   WHERE checkpoint->>'ledger' IS DISTINCT FROM i.ledger_id::text
  UNION ALL
  -- 7. every chain head it holds is still there, unchanged
  SELECT x.first_id,
         CASE WHEN x.seal_hash IS NOT NULL
              THEN format('chain %s, seal %s: not the seal the checkpoint of %s holds (the chain was rewritten or forked)',
                          e->>'chain', e->>'seq', checkpoint->>'taken_at')
              WHEN n.newest IS NULL
              THEN format('chain %s: no seals left, the checkpoint of %s holds %s (removed: DELETE or TRUNCATE)',
                          e->>'chain', checkpoint->>'taken_at', e->>'seq')
              ELSE format('chain %s: ends at seal %s, the checkpoint of %s holds seal %s (the tail was removed)',
                          e->>'chain', n.newest, checkpoint->>'taken_at', e->>'seq') END
    FROM jsonb_array_elements(checkpoint->'chains') AS e
    CROSS JOIN LATERAL memoriesdb_internal.audit_seal_at(e->>'chain', (e->>'seq')::bigint) AS x
    CROSS JOIN LATERAL (SELECT memoriesdb_internal.audit_chain_end(e->>'chain') AS newest) AS n
   WHERE x.seal_hash IS DISTINCT FROM decode(e->>'hash', 'hex')
  UNION ALL
  SELECT NULL::bigint, format('the audit log ends at row %s, the checkpoint of %s saw rows up to %s (rows removed: DELETE or TRUNCATE)',
                              coalesce(m.last_id, 0), checkpoint->>'taken_at', checkpoint->>'audit_rows')
    FROM (SELECT max(a.id) AS last_id FROM memoriesdb.audit_log AS a) AS m
   WHERE coalesce(m.last_id, 0) < (checkpoint->>'audit_rows')::bigint
  UNION ALL
  -- 8. each group that waited for its seal at the checkpoint: still waiting, as it was, or sealed as it was
  SELECT NULL::bigint,
         format('chain %s: the %s audit rows of transaction %s, waiting for their seal at the checkpoint of %s, are gone or not as they were (removed or rewritten while they waited)',
                e->>'chain', e->>'rows', e->>'txid', checkpoint->>'taken_at')
    FROM jsonb_array_elements(coalesce(checkpoint->'waiting', '[]'::jsonb)) AS e
   WHERE NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS q
                      WHERE q.chain = (e->>'chain')::uuid AND q.txid = (e->>'txid')::xid8
                        AND q.row_count = (e->>'rows')::integer AND encode(q.rows_digest, 'hex') = e->>'digest')
     AND NOT EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w
                      CROSS JOIN LATERAL memoriesdb_internal.audit_unsealed(w.txid, w.chain) AS g
                      WHERE w.chain = (e->>'chain')::uuid AND w.txid = (e->>'txid')::xid8
                        AND g.n = (e->>'rows')::bigint AND encode(g.digest, 'hex') = e->>'digest')
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_checkpoint_findings(jsonb) IS
  'Internal: what a checkpoint names that the log no longer holds (a chain head gone or different, fewer audit rows, a group that waited for its seal gone or rewritten: neither still waiting nor sealed as it was), and a checkpoint altered or of another ledger. One index lookup per chain and per waiting group.';

-- every problem verification finds, the first audit row concerned first
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_findings(checkpoint jsonb)
RETURNS TABLE (audit_id bigint, problem text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- 1. a row whose contents no longer match its hash (edited, or ids swapped)
  SELECT a.id, format('audit row %s: contents do not match its hash (edited, or moved to another id)', a.id)
    FROM memoriesdb.audit_log AS a
   WHERE a.row_hash IS DISTINCT FROM sha256(memoriesdb_internal.audit_canonical(a))
  UNION ALL
  -- 2. a committed row no seal covers (inserted behind the ledger's back), unless its chain was held
  -- at its commit and it waits for the chain's next sealer (audit_pending)
  SELECT a.id, format('audit row %s: not covered by any seal (inserted outside the ledger)', a.id)
    FROM memoriesdb.audit_log AS a
   WHERE NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS s
                      WHERE s.txid = a.txid AND s.chain IS NOT DISTINCT FROM a.chain
                        AND a.id BETWEEN s.first_id AND s.last_id)
     AND NOT EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w WHERE w.chain = a.chain AND w.txid = a.txid)
  UNION ALL
  -- 3. a seal whose rows are no longer all there, or in another order
  SELECT s.first_id, format('audit rows %s..%s (seal %s of chain %s): %s of %s rows remain or their order changed (deleted or reordered)',
                            s.first_id, s.last_id, coalesce(s.chain_seq, s.seq),
                            memoriesdb_internal.audit_chain_name(s.chain), g.n, s.row_count)
    FROM memoriesdb.audit_seals AS s
    CROSS JOIN LATERAL (
      SELECT count(*) AS n, sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id)) AS digest
        FROM memoriesdb.audit_log AS a
       WHERE a.txid = s.txid AND a.chain IS NOT DISTINCT FROM s.chain
         AND a.id BETWEEN s.first_id AND s.last_id) AS g
   WHERE g.n <> s.row_count OR g.digest IS DISTINCT FROM s.rows_digest
  UNION ALL
  -- 4. each chain of seals itself: edited, removed or inserted seals
  SELECT c.first_id, format('seal %s of chain %s (audit rows from %s): %s', c.pos,
           memoriesdb_internal.audit_chain_name(c.chain), c.first_id,
           CASE WHEN c.seal_hash IS DISTINCT FROM c.expect_hash THEN 'seal edited'
                WHEN c.pos <> c.expect_pos THEN 'a seal before it is missing'
                ELSE 'chain broken: prev_hash does not match the previous seal' END)
    FROM (SELECT s.*, coalesce(s.chain_seq, s.seq) AS pos,
                 memoriesdb_internal.audit_seal_hash(s) AS expect_hash,
                 coalesce(lag(coalesce(s.chain_seq, s.seq)) OVER w, 0) + 1 AS expect_pos,
                 coalesce(lag(s.seal_hash) OVER w,
                          CASE WHEN s.chain IS NULL THEN memoriesdb_internal.audit_genesis()
                               ELSE memoriesdb_internal.audit_genesis(s.chain) END) AS expect_prev
            FROM memoriesdb.audit_seals AS s
          WINDOW w AS (PARTITION BY s.chain ORDER BY coalesce(s.chain_seq, s.seq), s.seq)) AS c
   WHERE c.seal_hash IS DISTINCT FROM c.expect_hash OR c.pos <> c.expect_pos
      OR c.prev_hash IS DISTINCT FROM c.expect_prev
  UNION ALL
  -- 5. the seals of one transaction name each other: neither side of a transfer goes alone. A peer
  -- sealed later (its chain was held at the commit) is named without its position (seq null) by the
  -- seals made before it, and names them with theirs; until it is sealed it waits in audit_pending.
  SELECT s.first_id, format('seal %s of chain %s: its peer, seal %s of chain %s, is missing or does not name it back',
                            s.chain_seq, s.chain, coalesce(p->>'seq', '(sealed later)'), p->>'chain')
    FROM memoriesdb.audit_seals AS s
    CROSS JOIN LATERAL jsonb_array_elements(s.peers) AS p
   WHERE s.peers IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS q
                      WHERE q.chain::text = p->>'chain' AND q.txid = s.txid
                        AND (p->'seq' = 'null'::jsonb OR q.chain_seq::text = p->>'seq')
                        AND (q.peers @> jsonb_build_array(jsonb_build_object('chain', s.chain, 'seq', s.chain_seq))
                             OR q.peers @> jsonb_build_array(jsonb_build_object('chain', s.chain, 'seq', NULL))))
     AND NOT (p->'seq' = 'null'::jsonb
              AND EXISTS (SELECT 1 FROM memoriesdb_internal.audit_pending AS w
                           WHERE w.chain::text = p->>'chain' AND w.txid = s.txid))
  UNION ALL
  SELECT c.audit_id, c.problem FROM memoriesdb_internal.audit_checkpoint_findings(checkpoint) AS c WHERE checkpoint IS NOT NULL
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_findings(jsonb) IS
  'Internal: every problem verification finds in the audit log and its chains, and, given a checkpoint, against it. Used by verify_audit_chain() and audit_problems().';

CREATE OR REPLACE FUNCTION memoriesdb_internal.check_checkpoint(checkpoint jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF checkpoint IS NULL OR jsonb_typeof(checkpoint) <> 'object'
     OR checkpoint->>'format' IS DISTINCT FROM 'memoriesdb-checkpoint/1'
     OR jsonb_typeof(checkpoint->'chains') IS DISTINCT FROM 'array'
     OR jsonb_typeof(checkpoint->'audit_rows') IS DISTINCT FROM 'number'
     OR (checkpoint ? 'waiting' AND (jsonb_typeof(checkpoint->'waiting') IS DISTINCT FROM 'array'
         OR EXISTS (SELECT 1 FROM jsonb_array_elements(checkpoint->'waiting') AS w
                     WHERE coalesce(w->>'chain', '') !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                        OR coalesce(w->>'txid', '') !~ '^[0-9]{1,19}$' OR jsonb_typeof(w->'rows') IS DISTINCT FROM 'number'
                        OR coalesce(w->>'digest', '') !~ '^[0-9a-f]{64}$')))
     OR EXISTS (SELECT 1 FROM jsonb_array_elements(checkpoint->'chains') AS e
                 WHERE jsonb_typeof(e->'seq') IS DISTINCT FROM 'number'
                    OR coalesce(e->>'hash', '') !~ '^[0-9a-f]{64}$'
                    OR coalesce(e->>'chain', '') !~ '^(legacy|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$') THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB25', MESSAGE = 'not an audit checkpoint',
      DETAIL = format('format %s', coalesce(checkpoint->>'format', 'missing')),
      HINT = 'pass a checkpoint returned by memoriesdb.audit_checkpoint() (format memoriesdb-checkpoint/1), unchanged';
  END IF;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_checkpoint(jsonb) IS 'Internal: refuses (MDB25) what is not a checkpoint of format memoriesdb-checkpoint/1.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_verdict(checkpoint jsonb)
RETURNS TABLE (ok boolean, rows_checked bigint, seals_checked bigint, first_broken_id bigint, problem text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT f.problem IS NULL, (SELECT count(*) FROM memoriesdb.audit_log), (SELECT count(*) FROM memoriesdb.audit_seals),
         f.audit_id, f.problem
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (SELECT x.audit_id, x.problem FROM memoriesdb_internal.audit_findings(checkpoint) AS x
                        ORDER BY x.audit_id NULLS LAST LIMIT 1) AS f ON true
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_verdict(jsonb) IS
  'Internal: the row verify_audit_chain() returns: ok, what was checked, and the first problem (by audit row) audit_findings() names.';

CREATE OR REPLACE FUNCTION memoriesdb.verify_audit_chain()
RETURNS TABLE (ok boolean, rows_checked bigint, seals_checked bigint, first_broken_id bigint, problem text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$ SELECT * FROM memoriesdb_internal.audit_verdict(NULL) $$;
COMMENT ON FUNCTION memoriesdb.verify_audit_chain() IS
  'Recomputes every audit row hash, every seal digest and every chain of seals (per owner, and the legacy chain). ok is true when nothing was edited, deleted, inserted or reordered behind the ledger; otherwise first_broken_id names the first broken audit row and problem says what is wrong. What cannot be seen from inside (the newest transactions removed whole, a chain rewritten consistently, TRUNCATE): verify_audit_chain(checkpoint) against a checkpoint kept outside.';

CREATE OR REPLACE FUNCTION memoriesdb.verify_audit_chain(checkpoint jsonb)
RETURNS TABLE (ok boolean, rows_checked bigint, seals_checked bigint, first_broken_id bigint, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
BEGIN
  PERFORM memoriesdb_internal.check_checkpoint(checkpoint);
  RETURN QUERY SELECT * FROM memoriesdb_internal.audit_verdict(checkpoint);
END
$$;
COMMENT ON FUNCTION memoriesdb.verify_audit_chain(jsonb) IS
  'Everything verify_audit_chain() checks, and the log against a checkpoint taken earlier by audit_checkpoint() and kept outside: a chain shorter than the checkpoint (tail truncated), another seal at a checkpointed position (chain rewritten or forked), emptied tables (TRUNCATE), a checkpoint altered or of another ledger. MDB25 for what is not a checkpoint. audit_problems(checkpoint) lists every problem.';

CREATE OR REPLACE FUNCTION memoriesdb.verify_checkpoint(checkpoint jsonb)
RETURNS TABLE (ok boolean, first_broken_id bigint, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
BEGIN
  PERFORM memoriesdb_internal.check_checkpoint(checkpoint);
  RETURN QUERY
    SELECT f.problem IS NULL, f.audit_id, f.problem
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (SELECT x.audit_id, x.problem FROM memoriesdb_internal.audit_checkpoint_findings(checkpoint) AS x
                          ORDER BY x.audit_id NULLS LAST LIMIT 1) AS f ON true;
END
$$;
COMMENT ON FUNCTION memoriesdb.verify_checkpoint(jsonb) IS
  'Only the checkpoint''s part of verify_audit_chain(checkpoint): every chain head it holds is still there, unchanged, the log has as many rows, the checkpoint is unaltered and of this ledger. One index lookup per chain: to check many stored checkpoints, run verify_audit_chain() once and this for each (memoriesdb verify-audit does).';

CREATE OR REPLACE FUNCTION memoriesdb.audit_problems(checkpoint jsonb DEFAULT NULL)
RETURNS TABLE (audit_id bigint, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
BEGIN
  IF checkpoint IS NOT NULL THEN PERFORM memoriesdb_internal.check_checkpoint(checkpoint); END IF;
  RETURN QUERY SELECT x.audit_id, x.problem FROM memoriesdb_internal.audit_findings(checkpoint) AS x
                ORDER BY x.audit_id NULLS LAST, x.problem;
END
$$;
COMMENT ON FUNCTION memoriesdb.audit_problems(jsonb) IS
  'Every problem verify_audit_chain() (with the checkpoint, if given) would name, the first audit row concerned first; no rows when the history verifies.';

CREATE OR REPLACE FUNCTION memoriesdb.audit_head() RETURNS TABLE (seq bigint, seal_hash bytea, sealed_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$ SELECT s.seq, s.seal_hash, s.created_at FROM memoriesdb.audit_seals AS s ORDER BY s.seq DESC LIMIT 1 $$;
COMMENT ON FUNCTION memoriesdb.audit_head() IS
  'The newest seal written (of any chain). Kept for v0.1 clients: anchor audit_checkpoint() instead, which holds every chain''s head.';

-- receipts ------------------------------------------------------------------
CREATE OR REPLACE FUNCTION memoriesdb.audit_receipts(memory_id uuid) RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
BEGIN
  PERFORM memoriesdb_internal.require_owner(audit_receipts.memory_id, uid, 'fetch the receipts of');
  RETURN QUERY
    SELECT jsonb_build_object('chain', memoriesdb_internal.audit_chain_name(s.chain), 'seq', coalesce(s.chain_seq, s.seq),
                              'seal_hash', encode(s.seal_hash, 'hex'),   -- no txid: the cluster's transaction counter
                              'sealed_at', to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                              'memory_id', audit_receipts.memory_id)
      FROM memoriesdb.audit_seals AS s
     -- the caller's own chain (and the legacy one) only: a memory transferred to her has earlier
     -- seals in its former owners' chains, which would name them (their user ids, their seal
     -- counts, their times) and which verify_receipt() does not let her verify anyway
     WHERE (s.chain = uid OR s.chain IS NULL)
       AND EXISTS (SELECT 1 FROM memoriesdb.audit_log AS a
                    WHERE a.memory_id = audit_receipts.memory_id AND a.txid = s.txid
                      AND a.chain IS NOT DISTINCT FROM s.chain AND a.id BETWEEN s.first_id AND s.last_id)
     ORDER BY s.created_at, s.seq;
END
$$;
COMMENT ON FUNCTION memoriesdb.audit_receipts(uuid) IS
  'The receipts of every sealed write about a memory the caller owns (its creation, revisions, grants, transfers…) in her own chain (or the legacy one; not the seals of its former owners'' chains before a transfer to her), oldest first: chain, seq, seal_hash, sealed_at (not the txid: the distance between two of them would count every tenant''s transactions in between). Keep them: verify_receipt(receipt, checkpoint) proves later that the write is still in the history a checkpoint commits to, even against a superuser. Another user''s memory: not found (MDB03 or MDB04 as for every API function).';

CREATE OR REPLACE FUNCTION memoriesdb.verify_receipt(receipt jsonb, checkpoint jsonb)
RETURNS TABLE (ok boolean, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  chain_name text := receipt->>'chain';
  chain_id uuid;
  pos bigint;
  head_pos bigint;
  uid uuid := memoriesdb.current_user_id();
  bad text;
BEGIN
  PERFORM memoriesdb_internal.check_checkpoint(checkpoint);
  IF jsonb_typeof(receipt) IS DISTINCT FROM 'object' OR jsonb_typeof(receipt->'seq') IS DISTINCT FROM 'number'
     OR coalesce(receipt->>'seal_hash', '') !~ '^[0-9a-f]{64}$'
     OR coalesce(chain_name, '') !~ '^(legacy|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB25', MESSAGE = 'not an audit receipt',
      HINT = 'pass a receipt returned by memoriesdb.audit_receipts(), unchanged';
  END IF;
  -- a client verifies receipts of its own chain only (a chain's length is its owner's business);
  -- the auditor any (the role in force: a login that SET ROLE to a client role is that client)
  IF NOT pg_has_role(coalesce(nullif(current_setting('role'), 'none'), session_user::text)::name, 'memoriesdb_auditor', 'MEMBER')
     AND chain_name NOT IN ('legacy', coalesce(uid::text, '')) THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB25', MESSAGE = 'not a receipt of your chain',
      HINT = 'a user verifies the receipts of its own writes; an auditor any';
  END IF;
  pos := (receipt->>'seq')::bigint;
  chain_id := CASE WHEN chain_name <> 'legacy' THEN chain_name::uuid END;
  SELECT (e->>'seq')::bigint INTO head_pos FROM jsonb_array_elements(checkpoint->'chains') AS e WHERE e->>'chain' = chain_name;
  bad := CASE
    WHEN checkpoint->>'root' IS DISTINCT FROM encode(memoriesdb_internal.audit_merkle_root(checkpoint->'chains'), 'hex')
      THEN 'the checkpoint''s root does not match its chains (the checkpoint was altered)'
    WHEN head_pos IS NULL THEN format('the checkpoint holds no chain %s: it was taken before the write', chain_name)
    WHEN head_pos < pos THEN format('the checkpoint holds chain %s up to seal %s, the receipt is seal %s: it was taken before the write', chain_name, head_pos, pos)
    END;
  IF bad IS NULL THEN
    -- the seal is still there, unchanged, and linked by hashes up to the checkpointed head
    WITH path AS (
      SELECT s.*, coalesce(s.chain_seq, s.seq) AS at_pos, memoriesdb_internal.audit_seal_hash(s) AS expect_hash,
             lag(s.seal_hash) OVER (ORDER BY coalesce(s.chain_seq, s.seq), s.seq) AS prev_seal,
             lag(coalesce(s.chain_seq, s.seq)) OVER (ORDER BY coalesce(s.chain_seq, s.seq), s.seq) AS prev_p
        FROM (SELECT t.* FROM memoriesdb.audit_seals AS t       -- each branch one index range
               WHERE chain_name = 'legacy' AND t.chain IS NULL AND t.seq BETWEEN pos AND head_pos
              UNION ALL
              SELECT t.* FROM memoriesdb.audit_seals AS t
               WHERE t.chain = chain_id AND t.chain_seq BETWEEN pos AND head_pos) AS s)
    SELECT CASE
      WHEN count(*) <> head_pos - pos + 1 THEN format('chain %s: %s of the seals %s..%s are missing', chain_name, head_pos - pos + 1 - count(*), pos, head_pos)
      WHEN bool_or(w.at_pos = pos AND w.seal_hash <> decode(receipt->>'seal_hash', 'hex'))
        THEN format('chain %s, seal %s: not the seal of the receipt (the write was rewritten or removed)', chain_name, pos)
      WHEN bool_or(w.seal_hash <> w.expect_hash) THEN format('chain %s: a seal between %s and %s was edited', chain_name, pos, head_pos)
      WHEN bool_or(w.at_pos > pos AND (w.prev_hash <> w.prev_seal OR w.prev_p <> w.at_pos - 1)) THEN format('chain %s: the seals between %s and %s are not linked (rewritten or forked)', chain_name, pos, head_pos)
      WHEN bool_or(w.at_pos = head_pos AND encode(w.seal_hash, 'hex') <> (SELECT e->>'hash' FROM jsonb_array_elements(checkpoint->'chains') AS e WHERE e->>'chain' = chain_name))
        THEN format('chain %s, seal %s: not the seal the checkpoint holds (rewritten or forked)', chain_name, head_pos)
      END INTO bad
      FROM path AS w;
  END IF;
  IF bad IS NULL THEN
    -- and the write itself: the audit rows the receipt's seal covers are all there, unedited, in
    -- their order (a seal kept while its rows were deleted or edited no longer proves the write)
    SELECT CASE
      WHEN g.n <> s.row_count OR g.digest IS DISTINCT FROM s.rows_digest
        THEN format('chain %s, seal %s: %s of its %s audit rows remain, or not as sealed (the write was removed or rewritten)',
                    chain_name, pos, g.n, s.row_count)
      WHEN g.edited > 0 THEN format('chain %s, seal %s: %s of its audit rows were edited (the write was rewritten)', chain_name, pos, g.edited)
      END INTO bad
      FROM (SELECT t.* FROM memoriesdb.audit_seals AS t WHERE chain_name = 'legacy' AND t.chain IS NULL AND t.seq = pos
            UNION ALL
            SELECT t.* FROM memoriesdb.audit_seals AS t WHERE t.chain = chain_id AND t.chain_seq = pos) AS s
      CROSS JOIN LATERAL (
        SELECT count(*) AS n, sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id)) AS digest,
               count(*) FILTER (WHERE a.row_hash IS DISTINCT FROM sha256(memoriesdb_internal.audit_canonical(a))) AS edited
          FROM memoriesdb.audit_log AS a
         WHERE a.txid = s.txid AND a.chain IS NOT DISTINCT FROM s.chain AND a.id BETWEEN s.first_id AND s.last_id) AS g;
  END IF;
  RETURN QUERY SELECT bad IS NULL, bad;
END
$$;
COMMENT ON FUNCTION memoriesdb.verify_receipt(jsonb, jsonb) IS
  'Proves a write is still in the history a checkpoint commits to: the receipt''s seal is still at its position with its hash, the audit rows it covers are all there and unedited, every seal from it to the checkpoint''s head of that chain is intact and hash-linked, and the head is the checkpointed one. A user verifies receipts of its own chain; the auditor any. MDB25 for what is not a receipt or checkpoint.';

-- The per-chain seals take their seq from memoriesdb_internal.audit_seal_seq (audit_chains.sql), but a
-- run-once change deployed between audit_chains and this change (say one adding config rows, which are
-- audited) is sealed by the v0.4.0 functions, which take the last seq + 1 and leave the sequence behind:
-- the first seal of this version would then collide (unique_violation on audit_seals' seq, on every
-- audited write). Past them, as the deploying
-- superuser (the seals are under forced row-level security); nothing when the sequence is ahead.
RESET ROLE;
SELECT pg_catalog.setval('memoriesdb_internal.audit_seal_seq', m.top)
  FROM (SELECT max(s.seq) AS top FROM memoriesdb.audit_seals AS s) AS m,
       (SELECT CASE WHEN q.is_called THEN q.last_value + 1 ELSE q.last_value END AS next_seq
          FROM memoriesdb_internal.audit_seal_seq AS q) AS n
 WHERE m.top >= n.next_seq;

COMMIT;
