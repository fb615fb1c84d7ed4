-- Deploy memoriesdb:pgbouncer_auth to pg
-- requires: roles@v0.3.0
-- PgBouncer's secret lookup (auth_query) without a superuser login.
--
-- PgBouncer authenticates a client by asking the server for the client's secret:
--   auth_user  = memoriesdb_pgbouncer_auth
--   auth_query = SELECT usename, passwd FROM memoriesdb_pgbouncer.user_lookup($1)
-- The stock auth_query reads pg_shadow, which only a superuser may read, so the
-- usual set-up makes PgBouncer log in as `postgres`: whoever holds PgBouncer's
-- configuration holds a superuser password, and any login's secret (postgres's
-- included) is served to the pooler.
--
-- Here the lookup role memoriesdb_pgbouncer_auth is NOLOGIN (the deployment gives
-- it LOGIN and a password: deploy/postgres/10-memoriesdb.sh), may execute this one
-- function and nothing else (privileges.sql), and the function answers only for a
-- plain client login of the ledger: a LOGIN with a password that is still valid,
-- member of memoriesdb_app, memoriesdb_worker, memoriesdb_auditor or
-- memoriesdb_backend (when that role exists), and not a superuser, not BYPASSRLS,
-- not CREATEROLE, CREATEDB or REPLICATION (nor a member of a role that is: SET ROLE
-- would make it so), not a member of the ledger's owner
-- roles, of the lookup role itself, or of any predefined pg_* role (the database's
-- owner is implicitly one: pg_database_owner). Anything else gets no row, and
-- PgBouncer refuses the login.
--
-- Owner: the deploying superuser, because pg_shadow (pg_authid) is readable by
-- superusers only and no predefined role grants it. Its schema belongs to the
-- superuser too, so no other role can create objects in it or replace the
-- function; the body is one static SQL statement with a pinned search_path.
BEGIN;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'memoriesdb_pgbouncer_auth') THEN
    CREATE ROLE memoriesdb_pgbouncer_auth NOLOGIN NOINHERIT;
  END IF;
END
$$;
-- LOGIN and the password are the deployment's (a second database on the cluster keeps them)
ALTER ROLE memoriesdb_pgbouncer_auth NOSUPERUSER NOINHERIT NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE memoriesdb_pgbouncer_auth IS
  'MemoriesDB: PgBouncer''s auth_user. May execute memoriesdb_pgbouncer.user_lookup() (the secrets of client logins of the ledger) and nothing else. NOLOGIN until the deployment gives it LOGIN and a password.';

CREATE SCHEMA memoriesdb_pgbouncer;
REVOKE ALL ON SCHEMA memoriesdb_pgbouncer FROM PUBLIC;
COMMENT ON SCHEMA memoriesdb_pgbouncer IS
  'MemoriesDB: PgBouncer''s secret lookup (auth_query). Owned by the deploying superuser; used by memoriesdb_pgbouncer_auth only.';

CREATE FUNCTION memoriesdb_pgbouncer.user_lookup(login text)
RETURNS TABLE (usename name, passwd text)
LANGUAGE sql STABLE STRICT SECURITY DEFINER ROWS 1
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.usename, s.passwd
    FROM pg_catalog.pg_shadow AS s
    JOIN pg_catalog.pg_roles AS r ON r.oid = s.usesysid
   WHERE s.usename = login
     AND s.passwd IS NOT NULL
     AND (s.valuntil IS NULL OR s.valuntil > pg_catalog.now())
     AND r.rolcanlogin
     AND NOT (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication)
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS g
                  WHERE g.rolname IN ('memoriesdb_app', 'memoriesdb_worker', 'memoriesdb_auditor', 'memoriesdb_backend')
                    AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER'))
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS g
                      WHERE (g.rolname IN ('memoriesdb_owner', 'memoriesdb_reader', 'memoriesdb_pgbouncer_auth')
                             OR g.rolname LIKE 'memoriesdb\_log\_%' OR g.rolname LIKE 'pg\_%'
                             -- a member of a privileged role can SET ROLE to it: it is as privileged
                             OR g.rolsuper OR g.rolbypassrls OR g.rolcreaterole OR g.rolcreatedb OR g.rolreplication)
                        AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER'))
$$;
REVOKE ALL ON FUNCTION memoriesdb_pgbouncer.user_lookup(text) FROM PUBLIC;
COMMENT ON FUNCTION memoriesdb_pgbouncer.user_lookup(text) IS
  'PgBouncer''s auth_query: (usename, passwd) of a client login of the ledger (a valid password; member of memoriesdb_app, _worker, _auditor or _backend; not a superuser, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION, nor a member of a role that is; not a member of the owner roles or of any pg_* role); no row for anyone else. Owned by the deploying superuser because only a superuser can read pg_shadow; executable by memoriesdb_pgbouncer_auth only.';

COMMIT;
