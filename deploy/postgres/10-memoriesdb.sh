#!/usr/bin/env bash
# Runs once, on an empty data directory (docker-entrypoint-initdb.d): deploys the
# ledger with sqitch over the local socket into $POSTGRES_DB.
set -euo pipefail
cd /opt/memoriesdb
sqitch deploy "db:pg://${POSTGRES_USER:-postgres}@/${POSTGRES_DB:-memoriesdb}" \
  --set "embedding_dim=${MEMORIESDB_EMBEDDING_DIM:-384}"
