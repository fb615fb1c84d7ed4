#!/usr/bin/env bash
# scripts/test.sh --citus: the Citus suite (issue 17) on a local Citus cluster (scripts/citus.sh: a coordinator
# and two workers under .citus/, ports 9700-9702). Deploys a fresh ledger distributed by owner
# (scripts/citus.sh deploy), then runs db/citus/tests/*.sql with pg_prove through the coordinator, then the files
# of the single-node suite (db/tests) that pass on Citus, translated (scripts/citus_single_node_suite.py: a database
# ${DB}_suite and a copy of it per file; db/citus/single_node_suite.tsv says why the others do not), then
# runner/tests/test_citus.py: two tenants through PgBouncer in front of the coordinator (port 6790), a single-node
# ledger migrated to the cluster (scripts/citus.sh migrate; its own databases ${DB}_migsrc on 5432 and ${DB}_migrated),
# and a rebalance onto a third worker (scripts/citus.sh add-worker: port 9703, in this database only) while clients
# write; worker3 is stopped at the end (the cluster is back to two workers); then bench/citus.py --smoke (its own
# database ${DB}_bench on the single node and on the cluster, dropped by it; not in scripts/bench_smoke.sh, since CI
# has no Citus). PYTHON: the runner's venv python
# (default .venv/bin/python).
# Needs Citus built into the local PostgreSQL 15 with the ledger's patch (scripts/citus_build.sh); without it, says how
# and exits 2. CI does not build Citus:
# plain scripts/test.sh never runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f "$(pg_config --sharedir)/extension/citus.control" ]; then
  echo "scripts/test.sh --citus: Citus is not installed into the local PostgreSQL ($(pg_config --version))." >&2
  echo "Build it once per machine (2-8 minutes on 2 cores): bash scripts/citus_build.sh  (../shared/citus/README.md)" >&2
  echo "Production deployments use Citus's own packages or images (docs/citus.md)." >&2
  exit 2
fi
# the Citus of the tests must carry the ledger's patch (a SET LOCAL propagated as its own text, not the client's
# whole query: docs/citus.md section 1); scripts/citus_build.sh writes this marker with the patch's checksum
if [ "$(cat "$(pg_config --sharedir)/extension/citus.memoriesdb-patch" 2>/dev/null)" != "$(sha256sum db/citus/citus-13.2.2-set-local.patch | cut -c1-64)" ]; then
  echo "scripts/test.sh --citus: the installed Citus lacks db/citus/citus-13.2.2-set-local.patch (docs/citus.md section 1)." >&2
  echo "Build it (2-8 minutes on 2 cores): bash scripts/citus_build.sh; then restart the cluster: scripts/citus.sh stop" >&2
  exit 2
fi
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
DB=${MEMORIESDB_TEST_DB:-memoriesdb_test}_citus
PORT=${CITUS_PORT:-9700}
PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -x "$PYTHON" ]; then
  echo "scripts/test.sh --citus: no $PYTHON (scripts/setup.sh makes .venv; or set PYTHON to the runner's venv python)" >&2
  exit 2
fi
# the third worker (added by the rebalance test) never outlives the run, passed or failed
trap 'bash scripts/citus.sh remove-worker >/dev/null 2>&1 || true' EXIT

step "citus cluster (scripts/citus.sh start)"
bash scripts/citus.sh start
step "ledger $DB: sqitch deploy on the coordinator, then db/citus/distribute.sql"
bash scripts/citus.sh deploy "$DB"
psql -qX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" -c "SET client_min_messages = warning" \
  -c "CREATE EXTENSION IF NOT EXISTS pgtap"

step "pgTAP through the coordinator (db/citus/tests)"
pg_prove -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" --ext .sql db/citus/tests/*.sql

step "the single-node pgTAP suite through the coordinator: the files that pass on Citus (scripts/citus_single_node_suite.py --expect db/citus/single_node_suite.tsv; own database ${DB}_suite)"
CITUS_PORT="$PORT" "$PYTHON" scripts/citus_single_node_suite.py --deploy --drop --base "${DB}_suite" \
  --expect db/citus/single_node_suite.tsv

step "runner through the coordinator: PgBouncer in front of it, a migration, a rebalance onto a third worker (runner/tests/test_citus.py)"
MEMORIESDB_CITUS_DSN="postgresql://postgres@127.0.0.1:$PORT/$DB" PYTHONPATH="$PWD/runner" \
  "$PYTHON" -m pytest -q -p no:cacheprovider -rA runner/tests/test_citus.py

step "benchmark smoke run: bench/citus.py --smoke (the single node on 5432 vs the coordinator; own databases ${DB}_bench)"
PYTHONPATH="$PWD/runner" "$PYTHON" bench/citus.py --smoke --db "${DB}_bench" --citus-port "$PORT"

step "drop $DB"
bash scripts/citus.sh dropdb "$DB"
step "citus suite passed"
