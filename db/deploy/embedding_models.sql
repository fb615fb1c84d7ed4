-- Deploy memoriesdb:embedding_models to pg
-- requires: lease_clock
-- requires: internal_schema
-- requires: config
-- Versioned embeddings (run once): the model registry (embedding_models), the vectors of every model
-- (embeddings: one per memory and model, each model its own dimension and its own partial HNSW index,
-- made by add_model()), and embedding jobs keyed by (memory, model). The functions: models_api.sql
-- (add/activate/pause/resume/retire, model_progress), embedding_queue.sql (the queue), model_search.sql.
--
-- memories.embedding stays: it mirrors the ACTIVE model's vectors, so search(), search_hybrid(), the
-- graph and vindexing keep their plans and their HNSW index unchanged; activate_model() rewrites the
-- mirror (and retypes the column when the new model has another dimension) in one transaction.
--
-- Upgrade: the model the stored vectors came from (the most common memories.embedding_model, else
-- 'default') is registered as the active model, provider 'configured' (the worker's own
-- MEMORIESDB_PROVIDER / MEMORIESDB_MODEL), dimension the column's; its vectors are copied into
-- embeddings and every existing job becomes that model's job.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.embedding_models (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$'),
  provider     text NOT NULL CHECK (provider IN ('configured', 'local', 'ollama', 'openai')),
  dimension    integer NOT NULL CHECK (dimension BETWEEN 1 AND 2000),
  state        text NOT NULL DEFAULT 'filling' CHECK (state IN ('filling', 'active', 'paused', 'retired')),
  activated_at timestamptz,
  retired_at   timestamptz,
  created_at   timestamptz NOT NULL,
  created_by   uuid,
  updated_at   timestamptz NOT NULL,
  updated_by   uuid,
  CHECK ((state = 'active') <= (activated_at IS NOT NULL)),
  CHECK ((state = 'retired') = (retired_at IS NOT NULL))
);
COMMENT ON TABLE memoriesdb.embedding_models IS
  'The embedding models (run through models_api.sql only). state: filling (workers embed every memory with it), active (the one search uses by default; memories.embedding mirrors its vectors), paused (no worker claims its jobs; jobs still queue), retired (its vectors and index dropped; the row kept as history). At most one active (embedding_models_one_active). Audited in the common chain.';
COMMENT ON COLUMN memoriesdb.embedding_models.provider IS
  'Which runner provider embeds with it: local, ollama or openai (the model name is the provider''s model), or configured: the worker''s own MEMORIESDB_PROVIDER/MEMORIESDB_MODEL (the model registered at upgrade).';
COMMENT ON COLUMN memoriesdb.embedding_models.dimension IS 'Every vector of the model has this many dimensions (checked on store); at most 2000, the HNSW limit.';
CREATE UNIQUE INDEX embedding_models_one_active ON memoriesdb.embedding_models ((true)) WHERE state = 'active';
ALTER TABLE memoriesdb.embedding_models ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY embedding_models_owner ON memoriesdb.embedding_models TO memoriesdb_owner USING (true) WITH CHECK (true);
-- the search functions (owned by memoriesdb_reader) resolve a model's name: the registry holds no tenant data
CREATE POLICY embedding_models_read ON memoriesdb.embedding_models FOR SELECT TO memoriesdb_reader USING (true);
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.embedding_models FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON memoriesdb.embedding_models FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.audit_row();

CREATE TABLE memoriesdb.embeddings (
  memory_id    uuid NOT NULL REFERENCES memoriesdb.memories ON DELETE CASCADE,
  model_id     uuid NOT NULL REFERENCES memoriesdb.embedding_models,
  content_hash bytea NOT NULL CHECK (octet_length(content_hash) = 32),
  embedding    public.vector NOT NULL,
  created_at   timestamptz NOT NULL,
  created_by   uuid,
  updated_at   timestamptz NOT NULL,
  updated_by   uuid,
  PRIMARY KEY (memory_id, model_id)
);
COMMENT ON TABLE memoriesdb.embeddings IS
  'One L2-normalised vector per (memory, model), of the model''s dimension (check_model_dimension). Written by the worker functions only; read by the search functions under the memories'' row-level security. Each model has a partial HNSW index, embeddings_model_<id without dashes>, on embedding::vector(dimension) (made by add_model(), dropped by retire_model()). Not audited row by row: derived data; the active model''s vectors are audited through memories.embedding.';
COMMENT ON COLUMN memoriesdb.embeddings.content_hash IS 'content_hash of the content the vector was computed from (stale when it differs from the memory''s).';
CREATE INDEX embeddings_model_id ON memoriesdb.embeddings (model_id);
ALTER TABLE memoriesdb.embeddings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY embeddings_owner ON memoriesdb.embeddings TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY embeddings_visible ON memoriesdb.embeddings FOR SELECT TO memoriesdb_reader
  USING (memory_id IN (SELECT m.id FROM memoriesdb.memories AS m));   -- m is itself under RLS
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.embeddings FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.stamp_row();

CREATE FUNCTION memoriesdb_internal.check_model_dimension() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  dim integer;
BEGIN
  SELECT em.dimension INTO dim FROM memoriesdb.embedding_models AS em WHERE em.id = NEW.model_id;
  IF public.vector_dims(NEW.embedding) IS DISTINCT FROM dim THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB11', MESSAGE = 'embedding has the wrong dimension for its model',
      DETAIL = format('model %s has %s dimensions, the vector %s', NEW.model_id, dim, public.vector_dims(NEW.embedding)),
      HINT = 'store vectors made by the model the job names';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.check_model_dimension() IS
  'Trigger: an embeddings row''s vector has its model''s dimension (MDB11 otherwise): the column is an untyped vector so that each model keeps its own dimension.';
CREATE TRIGGER check_dimension BEFORE INSERT OR UPDATE OF embedding, model_id ON memoriesdb.embeddings
  FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.check_model_dimension();

-- the registered model of the stored vectors, and its jobs
INSERT INTO memoriesdb.embedding_models (name, provider, dimension, state, activated_at)
SELECT coalesce((SELECT m.embedding_model FROM memoriesdb.memories AS m WHERE m.embedding_model IS NOT NULL
                  GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1), 'default'),
       'configured',
       (SELECT a.atttypmod FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = 'memoriesdb.memories'::regclass AND a.attname = 'embedding'),
       'active', now();
INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding)
SELECT m.id, em.id, coalesce(m.embedded_hash, m.content_hash), m.embedding   -- no embedded_hash: written behind the API; taken as current
  FROM memoriesdb.memories AS m, memoriesdb.embedding_models AS em
 WHERE m.embedding IS NOT NULL AND em.state = 'active';

-- the existing jobs become the active model's through the column's default, not an UPDATE: no row of
-- the queue changes (its stamp trigger would restamp every one)
DO $$
BEGIN
  EXECUTE format('ALTER TABLE memoriesdb.embedding_schedule ADD COLUMN model_id uuid NOT NULL DEFAULT %L REFERENCES memoriesdb.embedding_models',
                 (SELECT em.id FROM memoriesdb.embedding_models AS em WHERE em.state = 'active'));
END
$$;
ALTER TABLE memoriesdb.embedding_schedule ALTER COLUMN model_id DROP DEFAULT,
  DROP CONSTRAINT embedding_schedule_pkey, ADD PRIMARY KEY (memory_id, model_id);
COMMENT ON COLUMN memoriesdb.embedding_schedule.model_id IS 'The model this job embeds the memory with: one job per (memory, model) for every model that is not retired.';
-- a claim takes the active model's ready jobs first, then the filling models'
CREATE INDEX embedding_schedule_model_ready ON memoriesdb.embedding_schedule (model_id, run_after) WHERE dead_at IS NULL;

COMMIT;
