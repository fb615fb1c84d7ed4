#!/usr/bin/env bash
# A local Citus cluster for tests: a coordinator and two workers, three PostgreSQL 15 clusters on this
# machine under $CITUS_DIR (default .citus/ in the project, gitignored), ports $CITUS_PORT (coordinator,
# default 9700) and the two after it (workers). Trust on 127.0.0.1 only; shared_preload_libraries = citus.
# Citus must be installed into the local PostgreSQL 15 first: bash scripts/citus_build.sh (Citus 13.2.2 from ../shared/citus,
# with the ledger's security patch db/citus/citus-13.2.2-set-local.patch: docs/citus.md section 1).
#
#   scripts/citus.sh start           initdb (first time), start the three servers, register the workers
#                                    in the database postgres (idempotent: a running cluster is left as is)
#   scripts/citus.sh stop            stop the three servers (the data directories stay)
#   scripts/citus.sh status          which servers run, and the coordinator's node list
#   scripts/citus.sh createdb NAME   a fresh database NAME on every node (dropped first), with the citus
#                                    extension and the workers registered in it (Citus metadata is per
#                                    database; CREATE DATABASE is not propagated)
#   scripts/citus.sh deploy NAME     createdb NAME, sqitch deploy on the coordinator, then db/citus/distribute.sql
#                                    (the ledger distributed by owner; docs/citus.md)
#   scripts/citus.sh dropdb NAME     drop NAME on every node
#   scripts/citus.sh migrate SRC NAME  a single-node ledger (SRC: a database on 127.0.0.1:5432, or a postgresql:// URI,
#                                    as a superuser; at this checkout's HEAD; its clients stopped) as NAME (which must
#                                    not exist), distributed: its roles and logins, one pg_dump restored on the
#                                    coordinator, NAME's own access-log logger, db/citus/distribute.sql, the search
#                                    indexes on the shards; then every table's row count and the chains checked
#                                    (docs/citus.md, "Migrating a single-node ledger")
#   scripts/citus.sh add-worker NAME a third worker (port CITUS_PORT+3, same set-up as the others): initdb the first
#                                    time, start, NAME created on it and the worker added to NAME's metadata
#                                    (citus_add_node; the ledger's roles made LOGIN there). Shards move to it only
#                                    when rebalanced: SELECT citus_rebalance_start() (docs/citus.md, Rebalancing)
#   scripts/citus.sh remove-worker [NAME]  with NAME: drain the third worker's shards back to the other two and
#                                    remove it from NAME's metadata; then stop it (its data directory stays)
#   scripts/citus.sh destroy         stop and remove $CITUS_DIR
# The third worker is registered per database (Citus metadata is per database): the database postgres and every
# other database keep the two workers. start/createdb never start it; stop stops it too.
# The main cluster (5432) is never touched: it keeps no citus in shared_preload_libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
CITUS_DIR=${CITUS_DIR:-$PWD/.citus}
CITUS_PORT=${CITUS_PORT:-9700}
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
NODES=(coordinator worker1 worker2 worker3)   # worker3: only by add-worker
MIGRATE_DUMP='' MIGRATE_DB='' MIGRATE_MADE=false MIGRATE_STANDINS=''   # migrate's, for its EXIT trap
LEDGER_ROLES="'memoriesdb_owner', 'memoriesdb_reader', 'memoriesdb_app', 'memoriesdb_backend', 'memoriesdb_worker', 'memoriesdb_auditor'"

port_of() { echo $((CITUS_PORT + $1)); }
psql_node() {  # psql_node INDEX DB ARGS...: psql as postgres on node INDEX
  local i=$1 db=$2; shift 2
  psql -qAtX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "$i")" -U postgres -d "$db" "$@"
}
# initdb and postgres refuse to run as root: as root, the servers run as the postgres OS user
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); else AS_PG=(); fi
pg_ctl() { "${AS_PG[@]}" "$PGBIN/pg_ctl" "$@"; }
running() { pg_ctl -D "$CITUS_DIR/$1" status >/dev/null 2>&1; }
up_nodes() {  # the indexes of the nodes whose servers run (worker3 only after add-worker)
  local i
  for i in 0 1 2 3; do if running "${NODES[$i]}"; then echo "$i"; fi; done
}
login_ledger_roles() {  # login_ledger_roles INDEX DB: the ledger's roles LOGIN on a worker (only there; see deploy)
  psql_node "$1" "$2" -c "SET citus.enable_alter_role_propagation = off" -c "DO \$\$ DECLARE r text; BEGIN
    FOREACH r IN ARRAY ARRAY[$LEDGER_ROLES] LOOP
      IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN EXECUTE format('ALTER ROLE %I LOGIN', r); END IF;
    END LOOP; END \$\$"
}

guard_transaction_ids() {  # guard_transaction_ids INDEX DB: Citus's functions that set or list distributed transaction
  # ids, executable by PUBLIC as installed, for the roles Citus opens connections as only. A client that could call
  # assign_distributed_transaction_id() (with a gpid forged through application_name 'citus_internal gpid=…') replayed
  # another session's context proof in a transaction of its own: the proof binds the distributed transaction id
  # (red team; docs/citus.md, section 1). Per database and per node (function privileges are). One transaction (-1):
  # on a node already serving (add-worker), a connection between the REVOKE and the GRANT failed (measured, the
  # rebalance test: "permission denied for function assign_distributed_transaction_id" for memoriesdb_reader on the
  # new worker, a search() failing with "failure on connection marked as essential").
  psql_node "$1" "$2" -1 -c "SET LOCAL citus.enable_ddl_propagation = off" \
    -c "REVOKE EXECUTE ON FUNCTION pg_catalog.assign_distributed_transaction_id(integer, bigint, timestamptz),
               pg_catalog.get_all_active_transactions() FROM PUBLIC" \
    -c "GRANT EXECUTE ON FUNCTION pg_catalog.assign_distributed_transaction_id(integer, bigint, timestamptz),
               pg_catalog.get_all_active_transactions()
          TO memoriesdb_owner, memoriesdb_reader, memoriesdb_worker, memoriesdb_auditor" >/dev/null
}

require_citus() {
  if [ ! -f "$("$PGBIN/pg_config" --sharedir 2>/dev/null || pg_config --sharedir)/extension/citus.control" ]; then
    echo "Citus is not installed into the local PostgreSQL ($PGBIN)." >&2
    echo "Build it once per machine (2-8 minutes): bash scripts/citus_build.sh (../shared/citus with the ledger's patch)" >&2
    exit 2
  fi
}

conf_moves() {  # conf_moves INDEX: what shard moves need, added to a data directory made before it was needed
  local dir="$CITUS_DIR/${NODES[$1]}" line changed=false
  # shard moves (citus_rebalance_start, citus_move_shard_placement): Citus's default copies a shard and then follows
  # its writes by logical replication (wal_level logical, slots, senders); the ledger's moves block writes instead
  # (docs/citus.md, Rebalancing), but a database may use either. The rebalancer's queue is polled every 5 s by
  # default: 1 s here (a move of a small shard group takes a few seconds)
  for line in "wal_level = logical" "max_replication_slots = 20" "max_wal_senders = 20" \
              "citus.background_task_queue_interval = '1s'"; do
    if ! grep -q "^${line%% =*} = " "$dir/postgresql.conf"; then
      echo "$line" | "${AS_PG[@]}" tee -a "$dir/postgresql.conf" >/dev/null
      changed=true
    fi
  done
  if $changed && running "${NODES[$1]}"; then pg_ctl -D "$dir" -l "$CITUS_DIR/${NODES[$1]}.log" -m fast -w restart >/dev/null; fi
}

init_node() {  # init_node INDEX: initdb and configure, the first time only
  local name=${NODES[$1]} dir="$CITUS_DIR/${NODES[$1]}"
  [ -f "$dir/PG_VERSION" ] && return 0
  mkdir -p "$CITUS_DIR"
  [ ${#AS_PG[@]} = 0 ] || chown postgres: "$CITUS_DIR"
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$CITUS_DIR/$name.initdb.log"
  "${AS_PG[@]}" tee -a "$dir/postgresql.conf" >/dev/null <<EOF
# scripts/citus.sh
port = $(port_of "$1")
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CITUS_DIR'
shared_preload_libraries = 'citus'
max_connections = 200
shared_buffers = 64MB
max_prepared_transactions = 200
citus.propagate_set_commands = 'local'
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  # a worker only receives what the coordinator propagates: a SQL function there may name one propagated after it
  [ "$1" = 0 ] || echo "check_function_bodies = off" | "${AS_PG[@]}" tee -a "$dir/postgresql.conf" >/dev/null
  conf_moves "$1"
  # trust on 127.0.0.1 only (initdb's defaults also trust the socket, which lives in $CITUS_DIR)
  printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' | "${AS_PG[@]}" tee "$dir/pg_hba.conf" >/dev/null
}

register_workers() {  # register_workers DB: coordinator host and the workers in DB's Citus metadata
  local db=$1 i
  for i in 0 1 2; do psql_node "$i" "$db" -c "CREATE EXTENSION IF NOT EXISTS citus" 2>&1 | grep -v NOTICE || true; done
  psql_node 0 "$db" -c "SELECT citus_set_coordinator_host('127.0.0.1', $(port_of 0))" >/dev/null
  for i in 1 2; do
    psql_node 0 "$db" -c "SELECT citus_add_node('127.0.0.1', $(port_of "$i")) WHERE NOT EXISTS (
      SELECT 1 FROM pg_dist_node WHERE nodename = '127.0.0.1' AND nodeport = $(port_of "$i"))" >/dev/null
  done
}

start() {
  require_citus
  local i t0
  t0=$(date +%s.%N)
  for i in 0 1 2; do
    init_node "$i"
    conf_moves "$i"
    if ! running "${NODES[$i]}"; then
      pg_ctl -D "$CITUS_DIR/${NODES[$i]}" -l "$CITUS_DIR/${NODES[$i]}.log" -w start >/dev/null
    fi
  done
  register_workers postgres
  printf 'citus cluster up in %.1fs: coordinator 127.0.0.1:%s, workers %s and %s (%s)\n' \
    "$(echo "$(date +%s.%N) - $t0" | bc)" "$(port_of 0)" "$(port_of 1)" "$(port_of 2)" "$CITUS_DIR"
}

stop() {
  local i
  for i in 3 2 1 0; do
    if running "${NODES[$i]}"; then pg_ctl -D "$CITUS_DIR/${NODES[$i]}" -m fast -w stop >/dev/null; fi
  done
  echo "citus cluster stopped"
}

status() {
  local i up=0
  for i in 0 1 2; do
    if running "${NODES[$i]}"; then echo "${NODES[$i]}: running on port $(port_of "$i")"; up=$((up + 1))
    else echo "${NODES[$i]}: not running"; fi
  done
  if running worker3; then echo "worker3: running on port $(port_of 3) (add-worker)"; fi
  if running coordinator; then
    echo "nodes (database postgres):"
    psql_node 0 postgres -F ' ' -c "SELECT nodeid, groupid, nodename, nodeport, noderole, isactive
      FROM pg_dist_node ORDER BY nodeid"
  fi
  [ "$up" = 3 ]
}

createdb() {
  local db=$1 i
  if running worker3; then   # a copy left by an earlier add-worker
    echo 'SET client_min_messages = warning; DROP DATABASE IF EXISTS :"db" WITH (FORCE);' | psql_node 3 postgres -v db="$db"
  fi
  for i in 0 1 2; do
    psql_node "$i" postgres -v db="$db" <<'SQL'
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db";
SQL
  done
  register_workers "$db"
  echo "database $db on the coordinator (port $(port_of 0)) and both workers"
}

deploy() {  # deploy NAME: a fresh NAME on every node, the ledger deployed on the coordinator, then distributed
  local db=$1 t0 t1 t2 p
  t0=$(date +%s.%N)
  createdb "$db" >/dev/null
  # sqitch deploys the ledger as on a single node: nothing propagated yet (db/citus/distribute.sql then
  # distributes the tables, which copies what they need, and every function, to the workers)
  PGOPTIONS="-c citus.enable_ddl_propagation=off -c citus.enable_create_role_propagation=off -c citus.enable_alter_role_propagation=off -c client_min_messages=warning" \
    sqitch deploy "db:pg://postgres@127.0.0.1:$(port_of 0)/$db" >/dev/null
  t1=$(date +%s.%N)
  psql_node 0 "$db" -f db/citus/distribute.sql >/dev/null
  # the owners of the SECURITY DEFINER functions run their queries on the workers over connections of their own:
  # there (only) they log in; pg_hba on the workers admits the cluster's nodes only
  # (and so do the group roles a session may SET ROLE to: a worker connection is opened as the current role)
  for p in 1 2; do login_ledger_roles "$p" "$db"; done
  for p in 0 1 2; do guard_transaction_ids "$p" "$db"; done
  t2=$(date +%s.%N)
  printf 'ledger %s deployed (%.1fs) and distributed (%.1fs) on the citus cluster (coordinator port %s)\n' \
    "$db" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(port_of 0)"
}

dropdb() {  # dropdb NAME: the database, and its access-log logger role (as scripts/db_lib.sh drop_db), on every node
  local db=$1 i
  for i in $(up_nodes); do
    psql_node "$i" postgres -v db="$db" <<'SQL'
SET client_min_messages = warning;
SET citus.enable_create_role_propagation = off;
SELECT 'memoriesdb_log_' || left(md5(:'db'), 12) AS logger \gset
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
DROP ROLE IF EXISTS :"logger";
SQL
  done
}

migrate_refuse() { echo "citus.sh migrate: $*" >&2; exit 1; }
created() {  # created WHERE: psql's output reduced to the roles created and any error
  sed -n -e "s/.*NOTICE:  role \(.*\) created/  role \1 created $1/p" -e '/ERROR\|FATAL/p'
}

migrate() {  # migrate SRC NAME: a single-node ledger (a database on 127.0.0.1:5432, or a postgresql:// URI) to NAME,
  # distributed on this cluster (docs/citus.md, "Migrating a single-node ledger"). Writers must be stopped on SRC.
  local src=$1 db=$2 src_uri src_db head deployed i t0 t1 t2 t3 t4 t5 dump local_roles old_loggers new_logger kind index_entries others r
  case $src in
    postgresql://*|postgres://*) src_uri=$src ;;
    *://*|*=*) migrate_refuse "SRC is a database name on 127.0.0.1:5432 or a postgresql:// URI, not '$src'" ;;
    *) src_uri="postgresql://postgres@127.0.0.1:5432/$src" ;;
  esac
  src_db=$(psql -qAtX -d "$src_uri" -c "SELECT current_database()" 2>/dev/null) ||
    migrate_refuse "cannot connect to the source $src_uri (as a superuser: pg_dump reads every table, and the roles' passwords)"
  [ "$(psql -qAtX -d "$src_uri" -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" = t ] ||
    migrate_refuse "connect to the source as a superuser (pg_dump reads every table past row-level security, and the logins' password hashes)"
  if ! { running coordinator && running worker1 && running worker2; }; then
    migrate_refuse "the cluster is not running (CITUS_DIR=$CITUS_DIR, port $CITUS_PORT): scripts/citus.sh start"
  fi
  # the source must be at this checkout's HEAD: distribute.sql converts exactly the schema this plan deploys
  head=$(sqitch plan --reverse --max-count 1 --no-headers --format 'format:%H %n')
  deployed=
  if [ -n "$(psql -qAtX -d "$src_uri" -c "SELECT to_regclass('sqitch.changes')")" ]; then
    deployed=$(psql -qAtX -d "$src_uri" -c "SELECT change_id || ' ' || change FROM sqitch.changes
                                             WHERE project = 'memoriesdb' ORDER BY committed_at DESC LIMIT 1")
  fi
  if [ -z "$deployed" ]; then
    migrate_refuse "$src_db holds no MemoriesDB deployed by sqitch (no sqitch.changes of the project memoriesdb)"
  fi
  if [ "$deployed" != "$head" ]; then
    if sqitch plan --no-headers --format 'format:%H' | grep -qx "${deployed%% *}"; then
      migrate_refuse "$src_db is at the change '${deployed#* }' (${deployed%% *}), this checkout's plan at '${head#* }' (${head%% *}).
  Upgrade the source first, writers stopped: sqitch deploy db:pg://…/$src_db with this checkout (README, \"Backup,
  restore, upgrade\"); then migrate."
    fi
    migrate_refuse "$src_db is at the change '${deployed#* }' (${deployed%% *}), which this checkout's plan does not hold
  (its HEAD: '${head#* }', ${head%% *}): the source was deployed from a newer or another checkout. Migrate with that
  checkout (its db/citus/distribute.sql converts the schema it deploys)."
  fi
  for i in 0 1 2; do
    if [ -n "$(psql_node "$i" postgres -v db="$db" <<< "SELECT 1 FROM pg_database WHERE datname = :'db'")" ]; then
      migrate_refuse "database $db exists on the node on port $(port_of "$i"); migrate never overwrites one.
  Choose another NAME, or drop it first: scripts/citus.sh dropdb $db"
    fi
  done
  others=$(psql -qAtX -d "$src_uri" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
    AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
  if [ "$others" != 0 ]; then
    echo "citus.sh migrate: warning: $others other session(s) connected to $src_db; a write (a read too: the access log)" >&2
    echo "  after the dump is not migrated, and the check at the end then fails. Stop the source's clients first." >&2
  fi
  t0=$(date +%s.%N)
  dump=$(mktemp -d)
  # (on any failure from here on, once NAME exists: it is incomplete; say so)
  MIGRATE_DUMP=$dump MIGRATE_DB=$db
  trap 'migrate_exit $?' EXIT
  # 1. the roles, from the source: roles.sql, the ones the ledger names (owners, grantees, policies: pg_shdepend; the
  # ledger's roles) and the groups they are members of, created on the coordinator before the restore as the deploy
  # does (not propagated); logins.sql, the logins configured for the ledger (configure_login: settings in this
  # database) and their other groups, created after the distribution through Citus (on every node, and on a node
  # added later). Each only when missing on a node, with the source's attributes and password hash; then their
  # memberships. Not the source's access-log logger: the migrated ledger gets its own (setup_access_logger, below).
  for kind in roles logins; do
    psql -qAtX -v ON_ERROR_STOP=1 -d "$src_uri" -v kind="$kind" >"$dump/$kind.sql" <<'SQL'
WITH RECURSIVE this AS (SELECT oid FROM pg_database WHERE datname = current_database()),
named AS (
  SELECT d.refobjid AS oid FROM pg_shdepend AS d
   WHERE d.dbid = (SELECT oid FROM this) AND d.refclassid = 'pg_authid'::regclass
  UNION SELECT r.oid FROM pg_roles AS r WHERE r.rolname IN ('memoriesdb_owner', 'memoriesdb_reader', 'memoriesdb_app',
          'memoriesdb_backend', 'memoriesdb_worker', 'memoriesdb_auditor')
  UNION SELECT m.roleid FROM pg_auth_members AS m JOIN named AS n ON n.oid = m.member
), logins AS (
  SELECT s.setrole AS oid FROM pg_db_role_setting AS s WHERE s.setdatabase = (SELECT oid FROM this) AND s.setrole <> 0
  UNION SELECT m.roleid FROM pg_auth_members AS m JOIN logins AS l ON l.oid = m.member
), kinds AS (
  SELECT oid, 'roles' AS kind FROM named
  UNION SELECT oid, 'logins' FROM logins WHERE oid NOT IN (SELECT oid FROM named)
), wanted AS (
  SELECT a.*, k.kind FROM pg_authid AS a JOIN kinds AS k ON k.oid = a.oid
   WHERE a.rolname !~ '^pg_' AND a.rolname !~ '^memoriesdb_log_[0-9a-f]{12}$'
)
SELECT format($f$DO $r$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %L) THEN
  CREATE ROLE %I WITH %s %s %s %s %s %s %s CONNECTION LIMIT %s%s%s; RAISE NOTICE 'role %% created', %L; END IF; END $r$;$f$,
    w.rolname, w.rolname,
    CASE WHEN w.rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END, CASE WHEN w.rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
    CASE WHEN w.rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END, CASE WHEN w.rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
    CASE WHEN w.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END, CASE WHEN w.rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END,
    CASE WHEN w.rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END, w.rolconnlimit,
    CASE WHEN w.rolpassword IS NOT NULL THEN format(' PASSWORD %L', w.rolpassword) ELSE '' END,
    CASE WHEN w.rolvaliduntil IS NOT NULL THEN format(' VALID UNTIL %L', w.rolvaliduntil) ELSE '' END,
    w.rolname)
  FROM wanted AS w WHERE w.kind = :'kind'
UNION ALL
SELECT format('GRANT %I TO %I%s;', g.rolname, r.rolname, CASE WHEN m.admin_option THEN ' WITH ADMIN OPTION' ELSE '' END)
  FROM pg_auth_members AS m JOIN wanted AS g ON g.oid = m.roleid JOIN wanted AS r ON r.oid = m.member
 WHERE r.kind = :'kind';
SQL
  done
  # the access-log loggers the ledger grants to (its own; another database's too when it is a copy made under another
  # name), and NAME's
  old_loggers=$(psql -qAtX -v ON_ERROR_STOP=1 -d "$src_uri" -c "SELECT DISTINCT a.rolname FROM pg_shdepend AS d
    JOIN pg_authid AS a ON a.oid = d.refobjid WHERE d.refclassid = 'pg_authid'::regclass
     AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND a.rolname ~ '^memoriesdb_log_[0-9a-f]{12}$'")
  new_logger=$(psql_node 0 postgres -v db="$db" <<< "SELECT 'memoriesdb_log_' || left(md5(:'db'), 12)")

  # the vector and text indexes of memories and embeddings (HNSW, GIN, GiST) are left out of the restore and built
  # after the distribution: distribute.sql's fill of owner_id rewrites every embedding, and Citus copies the rows into
  # shards whose indexes already exist, both one index insert per row (measured, 20,000 memories: distribute.sql 104 s
  # with the indexes; without them 14 s, and 15 s to build them on the 32 shards afterwards)
  psql -qAtX -v ON_ERROR_STOP=1 -d "$src_uri" -c "SELECT indexname FROM pg_indexes WHERE schemaname = 'memoriesdb'
    AND tablename IN ('memories', 'embeddings') AND indexdef ~ ' USING (hnsw|gin|gist) '" >"$dump/index_names"

  # 2. the dump: one snapshot of schema, data and the sqitch registry (a later sqitch deploy on the coordinator
  # knows what is deployed). Writes after this moment are not in NAME. Uncompressed (in $TMPDIR, about the size of the
  # database): measured 3 s instead of 24 s for 20,000 memories (264 MB)
  pg_dump -Fc -Z0 -d "$src_uri" -f "$dump/ledger.dump"
  t1=$(date +%s.%N)

  # 3. NAME on every node (citus, the workers registered), the roles on the coordinator, the restore
  MIGRATE_MADE=true
  createdb "$db" >/dev/null
  local_roles="-c citus.enable_create_role_propagation=off -c citus.enable_alter_role_propagation=off"
  PGOPTIONS=$local_roles psql_node 0 "$db" -f "$dump/roles.sql" 2>&1 | created "on the coordinator"
  export PGOPTIONS="$local_roles -c citus.enable_ddl_propagation=off -c client_min_messages=warning"
  # the dump grants to the source's logger: a stand-in (NOLOGIN) until NAME's own logger replaces it (dropped then, or
  # by the EXIT trap after a failure)
  for r in $old_loggers; do
    if [ -z "$(psql_node 0 postgres -v r="$r" <<< "SELECT 1 FROM pg_roles WHERE rolname = :'r'")" ]; then
      psql_node 0 postgres -c "CREATE ROLE $r NOLOGIN"
      [ "$r" = "$new_logger" ] || MIGRATE_STANDINS+=" $r"
    fi
  done
  # (without the search indexes and their comments: indexes.sql, built after the distribution)
  pg_restore -l "$dump/ledger.dump" >"$dump/all.list"
  index_entries="^[0-9]+; [0-9]+ [0-9]+ (INDEX|COMMENT) memoriesdb (INDEX )?($(paste -sd'|' "$dump/index_names")) "
  grep -vE "$index_entries" "$dump/all.list" >"$dump/restore.list"
  grep -E "$index_entries" "$dump/all.list" >"$dump/indexes.list"
  pg_restore -L "$dump/indexes.list" -f "$dump/indexes.sql" "$dump/ledger.dump"
  pg_restore --exit-on-error --single-transaction -L "$dump/restore.list" \
    -d "postgresql://postgres@127.0.0.1:$(port_of 0)/$db" "$dump/ledger.dump"
  # NAME's own access-log logger (a new password; the log's hash and MAC keys are kept)
  psql_node 0 "$db" -c "SELECT memoriesdb.setup_access_logger()" >/dev/null
  for r in $old_loggers; do
    [ "$r" = "$new_logger" ] || psql_node 0 "$db" -c "DROP OWNED BY $r"
  done
  for r in $MIGRATE_STANDINS; do psql_node 0 postgres -c "DROP ROLE $r"; done
  MIGRATE_STANDINS=''
  t2=$(date +%s.%N)
  unset PGOPTIONS

  # 4. distributed as a fresh deploy is (docs/citus.md, "How the deploy works"), then the indexes on every shard
  psql_node 0 "$db" -f db/citus/distribute.sql >/dev/null
  t3=$(date +%s.%N)
  # (with more memory than the default 64MB: a shard's HNSW graph that outgrows maintenance_work_mem builds several
  # times slower; measured, 100,000 memories: 303 s at 64MB, 70 s at 256MB. SET LOCAL reaches the workers' builds)
  psql_node 0 "$db" --single-transaction -c "SET LOCAL client_min_messages = warning" \
    -c "SET LOCAL maintenance_work_mem = '${MIGRATE_MAINTENANCE_WORK_MEM:-256MB}'" -f "$dump/indexes.sql" >/dev/null
  t5=$(date +%s.%N)
  # the logins on the workers too (a worker connection is opened as the current role), the ledger roles LOGIN there
  # (first on each worker, not propagated: a login that already exists on the coordinator is not created through Citus
  # below, and a role Citus does not know of is not copied to a worker added later)
  for i in 1 2; do
    cat "$dump/roles.sql" "$dump/logins.sql" | PGOPTIONS=$local_roles psql_node "$i" "$db" 2>&1 |
      created "on the worker on port $(port_of "$i")"
    login_ledger_roles "$i" "$db"
  done
  for i in 0 1 2; do guard_transaction_ids "$i" "$db"; done
  # the logins through Citus: created on the coordinator, on every node by Citus, and on a node added later
  psql_node 0 "$db" -f "$dump/logins.sql" 2>&1 | created "on the coordinator (through Citus)"
  # the logins' settings in the source database (configure_login), now in NAME
  psql -qAtX -v ON_ERROR_STOP=1 -d "$src_uri" -v db="$db" <<'SQL' | psql_node 0 "$db" >/dev/null
SELECT format('ALTER ROLE %I IN DATABASE %I SET %s = %L;', r.rolname, :'db', split_part(c, '=', 1), substr(c, strpos(c, '=') + 1))
  FROM pg_db_role_setting AS s JOIN pg_roles AS r ON r.oid = s.setrole CROSS JOIN unnest(s.setconfig) AS c
 WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
SQL

  # 5. every table holds the source's rows, and the chains verify
  migrate_check "$src_uri" "$db"
  t4=$(date +%s.%N)
  printf 'ledger %s (%s memories) migrated to %s on the citus cluster (coordinator port %s) in %.1fs: dump %.1fs, restore %.1fs, distribute %.1fs, indexes %.1fs, roles and check %.1fs\n' \
    "$src_db" "$(psql_node 0 "$db" -c "SELECT count(*) FROM memoriesdb.memories")" "$db" "$(port_of 0)" "$(echo "$t4 - $t0" | bc)" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$t3 - $t2" | bc)" "$(echo "$t5 - $t3" | bc)" "$(echo "$t4 - $t5" | bc)"
}

migrate_exit() {  # the EXIT trap of migrate: the dump removed; after a failure, what to do with the incomplete NAME
  local r
  [ -z "$MIGRATE_DUMP" ] || rm -rf "$MIGRATE_DUMP"
  for r in $MIGRATE_STANDINS; do   # (only before the distribution: on the coordinator alone)
    PGOPTIONS="-c citus.enable_create_role_propagation=off -c client_min_messages=warning" \
      psql -qAtX -h 127.0.0.1 -p "$(port_of 0)" -U postgres -d "$MIGRATE_DB" -c "DROP OWNED BY $r" -c "DROP ROLE $r" >/dev/null 2>&1 ||
      echo "citus.sh migrate: drop the stand-in role $r on the coordinator too" >&2
  done
  if [ "$1" != 0 ] && $MIGRATE_MADE; then
    echo "citus.sh migrate: failed; $MIGRATE_DB on the cluster is incomplete: scripts/citus.sh dropdb $MIGRATE_DB, then migrate again" >&2
  fi
}

migrate_check() {  # migrate_check SRC_URI NAME: row counts of every ledger table and the registry equal; chains verify
  local src_uri=$1 db=$2 tables q a b
  # the source's tables (the coordinator also has its replicas' shards of the reference tables)
  tables=$(psql -qAtX -v ON_ERROR_STOP=1 -d "$src_uri" -c "SELECT string_agg(quote_literal(c.oid::regclass::text), ',')
    FROM pg_class AS c WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
     AND c.relnamespace::regnamespace::text IN ('memoriesdb', 'memoriesdb_internal', 'sqitch')")
  q="SELECT string_agg(format('%s %s', t, (xpath('/row/n/text()',
       query_to_xml(format('SELECT count(*) AS n FROM %s', t), false, true, '')))[1]::text), E'\n' ORDER BY t)
       FROM unnest(ARRAY[$tables]) AS t"
  a=$(psql -qAtX -v ON_ERROR_STOP=1 -d "$src_uri" -c "$q")
  b=$(psql_node 0 "$db" -c "$q")
  if [ "$a" != "$b" ]; then
    echo "citus.sh migrate: the row counts differ (source < > $db): the source was written during the migration (reads too" >&2
    echo "write its access log); stop every client of the source first" >&2
    diff <(echo "$a") <(echo "$b") >&2 || true
    exit 1
  fi
  echo "  row counts equal in $(echo "$a" | wc -l) tables ($(echo "$a" | awk '{n += $2} END {print n}') rows)"
  # the memory directory (db/citus/distribute.sql §3i) names every memory, under its owner, in the slot its id's
  # keyed hash gives (where a lookup by id asks); both sides gathered first: the two tables are distributed by
  # different columns
  b=$(psql_node 0 "$db" -c "WITH m AS MATERIALIZED (SELECT id, owner_id FROM memoriesdb.memories),
         l AS MATERIALIZED (SELECT slot, memory_id, owner_id FROM memoriesdb_internal.memory_locations)
    SELECT count(*) FROM m WHERE NOT EXISTS (SELECT 1 FROM l WHERE l.memory_id = m.id AND l.owner_id = m.owner_id
                                                                  AND l.slot = memoriesdb_internal.citus_memory_slot(m.id))")
  if [ "$b" != 0 ]; then
    echo "citus.sh migrate: $b memories of $db are not in the memory directory (memory_locations)" >&2
    exit 1
  fi
  b=$(psql_node 0 "$db" -c "SELECT ok::text || coalesce(' ' || problem, '') FROM memoriesdb.verify_audit_chain()")
  if [ "$b" != true ]; then
    echo "citus.sh migrate: verify_audit_chain() on $db: $b" >&2
    exit 1
  fi
  echo "  verify_audit_chain() ok on $db"
}

add_worker() {  # add_worker NAME: worker3 up, NAME on it, added to NAME's metadata
  local db=$1 t0
  t0=$(date +%s.%N)
  init_node 3
  conf_moves 3
  running worker3 || pg_ctl -D "$CITUS_DIR/worker3" -l "$CITUS_DIR/worker3.log" -w start >/dev/null
  if ! psql_node 0 "$db" -c "SELECT 1 FROM pg_dist_node WHERE nodeport = $(port_of 3)" | grep -q 1; then
    psql_node 3 postgres -v db="$db" <<'SQL'
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db";
SQL
    psql_node 3 "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION citus"
    # the ledger's roles first, as on the coordinator but LOGIN (they log in on the workers only), and citus_add_node
    # told to leave roles the node has alone: it used to create them NOLOGIN, and until login_ledger_roles below every
    # call that opened a connection to the node as one of them failed (08006, or XX000 "failure on connection marked
    # as essential" from a LOCK TABLE propagated to every node; measured in test_citus.py's rebalance)
    psql_node 0 "$db" -v roles="$LEDGER_ROLES" <<'SQL' | psql_node 3 "$db" >/dev/null
SELECT format($f$DO $r$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %L) THEN
  CREATE ROLE %I WITH LOGIN %s %s %s %s %s CONNECTION LIMIT %s; END IF; END $r$;$f$,
    r.rolname, r.rolname, CASE WHEN r.rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
    CASE WHEN r.rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END, CASE WHEN r.rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
    CASE WHEN r.rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END,
    CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END, r.rolconnlimit)
  FROM pg_roles AS r WHERE r.rolname IN (:roles) AND NOT r.rolsuper;
SQL
    # copies Citus's metadata and every distributed object (roles, schemas, types, functions) to the node;
    # reference tables follow at the next rebalance (or replicate_reference_tables())
    psql_node 0 "$db" -c "SET client_min_messages = warning" -c "SET citus.enable_alter_role_propagation = off" \
      -c "SELECT citus_add_node('127.0.0.1', $(port_of 3))" >/dev/null
  fi
  login_ledger_roles 3 "$db"
  guard_transaction_ids 3 "$db"
  # the ledger's database there admits the roles Citus connects as and no client (Citus copies the database's owner
  # to a new node, not its grants: db/citus/distribute.sql section 4g)
  psql_node 0 "$db" -c "SELECT memoriesdb_internal.citus_close_workers()" >/dev/null
  printf 'worker3 on port %s added to %s in %.1fs (no shards yet: SELECT citus_rebalance_start())\n' \
    "$(port_of 3)" "$db" "$(echo "$(date +%s.%N) - $t0" | bc)"
}

remove_worker() {  # remove_worker [NAME]: drain worker3's shards in NAME and remove it there; stop it
  local db=${1:-}
  if [ -n "$db" ] && running coordinator && running worker3 &&
     psql_node 0 "$db" -c "SELECT 1 FROM pg_dist_node WHERE nodeport = $(port_of 3)" | grep -q 1; then
    psql_node 0 "$db" -c "SET client_min_messages = warning" \
      -c "SELECT citus_drain_node('127.0.0.1', $(port_of 3))" \
      -c "CALL citus_cleanup_orphaned_resources()" \
      -c "SELECT citus_remove_node('127.0.0.1', $(port_of 3))" >/dev/null
    echo 'SET client_min_messages = warning; DROP DATABASE IF EXISTS :"db" WITH (FORCE);' | psql_node 3 postgres -v db="$db"
    echo "worker3 drained and removed from $db"
  fi
  if running worker3; then pg_ctl -D "$CITUS_DIR/worker3" -m fast -w stop >/dev/null; fi
  echo "worker3 stopped"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  createdb) createdb "${2:?usage: citus.sh createdb NAME}" ;;
  deploy) require_citus; deploy "${2:?usage: citus.sh deploy NAME}" ;;
  dropdb) dropdb "${2:?usage: citus.sh dropdb NAME}" ;;
  migrate) require_citus; migrate "${2:?usage: citus.sh migrate SRC NAME}" "${3:?usage: citus.sh migrate SRC NAME}" ;;
  add-worker) require_citus; add_worker "${2:?usage: citus.sh add-worker NAME}" ;;
  remove-worker) remove_worker "${2:-}" ;;
  destroy) stop; rm -rf "$CITUS_DIR"; echo "removed $CITUS_DIR" ;;
  *) echo "usage: scripts/citus.sh start|stop|status|createdb NAME|deploy NAME|dropdb NAME|migrate SRC NAME|add-worker NAME|remove-worker [NAME]|destroy" >&2; exit 64 ;;
esac
