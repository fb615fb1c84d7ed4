-- Verify memoriesdb:identity on pg
BEGIN;

SELECT 1 / count(*) FROM memoriesdb_internal.context_key
 WHERE octet_length(key) = 32   -- the pads make the built-in sha256() compute HMAC-SHA-256
   AND sha256(opad || sha256(ipad || 'verify'::bytea)) = public.hmac('verify'::bytea, key, 'sha256');
SELECT 1 / count(*) FROM pg_catalog.pg_class
 WHERE oid = 'memoriesdb_internal.context_key'::regclass AND relrowsecurity AND relforcerowsecurity
   AND NOT has_table_privilege('memoriesdb_app', oid, 'SELECT');
SELECT expires_at FROM memoriesdb.api_keys WHERE false;
SELECT login, vouched_by FROM memoriesdb.audit_log WHERE false;
SELECT 1 / count(*) FROM memoriesdb.config WHERE key IN ('api_key_lifetime', 'auth_throttle') HAVING count(*) = 2;
SELECT 1 / count(*) FROM pg_catalog.pg_indexes WHERE indexname IN ('access_log_auth_failures_by_login', 'access_log_auth_failures_by_prefix') HAVING count(*) = 2;

ROLLBACK;
