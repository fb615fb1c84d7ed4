#!/usr/bin/env bash
# Builds Citus 13.2.2 for the ledger's Citus tests: ../shared/citus/build.sh (its build dependencies, its one patch for
# PostgreSQL 15.20), then citus.so again with the ledger's security patch, db/citus/citus-13.2.2-set-local.patch.
#
# Why the patch (docs/citus.md §1, red team of the fifth slice): with citus.propagate_set_commands = 'local' (which the
# ledger's context needs, and which any session may set) Citus sends a SET LOCAL to the workers as the whole query
# string it came in: "SET LOCAL app.x = '1'; <any SQL>" ran <any SQL> on every worker connection of the transaction,
# as the role it belongs to (memoriesdb_owner, inside the API), and again on each connection opened later. The patch
# sends the statement's own text only. Until Citus fixes it, run the ledger on Citus with this patch.
#
# Usage: scripts/citus_build.sh    idempotent: does nothing when the patched citus.so is installed (a marker file
#                                  beside citus.control names the patch's checksum). About 3-8 minutes on 2 cores.
# The new citus.so replaces the old one by a rename: running servers keep the one they loaded, new backends load the
# patched one (restart the cluster to be sure: scripts/citus.sh stop && scripts/citus.sh start).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${MEMORIESDB_SHARED:-$ROOT/../shared}
PATCH=$ROOT/db/citus/citus-13.2.2-set-local.patch
PGC=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
MARKER=$("$PGC" --sharedir)/extension/citus.memoriesdb-patch
SUM=$(sha256sum "$PATCH" | cut -c1-64)
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$SUM" ]; then echo "citus with the ledger's patch already installed"; exit 0; fi
[ -f "$SHARED/citus/build.sh" ] || { echo "citus_build.sh: no $SHARED/citus/build.sh (the Citus source tarball)" >&2; exit 2; }
bash "$SHARED/citus/build.sh"   # dependencies, and Citus as shipped (nothing when installed)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$SHARED/citus/citus-13.2.2.tar.gz" -C "$WORK"
cd "$WORK/citus-13.2.2"
# the shared build's patch (../shared/citus/build.sh: PostgreSQL 15.20 exports have_createdb_privilege())
python3 - <<'PY'
p = "src/include/pg_version_compat.h"
s = open(p).read()
start = s.index("static inline bool\nhave_createdb_privilege(void)")
end = s.index("return result;\n}\n", start) + len("return result;\n}\n")
s = s[:start] + "extern bool have_createdb_privilege(void);   /* exported by PostgreSQL 15.20 */\n" + s[end:]
open(p, "w").write(s)
PY
patch -p1 --quiet < "$PATCH"
./configure PG_CONFIG="$PGC" --without-libcurl >/dev/null
make -j"$(nproc)" -C src/backend/distributed >/dev/null
LIB=$("$PGC" --pkglibdir)
SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
# a rename, not an overwrite: a running server's processes keep the file they mapped
$SUDO cp src/backend/distributed/citus.so "$LIB/citus.so.memoriesdb-new"
$SUDO mv -f "$LIB/citus.so.memoriesdb-new" "$LIB/citus.so"
echo "$SUM" | $SUDO tee "$MARKER" >/dev/null
echo "citus 13.2.2 with db/citus/citus-13.2.2-set-local.patch installed into $LIB"
