# shellcheck shell=bash
# Sourced by the scripts that make and drop ledger databases (scripts/test.sh, scripts/bench_smoke.sh,
# bench/*.sh). DROP DATABASE leaves the database's access-log logger LOGIN role behind (roles are
# cluster-wide): drop_db drops both. Names go through psql variables, quoted as identifiers.
# Connection: PGHOST, PGPORT, PGUSER as the caller set them.

drop_db() {  # drop_db NAME: the database and its logger role memoriesdb_log_<first 12 hex of md5(NAME)>
  psql -qX -v ON_ERROR_STOP=1 -d postgres -v db="$1" <<'SQL'
SET client_min_messages = warning;
SELECT 'memoriesdb_log_' || left(md5(:'db'), 12) AS logger \gset
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
DROP ROLE IF EXISTS :"logger";
SQL
}

create_db() {  # create_db NAME: a fresh, empty database (dropped first, with its logger role)
  drop_db "$1"
  psql -qX -v ON_ERROR_STOP=1 -d postgres -v db="$1" <<< 'CREATE DATABASE :"db";'
}
