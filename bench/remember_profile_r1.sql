-- Proposal R1 for audit_log.sql, measured by bench/remember_profile.py: the SQL helpers called once per audit row or seal,
-- as PL/pgSQL (same expressions; the plan is kept for the session instead of planned again in every calling statement).
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_canonical(a memoriesdb.audit_log) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN convert_to((jsonb_build_array(
    a.id, (extract(epoch FROM a.created_at) * 1000000)::bigint, a.created_by, a.db_role,
    a.application_name, a.txid::text, a.table_name, a.row_id, a.memory_id, a.op,
    a.old_row, a.new_row)
    || CASE WHEN a.login IS NOT NULL OR a.vouched_by IS NOT NULL
            THEN jsonb_build_array(a.login, a.vouched_by) ELSE '[]'::jsonb END)::text, 'UTF8');
END $$;
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_strip(j jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN CASE WHEN j ? 'embedding'
    THEN (j - 'embedding' - 'content_tsv' - 'content_trgm') || jsonb_build_object('embedding_sha256',
           CASE WHEN j->>'embedding' IS NOT NULL THEN encode(sha256(convert_to(j->>'embedding', 'UTF8')), 'hex') END)
    ELSE j - 'content_tsv' - 'content_trgm' END;
END $$;
CREATE OR REPLACE FUNCTION memoriesdb_internal.audit_seal_hash(s memoriesdb.audit_seals) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN sha256(convert_to(jsonb_build_array(s.seq, s.txid::text, s.first_id, s.last_id, s.row_count,
         encode(s.rows_digest, 'hex'), encode(s.prev_hash, 'hex'))::text, 'UTF8'));
END $$;
