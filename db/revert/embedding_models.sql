-- Revert memoriesdb:embedding_models from pg
-- Back to one job per memory (the active model's; the other models' jobs go) and one vector per memory
-- (memories.embedding, which mirrors the active model's and stays): the other models' vectors are lost.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.embedding_schedule AS s
 WHERE s.model_id IS DISTINCT FROM (SELECT em.id FROM memoriesdb.embedding_models AS em WHERE em.state = 'active');
DROP INDEX memoriesdb.embedding_schedule_model_ready;
ALTER TABLE memoriesdb.embedding_schedule DROP CONSTRAINT embedding_schedule_pkey;
ALTER TABLE memoriesdb.embedding_schedule DROP COLUMN model_id;
ALTER TABLE memoriesdb.embedding_schedule ADD CONSTRAINT embedding_schedule_pkey PRIMARY KEY (memory_id);
DROP TABLE memoriesdb.embeddings;
DROP FUNCTION memoriesdb_internal.check_model_dimension();
DROP TABLE memoriesdb.embedding_models;
COMMIT;
