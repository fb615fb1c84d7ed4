#!/usr/bin/env bash
# Transactions per second of a typical API mix (remember + recall + search, one
# transaction, as memoriesdb_app) at 50 concurrent clients:
#   direct to PostgreSQL (the baseline), through PgBouncer as shipped
#   (server_reset_query_always = 1), and through PgBouncer without the reset.
# Usage: bench/pgbouncer.sh [seconds per run, default 20]. Writes bench/results/pgbouncer.md (or $BENCH_OUT).
#        bench/pgbouncer.sh --smoke   (1 s runs, 10 clients, 10 memories per user, results to a temporary file:
#                                      checks that it still runs)
# Database ${BENCH_DB:-memoriesdb_bench_pool} (dropped at the end, with its logger role), PgBouncer on port
# ${BENCH_PGBOUNCER_PORT:-6440}; the runner's CLI with ${PYTHON:-.venv/bin/python} (PYTHONPATH=runner).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --smoke ]; then
  SECS=1 CLIENTS=10 K=10 OUT=${BENCH_OUT:-$(mktemp --suffix=.md)}
else
  SECS=${1:-20} CLIENTS=50 K=200 OUT=${BENCH_OUT:-bench/results/pgbouncer.md}
fi
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=postgres
DB=${BENCH_DB:-memoriesdb_bench_pool}
PORT=${BENCH_PGBOUNCER_PORT:-6440}
PY=${PYTHON:-.venv/bin/python}
# shellcheck source=scripts/db_lib.sh
source scripts/db_lib.sh   # drop_db, create_db
create_db "$DB"
tmp=$(mktemp -d)
trap 'scripts/pgbouncer.sh stop "$PORT" >/dev/null 2>&1 || true; rm -rf "$tmp"; drop_db "$DB"' EXIT
sqitch --quiet deploy "db:pg://postgres@$PGHOST/$DB" >/dev/null
MEMORIESDB_ADMIN_DSN="postgresql://postgres@$PGHOST/$DB" PYTHONPATH=runner "$PY" -m memoriesdb_runner.cli --log-level WARNING deploy >/dev/null   # local logins
psql -qX -v ON_ERROR_STOP=1 -v k="$K" -d "$DB" <<'SQL'
CREATE SCHEMA bench;
CREATE TABLE bench.users AS SELECT g AS n, memoriesdb.create_user('pool' || g) AS id FROM generate_series(1, 50) g;
SET session_replication_role = replica;   -- bulk seed without triggers
INSERT INTO memoriesdb.memories (owner_id, content, content_hash, embedding, embedding_model, created_at, created_by, updated_at, updated_by)
SELECT u.id, 'seed ' || u.n || ' ' || k, sha256(convert_to('seed ' || u.n || ' ' || k, 'UTF8')),
       l2_normalize(ARRAY(SELECT random() - 0.5 FROM generate_series(1, 384) WHERE k > 0)::real[]::vector), 'bench',
       now(), u.id, now(), u.id
  FROM bench.users u, generate_series(1, :k) k;
CREATE TABLE bench.mem AS SELECT u.n, row_number() OVER (PARTITION BY u.n ORDER BY m.id) AS k, m.id
  FROM bench.users u JOIN memoriesdb.memories m ON m.owner_id = u.id;
CREATE TABLE bench.q AS SELECT g AS n, l2_normalize(ARRAY(SELECT random() - 0.5 FROM generate_series(1, 384) WHERE g > 0)::real[]::vector) AS v
  FROM generate_series(1, 50) g;
GRANT USAGE ON SCHEMA bench TO memoriesdb_app;
GRANT SELECT ON ALL TABLES IN SCHEMA bench TO memoriesdb_app;
ANALYZE;
SQL
cat > "$tmp/mix.sql" <<SQL
\\set u random(1, 50)
\\set k random(1, $K)
BEGIN;
SELECT set_config('app.current_user', (SELECT id::text FROM bench.users WHERE n = :u), true);
SELECT memoriesdb.remember('pooled memory ' || random());
SELECT content_hash FROM memoriesdb.recall((SELECT id FROM bench.mem WHERE n = :u AND k = :k));
SELECT count(*) FROM memoriesdb.search((SELECT v FROM bench.q WHERE n = :u), 10);
END;
SQL
run() { pgbench -n -T "$SECS" -c "$CLIENTS" -j 2 -h 127.0.0.1 -p "$1" -U memoriesdb_server -f "$tmp/mix.sql" "$DB" 2>/dev/null | awk '/^tps/ {print $3}'; }
scripts/pgbouncer.sh start "$PORT" >/dev/null
direct=$(run 5432)
shipped=$(run "$PORT")
sed -i 's/^server_reset_query_always = 1/server_reset_query_always = 0/' ".run/pgbouncer-$PORT/pgbouncer.ini"
psql -qX -h 127.0.0.1 -p "$PORT" -U postgres pgbouncer -c RELOAD
noreset=$(run "$PORT")
scripts/pgbouncer.sh stop "$PORT"
{
  printf '# PgBouncer: direct vs pooled\n\n%s; %s clients, %s s per run, API mix per transaction: remember + recall + search (k=10, %s memories of 50 users); pgbench as memoriesdb_server (a backend login vouching for its users with set_config) on this machine (%s cores); PgBouncer default_pool_size = 8.\n\n' "$(date -u +%FT%TZ)" "$CLIENTS" "$SECS" "$((50 * K))" "$(nproc)"
  printf '| path | tps | vs direct |\n|---|---|---|\n'
  printf '| direct to PostgreSQL (%s server connections) | %.0f | 1.00 |\n' "$CLIENTS" "$direct"
  printf '| PgBouncer as shipped (RESET ALL after every transaction) | %.0f | %.2f |\n' "$shipped" "$(echo "$shipped/$direct" | bc -l)"
  printf '| PgBouncer without the reset (unsafe: session SETs leak) | %.0f | %.2f |\n' "$noreset" "$(echo "$noreset/$direct" | bc -l)"
  printf '\ncost of the reset: shipped / no reset = %.2f\n' "$(echo "$shipped/$noreset" | bc -l)"
} > "$OUT"
cat "$OUT"
