#!/usr/bin/env bash
# Static checks, each printed before it runs: ruff (lint, then format --check) over all
# Python, shellcheck over the shell scripts, hadolint over the Dockerfiles. Every step
# runs; the script exits 1 if any step found something. The tools come from .venv
# (scripts/setup.sh installs the test extra there), else from PATH.
set -uo pipefail
shopt -s globstar nullglob
cd "$(dirname "$0")/.." || exit 1
PATH="$PWD/.venv/bin:$PATH"

failed=()
step() {   # step NAME COMMAND...: print and run COMMAND, remember NAME if it fails
  local name=$1; shift
  printf '\n\033[1m== lint: %s\033[0m\n$ %s\n' "$name" "$*"
  if "$@"; then echo "ok"; else failed+=("$name"); fi
}

step "ruff check" ruff check
step "ruff format" ruff format --check
step "shellcheck" shellcheck scripts/*.sh bench/*.sh deploy/**/*.sh .ci/run
step "hadolint" hadolint --failure-threshold info Dockerfile.postgres runner/Dockerfile

# --- further steps go here, one `step NAME COMMAND...` line each (e.g. plpgsql_check over db/) ---

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nlint failed: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
  exit 1
fi
printf '\nlint passed\n'
