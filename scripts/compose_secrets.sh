#!/usr/bin/env bash
# Writes deploy/compose.env (or FILE): a random password for each secret
# docker-compose.yml requires, readable by the current user only. It never
# overwrites an existing file (the passwords are in the database volume already).
#   scripts/compose_secrets.sh [FILE]
#   docker compose --env-file deploy/compose.env --profile dev up
set -euo pipefail
file=${1:-$(dirname "$0")/../deploy/compose.env}
if [ -e "$file" ]; then
  echo "compose_secrets: $file exists; not overwritten (delete it first to make new secrets)" >&2
  exit 1
fi
secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }   # 48 hex characters: URL-safe in the DSNs
umask 077
{
  echo "# MemoriesDB compose secrets, made by scripts/compose_secrets.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for var in POSTGRES_PASSWORD MEMORIESDB_RUNNER_PASSWORD MEMORIESDB_CLIENT_PASSWORD MEMORIESDB_SERVER_PASSWORD MEMORIESDB_PGBOUNCER_AUTH_PASSWORD; do
    echo "$var=$(secret)"
  done
} > "$file"
echo "wrote $file (mode $(stat -c %a "$file")); use: docker compose --env-file $file --profile dev up"
