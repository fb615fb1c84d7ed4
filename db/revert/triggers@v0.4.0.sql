-- Revert memoriesdb:triggers from pg
-- Back to the functions of triggers as released in v0.3.0 (triggers@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

DROP TRIGGER IF EXISTS stamp ON memoriesdb.idempotency_keys;
DROP TRIGGER IF EXISTS audit ON memoriesdb.idempotency_keys;
-- added after v0.3.0: the offers tables' triggers
DROP TRIGGER stamp ON memoriesdb.accepted_senders;
DROP TRIGGER audit ON memoriesdb.accepted_senders;
DROP TRIGGER stamp ON memoriesdb.memory_offers;
DROP TRIGGER audit ON memoriesdb.memory_offers;

-- stamp: created_*/updated_* from the clock and the context: every ledger table
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.api_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.config FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.edge_types FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.embedding_schedule FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_edges FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_grants FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_revisions FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_transfers FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.users FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.vindexing_runs FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.vindexing_schedule FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();

-- audit: one audit row per row change (the argument: the column naming the memory it is about): every ledger table but the queues
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.api_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.config FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.edge_types FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_edges FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('source_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_grants FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_revisions FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_transfers FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.users FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();

-- append_only: UPDATE, DELETE and TRUNCATE refused, for every role: the audit log, its seals, the access log
CREATE OR REPLACE TRIGGER append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON memoriesdb.access_log FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.refuse_change();
CREATE OR REPLACE TRIGGER append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON memoriesdb.audit_log FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.refuse_change();
CREATE OR REPLACE TRIGGER append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON memoriesdb.audit_seals FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.refuse_change();

-- text_index: what the text indexes hold follows content (content_tsv, content_trgm: all of it, or what fits)
CREATE OR REPLACE TRIGGER text_index BEFORE INSERT OR UPDATE OF content ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.set_text_index_columns();

-- hash_row: each audit row hashes itself at insert
CREATE OR REPLACE TRIGGER hash_row BEFORE INSERT ON memoriesdb.audit_log FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_hash_row();

-- enqueue_embedding: a new memory, or new content, queues its embedding
CREATE OR REPLACE TRIGGER enqueue_embedding AFTER INSERT ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.enqueue_embedding();
CREATE OR REPLACE TRIGGER enqueue_embedding_on_revise AFTER UPDATE OF content_hash ON memoriesdb.memories FOR EACH ROW WHEN ((old.content_hash IS DISTINCT FROM new.content_hash)) EXECUTE FUNCTION memoriesdb_internal.enqueue_embedding();

-- notify: workers listening on memoriesdb_embedding wake when jobs become ready
CREATE OR REPLACE TRIGGER notify AFTER INSERT OR UPDATE OF content_hash ON memoriesdb.embedding_schedule FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.notify_embedding();

-- enqueue_vindexing: memory_graph follows new embeddings and edges
CREATE OR REPLACE TRIGGER enqueue_vindexing AFTER UPDATE OF embedding ON memoriesdb.memories FOR EACH ROW WHEN ((new.embedding IS NOT NULL)) EXECUTE FUNCTION memoriesdb_internal.enqueue_vindexing();
CREATE OR REPLACE TRIGGER enqueue_vindexing AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_edges FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.enqueue_vindexing();

COMMIT;
