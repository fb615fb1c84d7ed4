#!/usr/bin/env bash
# Runs once, on an empty data directory (docker-entrypoint-initdb.d): deploys the
# ledger with sqitch over the local socket into $POSTGRES_DB, then gives the logins
# their passwords. No password has a default: a missing one stops the first start.
set -euo pipefail
: "${MEMORIESDB_RUNNER_PASSWORD:?set MEMORIESDB_RUNNER_PASSWORD (the runner login)}"
: "${MEMORIESDB_CLIENT_PASSWORD:?set MEMORIESDB_CLIENT_PASSWORD (the application login)}"
: "${MEMORIESDB_SERVER_PASSWORD:?set MEMORIESDB_SERVER_PASSWORD (the trusted backend login: provisions users, vouches for them)}"
: "${MEMORIESDB_PGBOUNCER_AUTH_PASSWORD:?set MEMORIESDB_PGBOUNCER_AUTH_PASSWORD (the PgBouncer secret lookup)}"
cd /opt/memoriesdb
sqitch deploy "db:pg://${POSTGRES_USER:-postgres}@/${POSTGRES_DB:-memoriesdb}" \
  --set "embedding_dim=${MEMORIESDB_EMBEDDING_DIM:-384}"
# logins for the runner, the untrusted application (API keys only) and the trusted
# backend (memoriesdb_backend: creates users, vouches for the user ids it sets), and PgBouncer's lookup role (NOLOGIN as
# deployed: memoriesdb_pgbouncer.user_lookup() is all it may execute)
psql -v ON_ERROR_STOP=1 -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-memoriesdb}" \
  -v runner_pw="$MEMORIESDB_RUNNER_PASSWORD" -v client_pw="$MEMORIESDB_CLIENT_PASSWORD" \
  -v server_pw="$MEMORIESDB_SERVER_PASSWORD" \
  -v pgbouncer_pw="$MEMORIESDB_PGBOUNCER_AUTH_PASSWORD" <<'SQL'
CREATE ROLE memoriesdb_runner LOGIN PASSWORD :'runner_pw' IN ROLE memoriesdb_worker;
CREATE ROLE memoriesdb_client LOGIN PASSWORD :'client_pw' IN ROLE memoriesdb_app;
CREATE ROLE memoriesdb_server LOGIN PASSWORD :'server_pw' IN ROLE memoriesdb_backend;
ALTER ROLE memoriesdb_pgbouncer_auth LOGIN PASSWORD :'pgbouncer_pw';
-- each login's time bounds (config login_bounds): a role's settings do not reach its logins
SELECT memoriesdb.configure_login('memoriesdb_runner'), memoriesdb.configure_login('memoriesdb_client'),
       memoriesdb.configure_login('memoriesdb_server');
SQL
