#!/usr/bin/env bash
# What do the input bounds (issue 13) cost? Everything against @v0.2.0 measured in the same run,
# on the same data:
#   remember()   of an ordinary memory (~300 bytes of prose, small metadata): the metadata
#                size check and the content_tsv trigger (HEAD) against the generated column (v0.2.0)
#   search_text  on the index plan (search_text_exact_max = 0): KNN on trgm_key(content)
#                (HEAD) against KNN on content (v0.2.0)
#   upgrade      sqitch deploy of HEAD over a v0.2.0 database holding the data, against a
#                REINDEX of v0.2.0's trigram index (the rebuild that cannot be avoided)
#   long content remember() of 48 kB of random words (v0.2.0: refused with an internal error)
# pgbench runs alternate between the two databases, twice each.
# Usage: bench/input_bounds.sh [seconds per run, default 10] [memories, default 20000]
#        bench/input_bounds.sh --smoke   (1 s runs, 200 memories, results to a temporary file: checks that it still runs)
# Databases: ${BENCH_DB_PREFIX:-memoriesdb_bench_input}_{base,head,upgrade}, dropped at the end (with their logger
# roles). Writes bench/results/input_bounds.md (or $BENCH_OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --smoke ]; then
  SECS=1 N=200 OUT=${BENCH_OUT:-$(mktemp --suffix=.md)}
else
  SECS=${1:-10} N=${2:-20000} OUT=${BENCH_OUT:-bench/results/input_bounds.md}
fi
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
PREFIX=${BENCH_DB_PREFIX:-memoriesdb_bench_input}
BASE=${PREFIX}_base HEAD=${PREFIX}_head UPG=${PREFIX}_upgrade
# shellcheck source=scripts/db_lib.sh
source scripts/db_lib.sh   # drop_db, create_db
# the upgrade copy first: it holds grants to its template's logger
for db in "$UPG" "$HEAD" "$BASE"; do drop_db "$db"; done
psql -qX -d postgres -c "CREATE DATABASE $BASE" -c "CREATE DATABASE $HEAD"
sqitch --quiet deploy --to @v0.2.0 "db:pg://$PGUSER@$PGHOST/$BASE" >/dev/null
sqitch --quiet deploy "db:pg://$PGUSER@$PGHOST/$HEAD" >/dev/null

# the same prose memories in both: 50 to 3000 characters of words from a 2000-word vocabulary
load() {
  psql -qX -v ON_ERROR_STOP=1 -v n="$N" -d "$1" <<'SQL'
CREATE SCHEMA bench;
CREATE TABLE bench.words AS SELECT g AS n, substr(md5(g::text), 1, 3 + g % 7) AS w FROM generate_series(1, 2000) g;
CREATE TABLE bench.users AS SELECT g AS n, memoriesdb.create_user('bench' || g) AS id FROM generate_series(1, 20) g;
SELECT setseed(0.42);
CREATE TABLE bench.contents AS
  SELECT g, 1 + g % 20 AS u, (SELECT string_agg(w.w, ' ') FROM generate_series(1, 8 + (g * 7919) % 500) AS i
                               JOIN bench.words AS w ON w.n = 1 + (hashint4(g * 1000 + i) & 2147483647) % 2000) AS content
    FROM generate_series(1, :n) g;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.content, u.id FROM bench.contents AS c JOIN bench.users AS u ON u.n = c.u ORDER BY c.g LOOP
    PERFORM set_config('app.current_user', r.id::text, true);
    PERFORM memoriesdb.remember(r.content, '{"src": "bench"}');
  END LOOP;
END $$;
VACUUM ANALYZE memoriesdb.memories;
SQL
}
load "$BASE"
load "$HEAD"
psql -qX -d postgres -c "CREATE DATABASE $UPG TEMPLATE $BASE"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; for db in "$UPG" "$HEAD" "$BASE"; do drop_db "$db"; done' EXIT
cat > "$tmp/remember.sql" <<'SQL'
\set u random(1, 20)
\set w random(1, 1990)
BEGIN;
SELECT set_config('app.current_user', (SELECT id::text FROM bench.users WHERE n = :u), true);
SELECT memoriesdb.remember((SELECT string_agg(w, ' ') FROM bench.words WHERE n BETWEEN :w AND :w + 40), '{"src": "bench", "tags": ["a", "b"]}');
END;
SQL
cat > "$tmp/search.sql" <<'SQL'
\set u random(1, 20)
\set w random(1, 2000)
BEGIN;
SET LOCAL jit = off;
SELECT set_config('app.current_user', (SELECT id::text FROM bench.users WHERE n = :u), true);
SELECT count(*) FROM memoriesdb.search_text((SELECT w || ' ' || w || 'x' FROM bench.words WHERE n = :w), 10);
END;
SQL
for db in "$BASE" "$HEAD"; do psql -qX -d "$db" -c "UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_text_exact_max'"; done
tps() { pgbench -n -T "$SECS" -f "$tmp/$2" "$1" 2>/dev/null | awk '/^tps/ {print $3}'; }
declare -A T
for script in remember.sql search.sql; do
  for round in 1 2; do
    for db in "$BASE" "$HEAD"; do T[$script,$db,$round]=$(tps "$db" "$script"); done
  done
done
avg() { echo "(${T[$1,$2,1]} + ${T[$1,$2,2]}) / 2" | bc -l; }

# upgrade: the new changes over v0.2.0 with the data, against a REINDEX of the trigram index
t0=$(date +%s.%N)
psql -qX -d "$UPG" -c "REINDEX INDEX memoriesdb.memories_content_trgm"
t1=$(date +%s.%N)
sqitch --quiet deploy "db:pg://$PGUSER@$PGHOST/$UPG" >/dev/null
t2=$(date +%s.%N)
reindex=$(echo "$t1 - $t0" | bc -l)
upgrade=$(echo "$t2 - $t1" | bc -l)

# long content: 48 kB of random words, 20 times
long_sql="SELECT set_config('app.current_user', (SELECT id::text FROM bench.users WHERE n = 1), true);
SELECT count(memoriesdb.remember((SELECT string_agg((SELECT string_agg(chr(97 + get_byte(decode(md5(r || ':' || g), 'hex'), i) % 26), '')
                                                     FROM generate_series(0, 6) AS i), ' ') FROM generate_series(1, 6000) AS g))) FROM generate_series(1, 20) AS r;"
t0=$(date +%s.%N)
psql -qX -v ON_ERROR_STOP=1 -d "$HEAD" -c "BEGIN" -c "$long_sql" -c "ROLLBACK" >/dev/null
t1=$(date +%s.%N)
long_head=$(echo "($t1 - $t0) * 1000 / 20" | bc -l)
long_base=$(psql -qX -d "$BASE" -c "BEGIN" -c "$long_sql" -c "ROLLBACK" 2>&1 | grep -o 'ERROR: .*' | head -1 || true)

{
  printf '# Input bounds cost\n\n%s, %s memories of prose, %s s per pgbench run (1 client), two rounds alternating, on this machine (%s cores).\n\n' \
    "$(date -u +%FT%TZ)" "$N" "$SECS" "$(nproc)"
  printf '| measure | v0.2.0 | HEAD | HEAD / v0.2.0 |\n|---|---|---|---|\n'
  for script in remember.sql search.sql; do
    b=$(avg "$script" "$BASE"); h=$(avg "$script" "$HEAD")
    printf '| %s tps | %.2f | %.2f | %.2f |\n' "${script%.sql}" "$b" "$h" "$(echo "$h / $b" | bc -l)"
  done
  printf '| upgrade s (v0.2.0: REINDEX of the trigram index; HEAD: sqitch deploy of the new changes) | %.2f | %.2f | %.2f |\n' \
    "$reindex" "$upgrade" "$(echo "$upgrade / $reindex" | bc -l)"
  printf '\nremember() of 48 kB of random words: HEAD %.0f ms each; v0.2.0: %s\n' "$long_head" "${long_base:-accepted}"
} > "$OUT"
cat "$OUT"
