#!/usr/bin/env bash
# The schema snapshot of database DBNAME (db/schema_snapshot.sql), one fact per line.
#   scripts/schema_snapshot.sh DBNAME            print it
#   scripts/schema_snapshot.sh DBNAME --check    compare it with the committed db/schema.snapshot:
#                                                a unified diff and exit 1 when they differ
#   scripts/schema_snapshot.sh DBNAME --update   rewrite db/schema.snapshot (after a schema change)
# Connects as PGUSER (default postgres, a superuser) to PGHOST:PGPORT (default 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 DBNAME [--check | --update]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case "${2:-}" in ""|--check|--update) ;; *) usage ;; esac
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
snapshot() { psql -AtX -v ON_ERROR_STOP=1 -d "$1" -f db/schema_snapshot.sql; }

[ -z "${2:-}" ] && { snapshot "$1"; exit; }
current=$(mktemp); trap 'rm -f "$current"' EXIT
snapshot "$1" > "$current"
case "$2" in
  --update) cp "$current" db/schema.snapshot ;;
  --check)
    if ! diff -u --label db/schema.snapshot --label "database $1" db/schema.snapshot "$current"; then
      echo "schema snapshot: database $1 differs from db/schema.snapshot (if the change is intended: $0 $1 --update, and commit it)" >&2
      exit 1
    fi ;;
esac
