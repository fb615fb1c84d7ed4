#!/usr/bin/env bash
# Smoke run of every benchmark in bench/: each with its tiny N (--smoke, or audit_chain.py's
# --transactions 20 --rounds 1), its results in a temporary file (never bench/results/*.md), its
# databases (and their logger roles, and its logins) dropped at the end. A benchmark that no longer
# runs against this checkout fails here, so none can rot unnoticed. One line per script; exits
# non-zero if any failed (each failure's last output lines are shown). The scripts run one after another
# (393 s on 2 cores, mostly deploys): deploys side by side race on the cluster-wide roles.
#
# Usage: scripts/bench_smoke.sh [name ...]   (default: all; a name is a file of bench/ without extension;
#        access_log and ranking_ab need search in the same run)
# Environment: BENCH_SMOKE_PREFIX (database names, default memoriesdb_bench_smoke), PYTHON (default
# .venv/bin/python), BENCH_PGBOUNCER_PORT (bench/pgbouncer.sh's PgBouncer, default 6440), PGHOST.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
PY=${PYTHON:-.venv/bin/python}
P=${BENCH_SMOKE_PREFIX:-memoriesdb_bench_smoke}
SHARED=${P}_shared   # one ledger deployed once (local logins included) for the scripts that take an existing one
TMP=$(mktemp -d)

# shellcheck source=scripts/db_lib.sh
source scripts/db_lib.sh   # drop_db, create_db
trap 'drop_db "$SHARED"; drop_db "${P}_search"; rm -rf "$TMP"' EXIT

smoke() {  # smoke NAME COMMAND...: runs it; its line of result in $TMP/NAME.status
  local name=$1 t0 t1 rc
  shift
  if [ ${#only[@]} -gt 0 ] && [ "$name" != shared-ledger ] && [[ " ${only[*]} " != *" $name "* ]]; then return 0; fi
  t0=$(date +%s.%N)
  "$@" >"$TMP/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  if [ $rc -eq 0 ]; then
    printf 'ok    %-20s %6.1f s\n' "$name" "$(echo "$t1 - $t0" | bc -l)" >"$TMP/$name.status"
  else
    {
      printf 'FAIL  %-20s %6.1f s  (exit %d)\n' "$name" "$(echo "$t1 - $t0" | bc -l)" "$rc"
      tail -n 15 "$TMP/$name.log" | sed 's/^/      /'
    } >"$TMP/$name.status"
  fi
}
only=("$@")
start=$(date +%s.%N)
out() { echo "$TMP/$1.md"; }
py() { PYTHONPATH=runner "$PY" "$@"; }

lane1() {
  smoke shared-ledger py -c "import sys; from memoriesdb_runner import admin
d = sys.argv[1]; admin.deploy(d); admin.ensure_local_logins(d)" "postgresql://$PGUSER@$PGHOST/$SHARED"
  smoke fail_closed_recall py bench/fail_closed_recall.py --smoke --db "$SHARED" --host "$PGHOST"
  smoke refusal_storm py bench/refusal_storm.py --smoke --db "$SHARED" --host "$PGHOST" --out "$(out refusal_storm)"
  smoke query_cache py bench/query_cache.py --smoke --db "$SHARED"
  smoke search py bench/search.py --smoke --calibrate --keep --db "${P}_search" --out "$(out search)"
  smoke access_log py bench/access_log.py --smoke --db "${P}_search" --out "$(out access_log)"
  smoke ranking_ab py bench/ranking_ab.py --smoke --base HEAD --db "${P}_search" --out "$(out ranking_ab)"
  smoke audit_chain py bench/audit_chain.py --transactions 20 --rounds 1 --db "${P}_audit" --out "$(out audit_chain)"
  smoke remember_ab py bench/remember_ab.py --smoke --prefix "${P}_ab" --out "$(out remember_ab)"
  smoke runner py bench/runner.py --smoke --db "${P}_runner" --out "$(out runner)"
  smoke leases py bench/leases.py --smoke --db "${P}_leases" --out "$(out leases)"
}
lane2() {
  smoke search_bounds py bench/search_bounds.py --smoke --db "${P}_sbounds" --out "$(out search_bounds)"
  smoke search_quality py bench/search_quality.py --smoke --vectors local --db "${P}_quality" --out "$(out search_quality)"
  smoke bounds py bench/bounds.py --smoke --db "${P}_bounds" --out "$(out bounds)"
  smoke identity py bench/identity.py --smoke --db "${P}_id" --out "$(out identity)"
  smoke offers py bench/offers.py --smoke --db "${P}_offers" --out "$(out offers)"
}
lane3() {
  smoke remember_profile py bench/remember_profile.py --smoke --db "${P}_profile" --out "$(out remember_profile)"
  smoke input_bounds env BENCH_DB_PREFIX="${P}_input" BENCH_OUT="$(out input_bounds)" bash bench/input_bounds.sh --smoke
  smoke pgbouncer env BENCH_DB="${P}_pool" BENCH_OUT="$(out pgbouncer)" PYTHON="$PY" bash bench/pgbouncer.sh --smoke
  smoke ingest_memory py bench/ingest_memory.py --smoke --db "${P}_ingest" --out "$(out ingest_memory)"
  smoke activate py bench/activate.py --smoke --db "${P}_activate" --out "$(out activate)"
}
# one after another: deploys side by side race on the cluster-wide roles (ALTER/COMMENT ON ROLE of the same role:
# "tuple concurrently updated")
lane1
lane2
lane3

failed=()
for name in shared-ledger fail_closed_recall refusal_storm query_cache search access_log ranking_ab audit_chain remember_ab runner \
  leases search_bounds search_quality bounds identity offers remember_profile input_bounds pgbouncer ingest_memory activate; do
  [ -f "$TMP/$name.status" ] || continue
  cat "$TMP/$name.status"
  grep -q '^FAIL' "$TMP/$name.status" && failed+=("$name")
done
printf 'total %.0f s\n' "$(echo "$(date +%s.%N) - $start" | bc -l)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "benchmark smoke runs failed: ${failed[*]}" >&2
  exit 1
fi
