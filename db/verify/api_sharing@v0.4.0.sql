-- Verify memoriesdb:api_sharing on pg
BEGIN;
SELECT 'memoriesdb_internal.require_other_user(uuid, uuid, text)'::regprocedure;
SELECT 'memoriesdb.share(uuid, uuid, text, timestamp with time zone)'::regprocedure;
SELECT 'memoriesdb.unshare(uuid, uuid)'::regprocedure;
SELECT 'memoriesdb.transfer(uuid, uuid, text)'::regprocedure;
SELECT 1/(strpos(prosrc, 'statement_timestamp()') > 0)::int FROM pg_catalog.pg_proc WHERE oid = 'memoriesdb.share(uuid, uuid, text, timestamptz)'::regprocedure;
SELECT 'memoriesdb.accept_offer(uuid)'::regprocedure, 'memoriesdb.decline_offer(uuid)'::regprocedure,
       'memoriesdb.withdraw_offer(uuid)'::regprocedure, 'memoriesdb.offers()'::regprocedure,
       'memoriesdb.offers_sent()'::regprocedure, 'memoriesdb.accept_sender(uuid)'::regprocedure,
       'memoriesdb.forget_sender(uuid)'::regprocedure, 'memoriesdb.trusted_senders()'::regprocedure,
       'memoriesdb_internal.offer(text, uuid, uuid, uuid, text, timestamptz, text)'::regprocedure,
       'memoriesdb_internal.effect_share(uuid, uuid, uuid, uuid, text, timestamptz)'::regprocedure,
       'memoriesdb_internal.effect_transfer(uuid, uuid, uuid, uuid, text)'::regprocedure,
       'memoriesdb_internal.accepts_from(uuid, uuid)'::regprocedure;
-- share() and transfer() go through the offer unless the recipient accepted the sender
SELECT 1/(strpos(prosrc, 'memoriesdb_internal.offer(') > 0)::int FROM pg_catalog.pg_proc
 WHERE oid IN ('memoriesdb.share(uuid, uuid, text, timestamptz)'::regprocedure, 'memoriesdb.transfer(uuid, uuid, text)'::regprocedure);
SELECT 'memoriesdb.list_grants(uuid)'::regprocedure;
ROLLBACK;
