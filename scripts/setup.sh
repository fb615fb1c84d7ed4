#!/usr/bin/env bash
# MemoriesDB set-up for a fresh Debian 12 machine. Idempotent: every step checks
# first and does nothing when what it installs is already there.
#   - Debian packages: PostgreSQL 15 (if absent), server headers, pgTAP, pg_prove,
#     plpgsql_check, sqitch, PgBouncer
#   - pgvector 0.8 built from Debian 13's source package when `vector` is missing
#   - PostgreSQL started on 127.0.0.1:5432
#   - the Python virtual environment in .venv with the runner installed
set -euo pipefail
cd "$(dirname "$0")/.."
PGVER=${PGVER:-15}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# 1. Debian packages -------------------------------------------------------
need=()
dpkg -s "postgresql-$PGVER" >/dev/null 2>&1 || need+=("postgresql-$PGVER")
dpkg -s "postgresql-server-dev-$PGVER" >/dev/null 2>&1 || need+=("postgresql-server-dev-$PGVER")
dpkg -s "postgresql-$PGVER-pgtap" >/dev/null 2>&1 || need+=("postgresql-$PGVER-pgtap")
dpkg -s "postgresql-$PGVER-plpgsql-check" >/dev/null 2>&1 || need+=("postgresql-$PGVER-plpgsql-check")
command -v pg_prove >/dev/null || need+=(libtap-parser-sourcehandler-pgtap-perl)
command -v sqitch >/dev/null || need+=(sqitch libdbd-pg-perl)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
dpkg -s build-essential >/dev/null 2>&1 || need+=(build-essential)
dpkg -s dpkg-dev >/dev/null 2>&1 || need+=(dpkg-dev)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the pgbouncer package starts a service on 6432 we do not want; ours is started by the runner's scripts
  $SUDO service pgbouncer stop >/dev/null 2>&1 || true
fi

# 2. PostgreSQL running ----------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL $PGVER"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# 3. pgvector ----------------------------------------------------------------
SHAREDIR=$(pg_config --sharedir)
if [ ! -f "$SHAREDIR/extension/vector.control" ]; then
  log "building pgvector 0.8 from Debian 13's source package"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT   # also when a step below fails
  mkdir -p "$work/lists/partial" "$work/src"
  echo "deb-src http://deb.debian.org/debian trixie main" > "$work/trixie.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/trixie.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$work/lists")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only pgvector >/dev/null \
     && dpkg-source -x --no-check ./pgvector_*.dsc pgvector >/dev/null)
  make -s -C "$work/src/pgvector" PG_CONFIG="$(command -v pg_config)" OPTFLAGS="" >/dev/null
  $SUDO make -s -C "$work/src/pgvector" PG_CONFIG="$(command -v pg_config)" install >/dev/null
  rm -rf "$work"
  trap - EXIT
fi

# 4. Python environment -----------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.memoriesdb-installed
TORCH=2.13.0
# a CPU build of torch in one of pip's find-links directories (pip config or PIP_FIND_LINKS)?
local_cpu_wheel() {
  local d
  for d in $(.venv/bin/pip config get global.find-links 2>/dev/null || true) ${PIP_FIND_LINKS:-}; do
    d=${d#file://}
    compgen -G "$d/torch-$TORCH+cpu-*.whl" >/dev/null && return 0
  done
  return 1
}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  if local_cpu_wheel; then
    log "installing the runner into .venv (torch $TORCH: the local CPU wheel)"
    .venv/bin/pip install -q "torch==$TORCH"
  else
    # the default index would bring the CUDA build (several GB); PyTorch's CPU-only index
    # has torch-$TORCH+cpu, which also sorts above a plain $TORCH from any extra index
    log "installing the runner into .venv (torch $TORCH from PyTorch's CPU-only index)"
    .venv/bin/pip install -q "torch==$TORCH" --index-url https://download.pytorch.org/whl/cpu
  fi
  .venv/bin/pip install -q -e ".[test]"
  touch "$stamp"
fi
log "ready"
