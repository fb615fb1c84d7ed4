#!/usr/bin/env bash
# The main job on the embedded defaults: local PostgreSQL, local embedding model.
# Sets up what is missing, deploys the ledger into database "memoriesdb", creates
# two users, ingests a small corpus, embeds it, searches, shows isolation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/memoriesdb demo "$@"
