-- Revert memoriesdb:offers from pg
BEGIN;
SET LOCAL ROLE memoriesdb_owner;
DELETE FROM memoriesdb.config WHERE key IN ('offer_lifetime_seconds', 'offer_max_pending');
DROP TABLE memoriesdb.accepted_senders;
DROP TABLE memoriesdb.memory_offers;
COMMIT;
