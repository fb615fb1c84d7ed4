#!/usr/bin/env bash
# The main job on the embedded defaults: local PostgreSQL, local embedding model.
# Sets up what is missing, starts PgBouncer on 127.0.0.1:6432 (transaction pooling),
# deploys the ledger into database "memoriesdb" (directly), creates
# two users, ingests a small corpus, embeds it, searches, shows isolation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/pgbouncer.sh start 6432      # the app and the worker connect through it
exec .venv/bin/memoriesdb demo "$@"
