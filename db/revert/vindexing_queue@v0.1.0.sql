-- Revert memoriesdb:vindexing_queue from pg
BEGIN;
DROP FUNCTION memoriesdb.vindexing_status();
DROP TRIGGER enqueue_vindexing ON memoriesdb.memories;
DROP TRIGGER enqueue_vindexing ON memoriesdb.memory_edges;
DROP FUNCTION memoriesdb.enqueue_vindexing();
DROP TABLE memoriesdb.vindexing_runs;
DROP TABLE memoriesdb.vindexing_schedule;
COMMIT;
