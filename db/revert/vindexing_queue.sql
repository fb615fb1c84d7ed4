-- Revert memoriesdb:vindexing_queue from pg (back to the live functions as of @v0.4.0)
-- Reworked after @v0.3.0 (released version: vindexing_queue@v0.3.0.sql); changes since are listed in sqitch.plan.
-- requires: vindexing_queue@v0.1.0
-- requires: internal_schema
-- Live functions of the vindexing queue: Enqueue trigger for changes memory_graph must follow; vindexing_status().
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework vindexing_queue`.
-- Run once, by vindexing_queue@v0.1.0.sql: tables vindexing_schedule and vindexing_runs, policies, triggers. (The function bodies in that file are the released
-- versions, superseded by this file.)
-- Who may execute what: privileges.sql.
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
