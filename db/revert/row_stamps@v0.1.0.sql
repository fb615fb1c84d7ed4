-- Revert memoriesdb:row_stamps from pg
BEGIN;
DROP FUNCTION memoriesdb.stamp_row();
COMMIT;
