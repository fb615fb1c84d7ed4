#!/usr/bin/env bash
# Start (or restart) PgBouncer for the local setup: deploy/pgbouncer/pgbouncer.ini
# rendered into .run/pgbouncer with the chosen port, run as user postgres
# (PgBouncer refuses to run as root).  Usage: scripts/pgbouncer.sh [start|stop] [port]
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-start}
port=${2:-${MEMORIESDB_PGBOUNCER_PORT:-6432}}
run=$(pwd)/.run/pgbouncer-$port
pidfile=$run/pgbouncer.pid
stop() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  return 0
}
stop
if [ "$action" = stop ]; then exit 0; fi
mkdir -p "$run"
sed -e "s/^listen_port = .*/listen_port = $port/" -e "s|^auth_file = .*|auth_file = $run/userlist.txt|" \
  deploy/pgbouncer/pgbouncer.ini > "$run/pgbouncer.ini"
cat >> "$run/pgbouncer.ini" <<INI
pidfile = $run/pgbouncer.pid
logfile = $run/pgbouncer.log
unix_socket_dir = $run
INI
cp deploy/pgbouncer/userlist.txt "$run/userlist.txt"
user=postgres
[ "$(id -u)" -eq 0 ] && chown -R "$user" "$run" && chmod o+x "$(pwd)/.run" || user=""
if pg_isready -q -h 127.0.0.1 -p "$port"; then
  echo "port $port is already taken by another server (a system pgbouncer? try: service pgbouncer stop)" >&2
  exit 1
fi
pgbouncer -d ${user:+-u "$user"} "$run/pgbouncer.ini"
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
if ! pg_isready -q -h 127.0.0.1 -p "$port" || ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
  echo "pgbouncer did not start; its log:" >&2
  cat "$run/pgbouncer.log" >&2
  exit 1
fi
echo "pgbouncer listening on 127.0.0.1:$port (transaction pooling); admin console: psql -h 127.0.0.1 -p $port -U postgres pgbouncer"
