#!/usr/bin/env bash
# plpgsql_check (Debian: postgresql-15-plpgsql-check, 2.3 on Debian 12) over every
# PL/pgSQL routine of a deployed ledger: usage  scripts/plpgsql_check.sh DBNAME
# (PGHOST, PGPORT, PGUSER as for psql; a superuser, since the extension is untrusted).
#
# Checked: every PL/pgSQL routine in a schema named memoriesdb*, trigger functions
# against each table they are on, with fatal_errors off, all_warnings and
# security_warnings on (errors; other, extra, performance, security and
# compatibility warnings). The extension is created in a transaction that is
# rolled back (db/plpgsql_check.sql): the database is unchanged afterwards.
# Prints one line per finding and exits 1 if there is any. Not checked: what
# EXECUTE or dblink runs (dynamic SQL is a string until run time).
#
# A finding is fixed, or explained at the function: a comment that says why the
# code is right, next to one of these (both are inert without the extension,
# which is never installed in the ledger):
#   * for statements: PERFORM 'PRAGMA:disable:check';  (or disable:other_warnings,
#     disable:extra_warnings, disable:performance_warnings, disable:security_warnings)
#     from there to the end of its statement list (e.g. one IF branch only);
#   * for the whole function (warnings that are not tied to a statement, such as
#     "unused variable" or "routine is marked as VOLATILE"), an in-comment option:
#       -- @plpgsql_check_options: performance_warnings = false
#     (the name ends in "s"; no other text on that line, the explanation goes on
#     the lines around it).
# Not PERFORM plpgsql_check_pragma(...): that function exists only while checking.
# Every such line is listed in the output as "-- explained: ..." for review.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${1:?usage: scripts/plpgsql_check.sh DBNAME}

out=$(psql -qAtX -v ON_ERROR_STOP=1 -d "$DB" -f db/plpgsql_check.sql)
printf '%s\n' "$out"
findings=$(grep -v '^-- ' <<<"$out" || true)
if [ -n "$findings" ]; then
  echo "plpgsql_check: $(grep -c . <<<"$findings") finding(s) neither fixed nor explained (see $0)" >&2
  exit 1
fi
echo "plpgsql_check: no findings"
