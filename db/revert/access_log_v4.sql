-- Revert memoriesdb:access_log_v4 from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.config WHERE key = 'access_log_refusal_burst';
DROP TABLE memoriesdb.access_refusal_bursts;
DROP INDEX memoriesdb.access_log_entry_id;
ALTER TABLE memoriesdb.access_log DROP COLUMN mac, DROP COLUMN entry_id, DROP COLUMN vouched_by;
ALTER TABLE memoriesdb.access_log_sink DROP COLUMN mac_key;
COMMIT;
