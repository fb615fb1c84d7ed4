-- Revert memoriesdb:triggers from pg
-- Nothing to undo: this first version of the change restates the triggers the
-- run-once changes created, exactly as they were.
BEGIN;
COMMIT;
