#!/usr/bin/env bash
# Finds (and drops) the access-log logger roles whose database is gone.
#
# Each ledger database has a LOGIN role memoriesdb_log_<first 12 hex of md5(database name)>
# (memoriesdb.setup_access_logger()). Roles are cluster-wide, so `DROP DATABASE` leaves it
# behind: a login with a password nobody knows any more, but a login. A logger role is an
# orphan when
#   - no database of the cluster has a name whose md5 gives its suffix, and
#   - it holds no privilege and owns nothing in any database (pg_shdepend has no row for it:
#     a live logger holds CONNECT on its database, and that survives a database rename), and
#   - no session is logged in as it.
# DROP ROLE itself refuses a role that still holds anything anywhere, so a race with a
# deploy cannot drop a live logger.
#
#   scripts/drop_orphan_loggers.sh [--dry-run]
# Connects as PGUSER (default postgres; dropping a role needs a superuser or CREATEROLE)
# to PGHOST:PGPORT (default 127.0.0.1:5432), database PGDATABASE (default postgres).
# Prints one line per orphan; exit status 1 if a drop failed, 2 on a usage error.
set -euo pipefail
dry_run=false
case "${1:-}" in
  "") ;;
  --dry-run|-n) dry_run=true ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres} PGDATABASE=${PGDATABASE:-postgres}

orphans=$(psql -AtX -v ON_ERROR_STOP=1 -F $'\t' <<'SQL'
SELECT r.rolname,
       coalesce(substring(shobj_description(r.oid, 'pg_authid') FROM 'of database (.*), and nothing else'), '?')
  FROM pg_catalog.pg_roles AS r
 WHERE r.rolname ~ '^memoriesdb_log_[0-9a-f]{12}$'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database AS d
                    WHERE 'memoriesdb_log_' || left(md5(d.datname), 12) = r.rolname)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend AS s
                    WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass AND s.refobjid = r.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity AS a WHERE a.usesysid = r.oid)
 ORDER BY r.rolname
SQL
)
if [ -z "$orphans" ]; then
  echo "no orphan logger roles"
  exit 0
fi
failed=0
while IFS=$'\t' read -r role db; do
  if $dry_run; then
    echo "orphan: $role (logger of database $db, which is gone) - would drop"
  elif out=$(psql -qAtX -v ON_ERROR_STOP=1 -v role="$role" 2>&1 <<'SQL'
DROP ROLE :"role";
SQL
  ); then
    echo "dropped: $role (logger of database $db, which is gone)"
  else
    echo "kept: $role (logger of database $db): ${out#*ERROR:  }" >&2
    failed=1
  fi
done <<< "$orphans"
exit "$failed"
