-- Verify memoriesdb:offers on pg
BEGIN;
SELECT 1/(count(*) = 2)::int FROM pg_catalog.pg_class
 WHERE oid IN ('memoriesdb.memory_offers'::regclass, 'memoriesdb.accepted_senders'::regclass)
   AND relrowsecurity AND relforcerowsecurity;
SELECT id, kind, memory_id, sender_id, recipient_id, level, grant_expires_at, note, offered_at, expires_at
  FROM memoriesdb.memory_offers WHERE false;
SELECT id, user_id, sender_id FROM memoriesdb.accepted_senders WHERE false;
SELECT 1/(count(*) = 2)::int FROM memoriesdb.config WHERE key IN ('offer_lifetime_seconds', 'offer_max_pending');
ROLLBACK;
