-- Deploy memoriesdb:vindexing_queue to pg
-- requires: embedding_queue
-- requires: memory_edges
-- Pending work for the derived graph/vector views: a row per stored embedding
-- or changed edge. The vindex worker coalesces them into one refresh.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.vindexing_schedule (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  memory_id  uuid,
  reason     text NOT NULL CHECK (reason IN ('embedding', 'edge')),
  created_at timestamptz NOT NULL,
  created_by uuid,
  updated_at timestamptz NOT NULL,
  updated_by uuid
);
COMMENT ON TABLE memoriesdb.vindexing_schedule IS
  'Changes not yet reflected in the materialized views (memory_graph): one row per stored embedding or edge change. Drained by the vindex worker, many rows per refresh. No tenant content.';

CREATE TABLE memoriesdb.vindexing_runs (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at     timestamptz NOT NULL,
  finished_at    timestamptz NOT NULL,
  rows_coalesced integer NOT NULL,
  worker         text,
  created_at     timestamptz NOT NULL,
  created_by     uuid,
  updated_at     timestamptz NOT NULL,
  updated_by     uuid
);
COMMENT ON TABLE memoriesdb.vindexing_runs IS 'When each refresh of the derived views ran, how long it took and how many pending rows it absorbed.';

ALTER TABLE memoriesdb.vindexing_schedule ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE memoriesdb.vindexing_runs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY vindexing_schedule_owner ON memoriesdb.vindexing_schedule TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY vindexing_runs_owner ON memoriesdb.vindexing_runs TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.vindexing_schedule FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.vindexing_runs FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();

CREATE FUNCTION memoriesdb.enqueue_vindexing() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_TABLE_NAME = 'memories' THEN
    INSERT INTO memoriesdb.vindexing_schedule (memory_id, reason) VALUES (NEW.id, 'embedding');
  ELSE
    INSERT INTO memoriesdb.vindexing_schedule (memory_id, reason)
    VALUES (coalesce(NEW.source_id, OLD.source_id), 'edge');
  END IF;
  PERFORM pg_notify('memoriesdb_vindexing', '');
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb.enqueue_vindexing() IS 'Trigger: a stored embedding or a changed edge adds a vindexing_schedule row.';
CREATE TRIGGER enqueue_vindexing AFTER UPDATE OF embedding ON memoriesdb.memories
  FOR EACH ROW WHEN (NEW.embedding IS NOT NULL) EXECUTE FUNCTION memoriesdb.enqueue_vindexing();
CREATE TRIGGER enqueue_vindexing AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.memory_edges
  FOR EACH ROW EXECUTE FUNCTION memoriesdb.enqueue_vindexing();

CREATE FUNCTION memoriesdb.vindexing_status()
RETURNS TABLE (pending bigint, oldest_pending timestamptz, last_refresh_at timestamptz, last_refresh_ms double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT (SELECT count(*) FROM memoriesdb.vindexing_schedule),
         (SELECT min(created_at) FROM memoriesdb.vindexing_schedule),
         r.finished_at, (extract(epoch FROM r.finished_at - r.started_at) * 1000)::float8
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (SELECT * FROM memoriesdb.vindexing_runs ORDER BY id DESC LIMIT 1) AS r ON true
$$;
COMMENT ON FUNCTION memoriesdb.vindexing_status() IS 'Pending vindexing rows and the last refresh (when, how long).';
GRANT EXECUTE ON FUNCTION memoriesdb.vindexing_status() TO memoriesdb_worker;

COMMIT;
