-- Revert memoriesdb:audit_log from pg: restores the bodies of audit_log@v0.4.0
-- Reworked after @v0.3.0 (released version: audit_log@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: audit_log@v0.2.0
-- requires: internal_schema
-- Live functions of the audit log and its hash chain: Row hashing, per-transaction seals, append-only enforcement, verify_audit_chain(), audit_head().
-- Design of the chain: see the header of audit_log@v0.1.0.sql (tables, triggers).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework audit_log`.
-- Run once, by audit_log@v0.1.0.sql: tables audit_log and audit_seals, their indexes, policies and triggers. (The function bodies
-- in audit_log@v0.1.0.sql and audit_log@v0.2.0.sql are released versions, superseded by this file.)
-- Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- what seals that wait for their chain added
DROP FUNCTION memoriesdb.audit_seal_pending(integer), memoriesdb_internal.audit_unsealed(xid8, uuid),
  memoriesdb_internal.audit_adopt(uuid, memoriesdb_internal.audit_chain_heads, integer),
  memoriesdb_internal.audit_lock_chain(uuid);
-- what per-owner chains added
DROP FUNCTION memoriesdb.verify_receipt(jsonb, jsonb), memoriesdb.audit_receipts(uuid), memoriesdb.verify_checkpoint(jsonb), memoriesdb_internal.audit_verdict(jsonb),
  memoriesdb_internal.audit_checkpoint_findings(jsonb), memoriesdb_internal.audit_seal_at(text, bigint), memoriesdb_internal.audit_chain_end(text),
  memoriesdb.audit_problems(jsonb), memoriesdb.verify_audit_chain(jsonb), memoriesdb.audit_checkpoint(),
  memoriesdb_internal.check_checkpoint(jsonb), memoriesdb_internal.audit_findings(jsonb),
  memoriesdb_internal.audit_merkle_root(jsonb), memoriesdb_internal.audit_chain_of(uuid),
  memoriesdb_internal.audit_chain_name(uuid), memoriesdb_internal.audit_common_chain(),
  memoriesdb_internal.audit_genesis(uuid);

-- canonical serialisation: a JSON array (unambiguous field boundaries, NULL
-- stays null) with the timestamp as integer microseconds since the epoch, so
-- the hash does not depend on TimeZone, DateStyle or dump/restore.
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_canonical(a memoriesdb.audit_log) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  -- login and vouched_by (v0.4) are appended only when present, so a row written
  -- before they existed keeps the canonical form, and the hash, it was sealed with
  SELECT convert_to((jsonb_build_array(
    a.id, (extract(epoch FROM a.created_at) * 1000000)::bigint, a.created_by, a.db_role,
    a.application_name, a.txid::text, a.table_name, a.row_id, a.memory_id, a.op,
    a.old_row, a.new_row)
    || CASE WHEN a.login IS NOT NULL OR a.vouched_by IS NOT NULL
            THEN jsonb_build_array(a.login, a.vouched_by) ELSE '[]'::jsonb END)::text, 'UTF8')
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_canonical(memoriesdb.audit_log) IS
  'The bytes an audit row''s row_hash is the SHA-256 of. Independent of session settings. login and vouched_by are part of it when present (rows from v0.4 on), absent from rows written before them.';

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
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT sha256(convert_to(jsonb_build_array(s.seq, s.txid::text, s.first_id, s.last_id, s.row_count,
         encode(s.rows_digest, 'hex'), encode(s.prev_hash, 'hex'))::text, 'UTF8'))
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_seal_hash(memoriesdb.audit_seals) IS 'The seal_hash a seal must carry.';

-- genesis: the prev_hash of seal 1
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_genesis() RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT sha256('memoriesdb audit chain'::bytea) $$;
COMMENT ON FUNCTION memoriesdb_internal.audit_genesis() IS
  'Internal: the prev_hash of the first seal of the chain.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_seal_now(x xid8) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  head memoriesdb.audit_seals;
  s    memoriesdb.audit_seals;
  sealed_up_to bigint;
BEGIN
  -- the only serialised step of auditing; held from here to the end of COMMIT
  -- (a table lock no client may take: advisory lock keys are public)
  LOCK TABLE memoriesdb_internal.audit_seal_lock IN EXCLUSIVE MODE;
  SELECT * INTO head FROM memoriesdb.audit_seals ORDER BY seq DESC LIMIT 1;
  SELECT coalesce(max(p.last_id), 0) INTO sealed_up_to FROM memoriesdb.audit_seals AS p WHERE p.txid = x;
  -- "+ 0": only the txid index may serve this; a range scan of the primary key
  -- would read every newer audit row of every transaction
  SELECT min(a.id), max(a.id), count(*)::integer, sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id))
    INTO s.first_id, s.last_id, s.row_count, s.rows_digest
    FROM memoriesdb.audit_log AS a
   WHERE a.txid = x AND a.id + 0 > sealed_up_to;
  IF s.row_count = 0 THEN RETURN; END IF;
  s.seq := coalesce(head.seq, 0) + 1;
  s.txid := x;
  s.prev_hash := coalesce(head.seal_hash, memoriesdb_internal.audit_genesis());
  s.created_at := now();
  s.seal_hash := memoriesdb_internal.audit_seal_hash(s);
  INSERT INTO memoriesdb.audit_seals SELECT s.*;
EXCEPTION WHEN unique_violation THEN
  -- only under REPEATABLE READ / SERIALIZABLE: the snapshot predates the head
  RAISE EXCEPTION USING ERRCODE = '40001',
    MESSAGE = 'could not seal the audit log: another transaction sealed first',
    HINT = 'retry the transaction';
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_seal_now(xid8) IS 'Internal: writes the seal of transaction x''s unsealed audit rows.';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_seal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- fires once per audit row at COMMIT; the first firing seals them all
  IF NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS s
                  WHERE s.txid = NEW.txid AND NEW.id BETWEEN s.first_id AND s.last_id) THEN
    PERFORM memoriesdb_internal.audit_seal_now(NEW.txid);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_seal() IS
  'Trigger (deferred constraint trigger on audit_log, fires at COMMIT): seals the transaction''s audit rows once, through audit_seal_now().';

CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_strip(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  -- embeddings are replaced by their SHA-256 and derived search columns left
  -- out, so the log stays lean
  SELECT CASE WHEN j ? 'embedding'
    THEN (j - 'embedding' - 'content_tsv' - 'content_trgm') || jsonb_build_object('embedding_sha256',
           CASE WHEN j->>'embedding' IS NOT NULL THEN encode(sha256(convert_to(j->>'embedding', 'UTF8')), 'hex') END)
    ELSE j - 'content_tsv' - 'content_trgm' END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_strip(jsonb) IS
  'Internal: a row image as the audit log keeps it: the embedding replaced by its SHA-256, derived search columns (content_tsv, content_trgm) left out.';

-- the generic row trigger every ledger table carries
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o jsonb;
  n jsonb;
  r jsonb;
  memory_col text := TG_ARGV[0];
  actor uuid := memoriesdb.current_user_id();
  vouched name;
BEGIN
  -- who vouched: a backend login's context that no proof backs (for any other login the
  -- context was proven, or is none: no second proof check)
  IF actor IS NOT NULL AND pg_has_role(session_user, 'memoriesdb_backend', 'MEMBER')
     AND NOT memoriesdb.context_proven(current_setting('app.current_user', true), current_setting('app.current_user_proof', true)) THEN
    vouched := session_user;
  END IF;
  IF TG_OP <> 'INSERT' THEN o := memoriesdb_internal.audit_strip(to_jsonb(OLD)); END IF;
  IF TG_OP <> 'DELETE' THEN n := memoriesdb_internal.audit_strip(to_jsonb(NEW)); END IF;
  r := coalesce(n, o);
  INSERT INTO memoriesdb.audit_log
    (created_by, db_role, application_name, table_name, row_id, memory_id, op, old_row, new_row, login, vouched_by)
  VALUES (actor,
          coalesce(nullif(current_setting('role'), 'none'), session_user::text),
          nullif(current_setting('application_name'), ''),
          TG_TABLE_NAME, (r->>'id')::uuid,
          CASE WHEN memory_col IS NOT NULL THEN (r->>memory_col)::uuid END,
          TG_OP, o, n, session_user, vouched);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.audit_row() IS
  'Trigger (AFTER ROW, every ledger table): writes one audit_log row: the context user, the role in force (db_role), the login (session_user) and the memoriesdb_backend login that vouched for the context, if any. TG_ARGV[0] names the column holding the memory the row is about.';

-- reading the chain ---------------------------------------------------------
CREATE OR REPLACE FUNCTION memoriesdb.verify_audit_chain()
RETURNS TABLE (ok boolean, rows_checked bigint, seals_checked bigint, first_broken_id bigint, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n_rows bigint; n_seals bigint;
  bad_id bigint; bad_text text;
  cand_id bigint; cand_text text;
BEGIN
  SELECT count(*) INTO n_rows FROM memoriesdb.audit_log;
  SELECT count(*) INTO n_seals FROM memoriesdb.audit_seals;

  -- 1. a row whose contents no longer match its hash (edited, or ids swapped)
  SELECT a.id, format('audit row %s: contents do not match its hash (edited)', a.id)
    INTO bad_id, bad_text
    FROM memoriesdb.audit_log AS a
   WHERE a.row_hash IS DISTINCT FROM sha256(memoriesdb_internal.audit_canonical(a))
   ORDER BY a.id LIMIT 1;

  -- 2. a committed row no seal covers (inserted behind the ledger's back)
  SELECT a.id, format('audit row %s: not covered by any seal (inserted outside the ledger)', a.id)
    INTO cand_id, cand_text
    FROM memoriesdb.audit_log AS a
   WHERE NOT EXISTS (SELECT 1 FROM memoriesdb.audit_seals AS s
                      WHERE s.txid = a.txid AND a.id BETWEEN s.first_id AND s.last_id)
   ORDER BY a.id LIMIT 1;
  IF cand_id < bad_id OR bad_id IS NULL THEN bad_id := cand_id; bad_text := cand_text; END IF;

  -- 3. a seal whose rows are no longer all there, or in another order
  SELECT s.first_id, format('audit rows %s..%s (seal %s): %s of %s rows remain or their order changed (deleted or reordered)',
                            s.first_id, s.last_id, s.seq, g.n, s.row_count)
    INTO cand_id, cand_text
    FROM memoriesdb.audit_seals AS s
    CROSS JOIN LATERAL (
      SELECT count(*) AS n, sha256(string_agg(a.row_hash, ''::bytea ORDER BY a.id)) AS digest
        FROM memoriesdb.audit_log AS a
       WHERE a.txid = s.txid AND a.id BETWEEN s.first_id AND s.last_id) AS g
   WHERE g.n <> s.row_count OR g.digest IS DISTINCT FROM s.rows_digest
   ORDER BY s.first_id LIMIT 1;
  IF cand_id < bad_id OR bad_id IS NULL THEN bad_id := cand_id; bad_text := cand_text; END IF;

  -- 4. the chain of seals itself: edited, removed or inserted seals
  SELECT c.first_id, format('seal %s (audit rows from %s): %s', c.seq, c.first_id,
           CASE WHEN c.seal_hash IS DISTINCT FROM c.expect_hash THEN 'seal edited'
                WHEN c.seq <> c.expect_seq THEN 'a seal before it is missing'
                ELSE 'chain broken: prev_hash does not match the previous seal' END)
    INTO cand_id, cand_text
    FROM (SELECT s.*, memoriesdb_internal.audit_seal_hash(s) AS expect_hash,
                 coalesce(lag(s.seq) OVER w, 0) + 1 AS expect_seq,
                 coalesce(lag(s.seal_hash) OVER w, memoriesdb_internal.audit_genesis()) AS expect_prev
            FROM memoriesdb.audit_seals AS s WINDOW w AS (ORDER BY s.seq)) AS c
   WHERE c.seal_hash IS DISTINCT FROM c.expect_hash OR c.seq <> c.expect_seq
      OR c.prev_hash IS DISTINCT FROM c.expect_prev
   ORDER BY c.seq LIMIT 1;
  IF cand_id < bad_id OR bad_id IS NULL THEN bad_id := cand_id; bad_text := cand_text; END IF;

  RETURN QUERY SELECT bad_text IS NULL, n_rows, n_seals, bad_id, bad_text;
END
$$;
COMMENT ON FUNCTION memoriesdb.verify_audit_chain() IS
  'Recomputes every audit row hash, every seal digest and the chain of seals. ok is true when nothing was edited, deleted, inserted or reordered behind the ledger; otherwise first_broken_id names the first broken audit row and problem says what is wrong. Deleting the newest transactions whole cannot be seen from inside: anchor audit_head() outside the database.';

CREATE OR REPLACE FUNCTION memoriesdb.audit_head() RETURNS TABLE (seq bigint, seal_hash bytea, sealed_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT s.seq, s.seal_hash, s.created_at FROM memoriesdb.audit_seals AS s ORDER BY s.seq DESC LIMIT 1 $$;
COMMENT ON FUNCTION memoriesdb.audit_head() IS 'The newest seal of the audit chain: record it outside the database to make truncation of the tail detectable.';

COMMIT;
