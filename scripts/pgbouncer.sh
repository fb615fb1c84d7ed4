#!/usr/bin/env bash
# Start (or stop) PgBouncer for the local setup: deploy/pgbouncer/pgbouncer.ini rendered
# with the chosen port and authentication. Usage: scripts/pgbouncer.sh [start|stop] [port]
#
# Files: RUN=.run/pgbouncer-<port> holds the configuration (pgbouncer.ini, userlist.txt);
# RUN/state holds what PgBouncer writes (pidfile, log, unix socket), mode 0700.
# Run as root, PgBouncer runs as the user postgres (it refuses root): RUN then belongs to
# root (group postgres may read it) and RUN/state to postgres. When postgres cannot reach
# the checkout (e.g. under /root), RUN is /run/memoriesdb/pgbouncer-<port> instead.
#
# Environment:
#   MEMORIESDB_PGBOUNCER_AUTH           auto (default), trust or scram. auto: trust only when the
#                                       server itself lets the superuser in without a password
#                                       (a development server); scram otherwise. trust is refused
#                                       on a server that asks for passwords.
#   MEMORIESDB_PGBOUNCER_AUTH_USER      scram: PgBouncer's auth_user (memoriesdb_pgbouncer_auth)
#   MEMORIESDB_PGBOUNCER_AUTH_PASSWORD  scram: its password (required)
#   MEMORIESDB_PGBOUNCER_RUN_DIR        RUN, if not the default
#   MEMORIESDB_PGBOUNCER_SERVER_PORT    the server PgBouncer fronts on 127.0.0.1 (default 5432; the local
#                                       Citus coordinator: 9700, as scripts/test_citus.sh does)
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "pgbouncer.sh: $*" >&2; exit 1; }
action=${1:-start}
case "$action" in start|stop) ;; *) echo "usage: $0 [start|stop] [port]" >&2; exit 2 ;; esac
port=${2:-${MEMORIESDB_PGBOUNCER_PORT:-6432}}
[[ "$port" =~ ^[0-9]+$ ]] || die "the port must be a number, not '$port'"
server_port=${MEMORIESDB_PGBOUNCER_SERVER_PORT:-5432}
[[ "$server_port" =~ ^[0-9]+$ ]] || die "MEMORIESDB_PGBOUNCER_SERVER_PORT must be a number, not '$server_port'"

as_root=false; [ "$(id -u)" -eq 0 ] && as_root=true
user=$(id -un); $as_root && user=postgres
as_user() { if $as_root; then runuser -u "$user" -- "$@"; else "$@"; fi; }
if [ -n "${MEMORIESDB_PGBOUNCER_RUN_DIR:-}" ]; then
  run=$MEMORIESDB_PGBOUNCER_RUN_DIR
elif $as_root && ! as_user test -x "$PWD"; then
  run=/run/memoriesdb/pgbouncer-$port   # the checkout is out of postgres's reach
else
  run=$PWD/.run/pgbouncer-$port
fi
state=$run/state
ini=$run/pgbouncer.ini
pidfile=$state/pgbouncer.pid

# ours PID: PID is the PgBouncer started with this ini (not whatever a pidfile names)
ours() {
  [[ "$1" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = pgbouncer ] || return 1
  tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qxF "$ini"
}
stop() {
  local pid
  [ -f "$pidfile" ] || return 0
  pid=$(head -c 32 "$pidfile" | tr -d '[:space:]')
  if ! ours "$pid"; then
    [[ "$pid" =~ ^[0-9]+$ ]] || pid="(not a number)"
    echo "pgbouncer.sh: $pidfile names pid $pid, which is not the PgBouncer of $ini: not killed; the stale pidfile is removed" >&2
    rm -f "$pidfile"
    return 0
  fi
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "PgBouncer (pid $pid) did not stop within 5 s; it is still running"
}
stop
if [ "$action" = stop ]; then exit 0; fi

# authentication: trust only in front of a server that trusts local logins itself
auth=${MEMORIESDB_PGBOUNCER_AUTH:-auto}
server_trusts() { env -u PGPASSWORD PGPASSFILE=/dev/null psql -qAtXw -h 127.0.0.1 -p "$server_port" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; }
case "$auth" in
  auto) if server_trusts; then auth=trust; else auth=scram; fi ;;
  trust) server_trusts || die "the server at 127.0.0.1:$server_port asks for passwords: PgBouncer will not trust local logins in front of it (use MEMORIESDB_PGBOUNCER_AUTH=scram)" ;;
  scram) ;;
  *) die "MEMORIESDB_PGBOUNCER_AUTH must be auto, trust or scram, not '$auth'" ;;
esac
auth_user=${MEMORIESDB_PGBOUNCER_AUTH_USER:-memoriesdb_pgbouncer_auth}
if [ "$auth" = scram ] && [ -z "${MEMORIESDB_PGBOUNCER_AUTH_PASSWORD:-}" ]; then
  die "scram authentication needs the password of $auth_user in MEMORIESDB_PGBOUNCER_AUTH_PASSWORD (as a superuser: ALTER ROLE memoriesdb_pgbouncer_auth LOGIN PASSWORD '...')"
fi

if pg_isready -q -h 127.0.0.1 -p "$port"; then
  die "port $port is already taken by another server (a system pgbouncer? try: service pgbouncer stop)"
fi

# the directories: configuration not writable by PgBouncer's user, state private to it
umask 077
if $as_root; then
  [ -d "$(dirname "$run")" ] || { mkdir -p "$(dirname "$run")"; chmod 0755 "$(dirname "$run")"; }   # e.g. /run/memoriesdb
  mkdir -p "$run"
  chown root:"$user" "$run"; chmod 0750 "$run"   # from here on, only root adds entries to it
  if [ -L "$state" ]; then rm -f "$state"; fi   # a link (PgBouncer's user owned RUN before): never chown through it
  mkdir -p "$state"
  chown -h "$user": "$state"; chmod 0700 "$state"
  case "$run" in "$PWD"/.run/*) chmod o+x "$PWD/.run" ;; esac   # traversal only; .run lists nothing to others
  as_user test -w "$state" || die "the user $user cannot write $state (a parent directory it cannot traverse?); set MEMORIESDB_PGBOUNCER_RUN_DIR"
else
  mkdir -p "$state"; chmod 0700 "$run" "$state"
fi
rm -f "$ini" "$run/userlist.txt"   # never write through a link left there
render=(-e "s/^listen_port = .*/listen_port = $port/" -e "s/^\\* = host=127.0.0.1 port=.*/* = host=127.0.0.1 port=$server_port/" -e "s|^auth_file = .*|auth_file = $run/userlist.txt|")
if [ "$auth" = scram ]; then   # no admin console, no stats user (a connection to it is never let in)
  render+=(-e "s/^auth_type = .*/auth_type = scram-sha-256/" -e "/^admin_users = /d" -e "/^stats_users = /d")
fi
sed "${render[@]}" deploy/pgbouncer/pgbouncer.ini > "$ini"
{
  echo "pidfile = $pidfile"
  echo "logfile = $state/pgbouncer.log"
  echo "unix_socket_dir = $state"
  if [ "$auth" = scram ]; then
    echo "auth_user = $auth_user"
    echo "auth_query = SELECT usename, passwd FROM memoriesdb_pgbouncer.user_lookup(\$1)"
  fi
} >> "$ini"
if [ "$auth" = scram ]; then
  printf '"%s" "%s"\n' "${auth_user//\"/\"\"}" "${MEMORIESDB_PGBOUNCER_AUTH_PASSWORD//\"/\"\"}" > "$run/userlist.txt"
else
  cp deploy/pgbouncer/userlist.txt "$run/userlist.txt"
fi
if $as_root; then
  chown root:"$user" "$ini" "$run/userlist.txt"; chmod 0640 "$ini" "$run/userlist.txt"
fi

if $as_root; then pgbouncer -d -u "$user" "$ini"; else pgbouncer -d "$ini"; fi || {
  echo "pgbouncer.sh: pgbouncer did not start; its log ($state/pgbouncer.log):" >&2
  tail -n 20 "$state/pgbouncer.log" >&2 2>/dev/null || true
  exit 1
}
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
if ! pg_isready -q -h 127.0.0.1 -p "$port" || ! ours "$(cat "$pidfile" 2>/dev/null)"; then
  echo "pgbouncer.sh: pgbouncer did not start; its log ($state/pgbouncer.log):" >&2
  tail -n 20 "$state/pgbouncer.log" >&2 2>/dev/null || true
  exit 1
fi
echo "pgbouncer listening on 127.0.0.1:$port for the server on port $server_port (transaction pooling, auth $auth; files in $run)"
if [ "$auth" = trust ]; then
  echo "admin console: psql -h 127.0.0.1 -p $port -U postgres pgbouncer (development: the server trusts local logins too)"
fi
