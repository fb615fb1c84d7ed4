-- Revert memoriesdb:vindexing_queue from pg
-- Back to the released functions of vindexing_queue (v0.1.0): their bodies, as vindexing_queue@v0.1.0.sql
-- wrote them; the helpers they name move back to schema memoriesdb when
-- internal_schema is reverted, so bodies are not checked here.
BEGIN;
SET LOCAL check_function_bodies = off;
SET LOCAL ROLE memoriesdb_owner;

CREATE OR REPLACE FUNCTION memoriesdb_internal.enqueue_vindexing() RETURNS trigger
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
