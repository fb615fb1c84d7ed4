#!/usr/bin/env bash
# Runs once, on an empty data directory (docker-entrypoint-initdb.d): deploys the
# ledger with sqitch over the local socket into $POSTGRES_DB.
set -euo pipefail
cd /opt/memoriesdb
sqitch deploy "db:pg://${POSTGRES_USER:-postgres}@/${POSTGRES_DB:-memoriesdb}" \
  --set "embedding_dim=${MEMORIESDB_EMBEDDING_DIM:-384}"
# logins for the runner and the application (passwords from the environment)
psql -v ON_ERROR_STOP=1 -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-memoriesdb}" \
  -v runner_pw="${MEMORIESDB_RUNNER_PASSWORD:-runner}" -v client_pw="${MEMORIESDB_CLIENT_PASSWORD:-client}" <<'SQL'
CREATE ROLE memoriesdb_runner LOGIN PASSWORD :'runner_pw' IN ROLE memoriesdb_worker;
CREATE ROLE memoriesdb_client LOGIN PASSWORD :'client_pw' IN ROLE memoriesdb_app;
-- each login's time bounds (config login_bounds): a role's settings do not reach its logins
SELECT memoriesdb.configure_login('memoriesdb_runner'), memoriesdb.configure_login('memoriesdb_client');
SQL
