#!/usr/bin/env bash
# Runs every test on a fresh database: sqitch deploy -> verify -> revert ->
# deploy (and a second database on the same cluster), the pgTAP suite with
# pg_prove, then the runner's pytest suite. Set-up included (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# --citus: the distributed suite on a local Citus cluster instead (scripts/test_citus.sh; CI does not build Citus)
if [ "${1:-}" = "--citus" ]; then exec bash scripts/test_citus.sh; fi
bash scripts/setup.sh

PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}; PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
DB=${MEMORIESDB_TEST_DB:-memoriesdb_test}
DB2=${DB}_second
TARGET="db:pg://$PGUSER@$PGHOST:$PGPORT"
TMPDIR_SNAP=$(mktemp -d); trap 'rm -rf "$TMPDIR_SNAP"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# shellcheck source=scripts/db_lib.sh
source scripts/db_lib.sh   # drop_db, create_db

step "lint (scripts/lint.sh: ruff check and format, shellcheck, hadolint)"
bash scripts/lint.sh

step "fresh databases $DB and $DB2"
for d in "$DB" "$DB2"; do create_db "$d"; done

step "sqitch deploy -> verify -> revert -> deploy"
sqitch deploy "$TARGET/$DB"
sqitch verify "$TARGET/$DB"
sqitch revert -y "$TARGET/$DB"
test "$(psql -AtX -d "$DB" -c "select count(*) from pg_namespace where nspname = 'memoriesdb'")" = 0
sqitch deploy "$TARGET/$DB"

step "schema snapshot (after a schema change: scripts/schema_snapshot.sh $DB --update, and commit db/schema.snapshot)"
bash scripts/schema_snapshot.sh "$DB" --check

step "revert to each tag gives back that tag's schema; deploying again gives back HEAD's"
# On a database of its own: a revert drops columns audit rows were hashed with (login, vouched_by, chain), so
# rows written since that tag no longer verify after it (README: Backup, restore, upgrade); the pgTAP suite
# below runs on $DB, whose history stays whole.
REV="${DB}_revert"
create_db "$REV"
sqitch deploy "$TARGET/$REV" >/dev/null
grep -o '^@v[0-9.]*' sqitch.plan | while read -r tag; do
  create_db "${DB}_tag"
  sqitch deploy --to "$tag" "$TARGET/${DB}_tag" >/dev/null
  bash scripts/schema_snapshot.sh "${DB}_tag" > "$TMPDIR_SNAP/tag.snapshot"
  drop_db "${DB}_tag"
  sqitch revert -y --to "$tag" "$TARGET/$REV" >/dev/null
  bash scripts/schema_snapshot.sh "$REV" | diff -u "$TMPDIR_SNAP/tag.snapshot" - || { echo "revert to $tag differs from a fresh $tag"; exit 1; }
  echo "revert to $tag = fresh $tag"
  sqitch deploy "$TARGET/$REV" >/dev/null
  bash scripts/schema_snapshot.sh "$REV" --check || exit 1
  echo "deploy again = HEAD"
done
drop_db "$REV"

step "lint: plpgsql_check over every PL/pgSQL routine of the ledger"
bash scripts/plpgsql_check.sh "$DB"

step "a second database on the same cluster (roles already exist)"
sqitch deploy "$TARGET/$DB2"
bash scripts/schema_snapshot.sh "$DB2" --check
sqitch revert -y "$TARGET/$DB2"

step "pgTAP"
psql -qX -v ON_ERROR_STOP=1 -d "$DB" -f db/test_helpers.sql
pg_prove -d "$DB" -U "$PGUSER" -h "$PGHOST" -p "$PGPORT" --ext .sql db/tests/*.sql

step "README's psql session (examples/psql_session.sql)"
# (the session shows one refused call on purpose; its output is shown only if the session fails)
out=$(psql -qX -v ON_ERROR_STOP=1 -d "$DB" -f examples/psql_session.sql 2>&1) || { echo "$out"; exit 1; }
echo "ok"

if [ -d runner/tests ] && ls runner/tests/test_*.py >/dev/null 2>&1; then
  step "runner (pytest)"
  MEMORIESDB_PYTEST_DB="${DB}_pytest" .venv/bin/python -m pytest -q runner/tests
fi

step "benchmark smoke runs (scripts/bench_smoke.sh: every bench/ script with a tiny N, so none can rot unnoticed)"
BENCH_SMOKE_PREFIX="${DB}_bench" bash scripts/bench_smoke.sh

step "all tests passed"
