-- Verify memoriesdb:access_log_v4 on pg
BEGIN;
SELECT entry_id, mac, vouched_by FROM memoriesdb.access_log WHERE false;
SELECT 1/count(*) FROM memoriesdb.access_log_sink WHERE octet_length(mac_key) = 32;
SELECT 1/count(*) FROM pg_catalog.pg_class WHERE oid = 'memoriesdb.access_refusal_bursts'::regclass AND relrowsecurity AND relforcerowsecurity;
SELECT 1/count(*) FROM memoriesdb.config WHERE key = 'access_log_refusal_burst' AND (value->>'threshold')::int > 0;
ROLLBACK;
