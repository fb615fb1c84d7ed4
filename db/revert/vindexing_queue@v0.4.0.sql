-- Revert memoriesdb:vindexing_queue from pg
-- Back to the functions of vindexing_queue as released in v0.3.0 (vindexing_queue@v0.3.0.sql).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.enqueue_vindexing() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_TABLE_NAME = 'memories' THEN
    INSERT INTO memoriesdb.vindexing_schedule (memory_id, reason) VALUES (NEW.id, 'embedding');
  ELSE
    -- memory_edges only: plpgsql_check also checks this branch against memories,
    -- which has no source_id
    PERFORM 'PRAGMA:disable:check';
    INSERT INTO memoriesdb.vindexing_schedule (memory_id, reason)
    VALUES (coalesce(NEW.source_id, OLD.source_id), 'edge');
  END IF;
  PERFORM pg_notify('memoriesdb_vindexing', '');
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.enqueue_vindexing() IS 'Trigger: a stored embedding or a changed edge adds a vindexing_schedule row.';

CREATE OR REPLACE FUNCTION memoriesdb.vindexing_status()
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

COMMIT;
