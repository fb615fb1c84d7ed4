-- Deploy memoriesdb:triggers to pg
-- Reworked after @v0.4.0 (released version: triggers@v0.4.0.sql); changes since are listed in sqitch.plan.
-- requires: triggers@v0.2.0
-- requires: search_text_fn
-- requires: offers
-- requires: embedding_models
-- Every trigger of the ledger's tables, in one place: which tables are stamped,
-- audited, append-only, and which feed the queues. Re-deployable (CREATE OR
-- REPLACE TRIGGER): change it with `sqitch rework triggers`. The tables' own
-- run-once changes created these triggers first; this file states them as they
-- are now. Not here: the audit log's seal, a deferred constraint trigger, which
-- PostgreSQL cannot replace (audit_log@v0.1.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- stamp: created_*/updated_* from the clock and the context: every ledger table
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.accepted_senders FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.api_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.config FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.edge_types FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.embedding_models FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.embedding_schedule FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.embeddings FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.idempotency_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_edges FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_grants FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_offers FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_revisions FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_transfers FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.users FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.vindexing_runs FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.vindexing_schedule FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();

-- audit: one audit row per row change, every ledger table but the queues. Arguments: the column naming the memory the
-- row is about, the column naming the owner whose chain it belongs to (none: the memory's owner; neither, or NULL in it:
-- the common chain). An edge type is in its creator's chain: a tenant's open transaction never holds the common chain.
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.accepted_senders FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('', 'user_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.api_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('', 'user_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.config FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.edge_types FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('', 'created_by');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.embedding_models FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.idempotency_keys FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id', 'owner_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memories FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('id', 'owner_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_edges FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('source_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_grants FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id', 'owner_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_offers FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id', 'sender_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_revisions FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.memory_transfers FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row('memory_id', 'to_owner');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.users FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();

-- append_only: UPDATE, DELETE and TRUNCATE refused, for every role: the audit log, its seals, the access log
CREATE OR REPLACE TRIGGER append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON memoriesdb.access_log FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.refuse_change();
CREATE OR REPLACE TRIGGER append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON memoriesdb.audit_log FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.refuse_change();
CREATE OR REPLACE TRIGGER append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON memoriesdb.audit_seals FOR EACH STATEMENT EXECUTE FUNCTION memoriesdb_internal.refuse_change();

-- check_dimension: each model's vectors have its dimension (embeddings.embedding is an untyped vector)
CREATE OR REPLACE TRIGGER check_dimension BEFORE INSERT OR UPDATE OF embedding, model_id ON memoriesdb.embeddings FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.check_model_dimension();

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
