"""Operator scripts, run for real: scripts/drop_orphan_loggers.sh and scripts/pgbouncer.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from memoriesdb_runner import admin

from .conftest import DB, HOST, PORT, drop_ledger_database, logger_role

ROOT = Path(__file__).resolve().parents[2]
PREFIX = DB.removesuffix("pytest")  # this run's database prefix (MEMORIESDB_PYTEST_DB=<prefix>pytest)


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
