"""Operator scripts, run for real: scripts/drop_orphan_loggers.sh and scripts/pgbouncer.sh."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from memoriesdb_runner import admin

from .conftest import DB, HOST, PORT, drop_ledger_database, logger_role

ROOT = Path(__file__).resolve().parents[2]
PREFIX = DB.removesuffix("pytest")  # this run's database prefix (MEMORIESDB_PYTEST_DB=<prefix>pytest)
# PgBouncer ports: test_pgbouncer.py uses PORT0 .. PORT0+2, this file PORT0+5 .. PORT0+8
PORT0 = int(os.environ.get("MEMORIESDB_PYTEST_PGBOUNCER_PORT", "6435")) + 5


def superuser():
    return psycopg.connect(f"postgresql://postgres@{HOST}:{PORT}/postgres", autocommit=True)


def role_exists(role: str) -> bool:
    with superuser() as c:
        return c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGHOST": HOST, "PGPORT": PORT, "PGUSER": "postgres"}
    return subprocess.run(["bash", str(ROOT / "scripts/drop_orphan_loggers.sh"), *args], capture_output=True, text=True, env=env)


@pytest.fixture
def gone_database():
    """A ledger database, deployed and then dropped with a plain DROP DATABASE, as an operator would."""
    db = f"{PREFIX}orphan"
    drop_ledger_database(db)
    admin.deploy(f"postgresql://postgres@{HOST}:{PORT}/{db}")
    assert role_exists(logger_role(db))
    with superuser() as c:
        c.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
    yield db
    drop_ledger_database(db)


@pytest.fixture
def renamed_logger(database):
    """A logger role whose name matches no database (as after ALTER DATABASE ... RENAME) but that still holds CONNECT."""
    role = logger_role(f"{PREFIX}renamed_away")
    with superuser() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        c.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(DB), sql.Identifier(role)))
    yield role
    with superuser() as c:
        c.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(sql.Identifier(DB), sql.Identifier(role)))
        c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_dropdb_leaves_a_login_role_behind_and_the_script_drops_it(gone_database, renamed_logger, database):
    orphan = logger_role(gone_database)
    # the problem: the database is gone, its logger is still a LOGIN role of the cluster
    with superuser() as c:
        assert c.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (orphan,)).fetchone() == (True,)

    dry = run_script("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"orphan: {orphan} (logger of database {gone_database}, which is gone)" in dry.stdout
    assert logger_role(DB) not in dry.stdout, "the logger of a live database is no orphan"
    assert renamed_logger not in dry.stdout, "a logger that still holds a privilege is no orphan"
    assert role_exists(orphan), "--dry-run drops nothing"

    done = run_script()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dropped: {orphan}" in done.stdout
    assert not role_exists(orphan)
    assert role_exists(logger_role(DB)) and role_exists(renamed_logger)
    with psycopg.connect(database) as c:  # the live database's access log still works
        assert c.execute("SELECT logger_role FROM memoriesdb.access_log_sink").fetchone() == (logger_role(DB),)

    again = run_script("--dry-run")
    assert again.returncode == 0 and orphan not in again.stdout


def test_drop_orphan_loggers_usage():
    bad = run_script("--bogus")
    assert bad.returncode == 2 and "usage" in bad.stderr


# --- scripts/pgbouncer.sh ------------------------------------------------------------------------------------------------

needs_pgbouncer = pytest.mark.skipif(not shutil.which("pgbouncer"), reason="pgbouncer not installed (scripts/setup.sh)")
AS_ROOT = os.geteuid() == 0


def pgbouncer_sh(*args: str, checkout: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEMORIESDB_PGBOUNCER")}
    return subprocess.run(
        ["bash", str(checkout / "scripts/pgbouncer.sh"), *args], capture_output=True, text=True, env={**clean, **env}, timeout=60
    )


def listening(port: int) -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode == 0


@pytest.fixture
def bystander():
    """An unrelated process (as a pid a pidfile could name)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


@needs_pgbouncer
def test_a_pidfile_naming_another_process_is_not_killed(bystander):
    port = PORT0
    run = ROOT / f".run/pgbouncer-{port}"
    pgbouncer_sh("stop", str(port))
    # the pidfile PgBouncer's user (postgres) owns and can write says: the bystander
    for pidfile in (run / "pgbouncer.pid", run / "state/pgbouncer.pid"):  # (where it was before, and where it is now)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{bystander.pid}\n")
        if AS_ROOT:
            shutil.chown(pidfile, "postgres")
    stopped = pgbouncer_sh("stop", str(port))
    assert stopped.returncode == 0, stopped.stderr
    assert "not killed" in stopped.stderr and str(bystander.pid) in stopped.stderr
    time.sleep(0.3)
    assert bystander.poll() is None, "the bystander was killed"

    (run / "state/pgbouncer.pid").write_text(f"{bystander.pid}\n")  # and a start (which stops first) does not kill it either
    started = pgbouncer_sh("start", str(port))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert listening(port) and bystander.poll() is None
    finally:
        assert pgbouncer_sh("stop", str(port)).returncode == 0
    for _ in range(50):
        if not listening(port):
            break
        time.sleep(0.1)
    assert not listening(port), "stop stops the real PgBouncer"
    assert bystander.poll() is None


@needs_pgbouncer
def test_files_and_socket_are_private():
    port = PORT0 + 1
    started = pgbouncer_sh("start", str(port))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "auth trust" in started.stdout, "the local server trusts 127.0.0.1, so PgBouncer keeps trust (development)"
        run = ROOT / f".run/pgbouncer-{port}"
        state = run / "state"
        socket = state / f".s.PGSQL.{port}"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE(socket.stat().st_mode) & 0o077 == 0, oct(socket.stat().st_mode)
        for path in (ROOT / ".run", run, run / "pgbouncer.ini", run / "userlist.txt"):
            assert not path.stat().st_mode & stat.S_IWOTH, f"{path} is world-writable"
        if AS_ROOT:  # PgBouncer (user postgres) cannot rewrite its own configuration
            assert run.stat().st_uid == 0 and (run / "pgbouncer.ini").stat().st_uid == 0
            assert state.stat().st_uid == pwd.getpwnam("postgres").pw_uid
    finally:
        pgbouncer_sh("stop", str(port))


@needs_pgbouncer
@pytest.mark.skipif(not AS_ROOT, reason="the postgres user's reach matters when root starts PgBouncer")
def test_starts_from_a_checkout_postgres_cannot_reach(tmp_path):
    locked = tmp_path / "locked"  # mode 0700, root's: postgres cannot traverse it
    checkout = locked / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts/pgbouncer.sh", checkout / "scripts")
    shutil.copytree(ROOT / "deploy/pgbouncer", checkout / "deploy/pgbouncer")
    locked.chmod(0o700)
    port = PORT0 + 2
    started = pgbouncer_sh("start", str(port), checkout=checkout)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"/run/memoriesdb/pgbouncer-{port}" in started.stdout and listening(port)
    finally:
        assert pgbouncer_sh("stop", str(port), checkout=checkout).returncode == 0
    assert not listening(port)


def test_pgbouncer_sh_refuses_clearly():
    bad = pgbouncer_sh("start", "64x0")
    assert bad.returncode == 1 and "must be a number" in bad.stderr
    mode = pgbouncer_sh("start", str(PORT0 + 3), MEMORIESDB_PGBOUNCER_AUTH="md5")
    assert mode.returncode == 1 and "must be auto, trust or scram" in mode.stderr
    nopw = pgbouncer_sh("start", str(PORT0 + 3), MEMORIESDB_PGBOUNCER_AUTH="scram")
    assert nopw.returncode == 1 and "MEMORIESDB_PGBOUNCER_AUTH_PASSWORD" in nopw.stderr
    usage = pgbouncer_sh("restart")
    assert usage.returncode == 2 and "usage" in usage.stderr


@pytest.fixture
def pooled_logins(database):
    """A lookup login (member of memoriesdb_pgbouncer_auth), an application login, a superuser and an outsider, with passwords."""
    names = {k: f"{PREFIX}pgb_{k}" for k in ("lookup", "client", "super", "outsider")}
    ddl = {
        "lookup": "LOGIN IN ROLE memoriesdb_pgbouncer_auth",
        "client": "LOGIN PASSWORD 'client-pw' IN ROLE memoriesdb_app",
        "super": "LOGIN SUPERUSER PASSWORD 'super-pw'",
        "outsider": "LOGIN PASSWORD 'outsider-pw'",
    }
    with superuser() as c:
        for k, name in names.items():
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            c.execute(sql.SQL("CREATE ROLE {} " + ddl[k]).format(sql.Identifier(name)))
    yield names
    with superuser() as c:
        for name in names.values():
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@needs_pgbouncer
def test_scram_through_the_lookup_role_refuses_the_superuser(pooled_logins):
    """PgBouncer asks the ledger for secrets as the lookup role: the application login gets in
    with its password; the superuser, with its right password, does not; nor does a login that is
    not the ledger's."""
    port = PORT0 + 3
    started = pgbouncer_sh(
        "start",
        str(port),
        MEMORIESDB_PGBOUNCER_AUTH="scram",
        MEMORIESDB_PGBOUNCER_AUTH_USER=pooled_logins["lookup"],
        MEMORIESDB_PGBOUNCER_AUTH_PASSWORD="unused-the-server-trusts",
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        ini = (ROOT / f".run/pgbouncer-{port}/pgbouncer.ini").read_text()
        lines = ini.splitlines()
        assert "auth_type = scram-sha-256" in lines and not [x for x in lines if x.startswith(("admin_users", "stats_users"))]

        def connect(user: str, password: str):
            return psycopg.connect(host="127.0.0.1", port=port, dbname=DB, user=user, password=password, connect_timeout=10)

        with connect(pooled_logins["client"], "client-pw") as c:
            assert c.execute("SELECT current_user").fetchone() == (pooled_logins["client"],)
        with pytest.raises(psycopg.OperationalError, match="SASL authentication failed"):
            connect(pooled_logins["client"], "wrong")
        for who, password in (("super", "super-pw"), ("outsider", "outsider-pw")):
            with pytest.raises(psycopg.OperationalError, match="no such user"):
                connect(pooled_logins[who], password)
        with pytest.raises(psycopg.OperationalError, match="no such user"):
            connect("postgres", "")
    finally:
        pgbouncer_sh("stop", str(port))

    # the attack, on the stock set-up this replaces (auth_user postgres, auth_query on pg_shadow):
    # the superuser's password works through the pooler
    run = ROOT / f".run/pgbouncer-{port}"
    ini = run / "pgbouncer.ini"
    stock = [line for line in ini.read_text().splitlines() if not line.startswith(("auth_user", "auth_query"))]
    ini.write_text(
        "\n".join([*stock, "auth_user = postgres", "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1"]) + "\n"
    )
    (run / "userlist.txt").write_text('"postgres" "unused-the-server-trusts"\n')
    subprocess.run(["pgbouncer", "-d", *(["-u", "postgres"] if AS_ROOT else []), str(ini)], check=True, capture_output=True)
    try:
        for _ in range(50):
            if listening(port):
                break
            time.sleep(0.1)
        with connect(pooled_logins["super"], "super-pw") as c:
            assert c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    finally:
        assert pgbouncer_sh("stop", str(port)).returncode == 0


# --- scripts/setup.sh and scripts/test.sh (not run here: they install packages and drop shared databases) ---------------


def _function(script: str, name: str) -> str:
    text = (ROOT / script).read_text()
    start = text.index(f"{name}() {{")
    return text[start : text.index("\n}\n", start) + 3]


@pytest.mark.parametrize("wheel, found", [("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", True), (None, False)])
def test_setup_finds_a_local_cpu_wheel_or_uses_the_cpu_index(tmp_path, wheel, found):
    if wheel:
        (tmp_path / wheel).touch()
    body = _function("scripts/setup.sh", "local_cpu_wheel").replace(".venv/bin/pip", "pip")
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": f"file://{tmp_path}"}
    done = subprocess.run(["bash", "-c", f"TORCH=2.13.0\n{body}\nlocal_cpu_wheel"], env=env, capture_output=True, text=True)
    assert (done.returncode == 0) is found, done.stderr
    setup = (ROOT / "scripts/setup.sh").read_text()
    assert '"torch==$TORCH" --index-url https://download.pytorch.org/whl/cpu' in setup
    assert "work=$(mktemp -d)\n  trap 'rm -rf \"$work\"' EXIT" in setup, "the trixie source directory is removed on failure too"


@pytest.mark.parametrize("script", ["scripts/test.sh", "scripts/bench_smoke.sh", "bench/input_bounds.sh", "bench/pgbouncer.sh"])
def test_scripts_take_drop_db_from_db_lib(script):
    text = (ROOT / script).read_text()
    assert "source scripts/db_lib.sh" in text and "drop_db() {" not in text, "one drop_db, in scripts/db_lib.sh"
    assert not re.search(r"DATABASE[^\n]*\$\{?(DB|d)\b", text), "a database name interpolated into SQL"


def test_db_lib_quotes_database_names(tmp_path):
    text = (ROOT / "scripts/db_lib.sh").read_text()
    assert not re.search(r"DATABASE[^\n]*\$\{?(DB|d|1)\b", text), "a database name interpolated into SQL"
    # the helpers themselves, against the real server, with a name that would break (or inject into) unquoted SQL
    db = f'{PREFIX}we"ird; name'
    helpers = text
    env = {**os.environ, "PGHOST": HOST, "PGPORT": PORT, "PGUSER": "postgres"}
    with superuser() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(logger_role(db))))  # as a deploy would leave it
    try:
        done = subprocess.run(
            ["bash", "-c", f'set -e\n{helpers}\ncreate_db "$1"', "_", db], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        with superuser() as c:
            assert c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
        assert not role_exists(logger_role(db)), "create_db drops the old database's logger with it"
        with superuser() as c:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(logger_role(db))))
        done = subprocess.run(
            ["bash", "-c", f'set -e\n{helpers}\ndrop_db "$1"', "_", db], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        with superuser() as c:
            assert not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
        assert not role_exists(logger_role(db))
    finally:
        drop_ledger_database(db)
