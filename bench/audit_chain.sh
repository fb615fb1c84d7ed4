#!/usr/bin/env bash
# What does the tamper-evident audit chain cost?  pgbench, same database, same run:
#   plain     INSERT of the same row into a table with no triggers (the baseline)
#   unsealed  remember() with audit rows but the commit-time seal trigger disabled
#   sealed    remember() as shipped: audit rows + one seal per transaction at COMMIT
# at 1 and 8 concurrent clients. Writes bench/results/audit_chain.md.
# Usage: bench/audit_chain.sh [seconds per run, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
DB=memoriesdb_bench_audit
OUT=bench/results/audit_chain.md
psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
sqitch --quiet deploy "db:pg://$PGUSER@$PGHOST/$DB" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -d "$DB" <<'SQL'
CREATE SCHEMA bench;
CREATE TABLE bench.users AS SELECT g AS n, memoriesdb.create_user('bench' || g) AS id FROM generate_series(1, 50) g;
CREATE TABLE bench.plain (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), owner_id uuid, content text, metadata jsonb,
  content_hash bytea, created_at timestamptz DEFAULT now(), created_by uuid, updated_at timestamptz DEFAULT now(), updated_by uuid);
SQL
tmp=$(mktemp -d)
cat > "$tmp/plain.sql" <<'SQL'
\set u random(1, 50)
BEGIN;
INSERT INTO bench.plain (owner_id, content, metadata, content_hash, created_by, updated_by)
  SELECT id, 'benchmark memory ' || random(), '{"src": "bench"}', sha256(convert_to('x' || random(), 'UTF8')), id, id FROM bench.users WHERE n = :u;
END;
SQL
cat > "$tmp/remember.sql" <<'SQL'
\set u random(1, 50)
BEGIN;
SELECT set_config('app.current_user', (SELECT id::text FROM bench.users WHERE n = :u), true);
SELECT memoriesdb.remember('benchmark memory ' || random(), '{"src": "bench"}');
END;
SQL
run() { # name script clients
  pgbench -n -T "$SECS" -c "$3" -j "$3" -f "$tmp/$2" "$DB" 2>/dev/null | awk '/^tps/ {print $3}'
}
printf '# Audit chain cost\n\n%s, %s s per run, pgbench on this machine (%s cores).\n\n' "$(date -u +%FT%TZ)" "$SECS" "$(nproc)" > "$OUT"
printf '| clients | plain INSERT tps | remember, audit unsealed tps | remember, audit sealed tps | sealed / unsealed | sealed / plain |\n|---|---|---|---|---|---|\n' >> "$OUT"
for c in 1 8; do
  p=$(run plain plain.sql "$c")
  psql -qX -d "$DB" -c "ALTER TABLE memoriesdb.audit_log DISABLE TRIGGER seal"
  u=$(run unsealed remember.sql "$c")
  psql -qX -d "$DB" -c "ALTER TABLE memoriesdb.audit_log ENABLE TRIGGER seal"
  s=$(run sealed remember.sql "$c")
  printf '| %s | %.0f | %.0f | %.0f | %.2f | %.2f |\n' "$c" "$p" "$u" "$s" "$(echo "$s/$u" | bc -l)" "$(echo "$s/$p" | bc -l)" >> "$OUT"
done
# the chain must still verify after the concurrent run (the unsealed rows are reported, by design)
psql -qX -d "$DB" -At -c "SELECT count(*) FROM memoriesdb.audit_seals" | xargs printf '\nseals written: %s\n' >> "$OUT"
rm -rf "$tmp"
cat "$OUT"
