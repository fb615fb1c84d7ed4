"""Deployment helpers for the local default: sqitch deploy and local login roles."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .db import composed, q
from .errors import ConfigurationError

# Local logins for the demo and the tests (trust auth). Production creates its
# own logins with passwords and grants them these roles (README). memoriesdb_client
# is an untrusted client (API keys only); memoriesdb_server a trusted backend that
# provisions users and vouches for the user ids it sets.
LOCAL_LOGINS = {
    "memoriesdb_runner": "memoriesdb_worker",
    "memoriesdb_client": "memoriesdb_app",
    "memoriesdb_server": "memoriesdb_backend",
}


def project_dir() -> Path:
    for candidate in (os.environ.get("MEMORIESDB_PROJECT_DIR"), Path.cwd(), Path(__file__).resolve().parents[2]):
        if candidate and (Path(candidate) / "sqitch.plan").exists():
            return Path(candidate)
    raise ConfigurationError("sqitch.plan not found: run from the MemoriesDB checkout or set MEMORIESDB_PROJECT_DIR")


def sqitch_target(dsn: str) -> str:
    p = conninfo_to_dict(dsn)
    user = p.get("user", "postgres")
    host = p.get("host", "127.0.0.1")
    port = p.get("port", "5432")
    return f"db:pg://{user}@{host}:{port}/{p.get('dbname', 'memoriesdb')}"


def ensure_database(admin_dsn: str) -> None:
    params = conninfo_to_dict(admin_dsn)
    dbname = params.get("dbname", "memoriesdb")
    with psycopg.connect(make_conninfo(admin_dsn, dbname="postgres"), autocommit=True) as conn:
        if not conn.execute(q("database_exists"), {"dbname": dbname}).fetchone():
            conn.execute(composed("create_database", dbname=dbname))


def deploy(admin_dsn: str, variables: dict[str, str] | None = None) -> str:
    """sqitch deploy (idempotent) over the direct admin connection; returns sqitch's output."""
    if not shutil.which("sqitch"):
        raise ConfigurationError("sqitch is not installed: run scripts/setup.sh")
    ensure_database(admin_dsn)
    cmd = ["sqitch", "deploy", sqitch_target(admin_dsn)]
    for k, v in (variables or {}).items():
        cmd += ["--set", f"{k}={v}"]
    done = subprocess.run(cmd, cwd=project_dir(), capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigurationError(f"sqitch deploy failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def ensure_local_logins(admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for login, role in LOCAL_LOGINS.items():
            if not conn.execute(q("role_exists"), {"role": login}).fetchone():
                conn.execute(composed("create_login", login=login))
            conn.execute(composed("grant_role", role=role, login=login))
            conn.execute(q("configure_login"), {"login": login})  # its role's time bounds, in this database
