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

# Password-less logins for the demo and the tests on a trust-auth development server, created only
# by the demo or `memoriesdb deploy --dev-logins`. Production creates its own logins with passwords
# and grants them these roles (README). memoriesdb_client is an untrusted client (API keys only);
# memoriesdb_server a trusted backend that provisions users and vouches for the user ids it sets;
# memoriesdb_inspector an auditor (verify-audit).
LOCAL_LOGINS = {
    "memoriesdb_runner": "memoriesdb_worker",
    "memoriesdb_client": "memoriesdb_app",
    "memoriesdb_server": "memoriesdb_backend",
    "memoriesdb_inspector": "memoriesdb_auditor",
}


def project_dir() -> Path:
    for candidate in (os.environ.get("MEMORIESDB_PROJECT_DIR"), Path.cwd(), Path(__file__).resolve().parents[2]):
        if candidate and (Path(candidate) / "sqitch.plan").exists():
            return Path(candidate)
    raise ConfigurationError("sqitch.plan not found: run from the MemoriesDB checkout or set MEMORIESDB_PROJECT_DIR")


# libpq's connection parameters and the environment variables libpq (psql, DBD::Pg, so sqitch) reads
# for them: https://www.postgresql.org/docs/current/libpq-envars.html
PG_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


def sqitch_environment(dsn: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for sqitch: base (default os.environ) with every parameter of the DSN as
    libpq's environment variable, so the password, sslmode and the rest reach sqitch and the psql it
    runs without appearing on any command line (argv is world-readable in /proc)."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"MEMORIESDB_ADMIN_DSN is not a valid connection string: {exc}") from exc
    unknown = sorted(set(params) - set(PG_ENV))
    if unknown:
        raise ConfigurationError(f"MEMORIESDB_ADMIN_DSN: sqitch cannot be given {', '.join(unknown)}")
    env = dict(os.environ if base is None else base)
    env.update({PG_ENV[k]: str(v) for k, v in params.items() if v is not None})
    env.setdefault("PGDATABASE", "memoriesdb")
    return env


class DeployError(ConfigurationError):
    """sqitch failed: the message is one line, output is everything sqitch printed."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output


def ensure_database(admin_dsn: str) -> None:
    params = conninfo_to_dict(admin_dsn)
    dbname = params.get("dbname", "memoriesdb")
    with psycopg.connect(make_conninfo(admin_dsn, dbname="postgres"), autocommit=True) as conn:
        if not conn.execute(q("database_exists"), {"dbname": dbname}).fetchone():
            conn.execute(composed("create_database", dbname=dbname))


def deploy(
    admin_dsn: str, variables: dict[str, str] | None = None, env: dict[str, str] | None = None, create: bool = True
) -> str:
    """sqitch deploy (idempotent) over the direct admin connection; returns sqitch's output. env: sqitch's environment
    (default: the DSN's, sqitch_environment()); create: the database made first when missing."""
    if not shutil.which("sqitch"):
        raise ConfigurationError("sqitch is not installed: run scripts/setup.sh")
    if create:
        ensure_database(admin_dsn)
    env = env or sqitch_environment(admin_dsn)
    # db:pg: with no authority: sqitch and psql take every connection parameter from the environment
    cmd = ["sqitch", "deploy", "db:pg:"]
    for k, v in (variables or {}).items():
        cmd += ["--set", f"{k}={v}"]
    try:
        done = subprocess.run(cmd, cwd=project_dir(), env=env, capture_output=True, text=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot run sqitch: {exc.strerror}") from exc
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise DeployError(
            f"sqitch deploy failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}", done.stdout + done.stderr
        )
    return done.stdout


# sqitch on a Citus coordinator deploys as on a single node, nothing propagated yet: db/citus/distribute.sql then
# distributes the tables, which copies what they need, and every function, to the workers (scripts/citus.sh deploy)
CITUS_SQITCH_OPTIONS = (
    "-c citus.enable_ddl_propagation=off -c citus.enable_create_role_propagation=off "
    "-c citus.enable_alter_role_propagation=off -c client_min_messages=warning"
)


def deploy_citus(admin_dsn: str) -> str:
    """The ledger deployed distributed by owner on a Citus cluster (docs/citus.md, README "Scaling out"), over a direct
    superuser connection to the coordinator, whose database must exist on every node with the citus extension and its
    workers registered (Citus neither creates databases on the workers nor propagates CREATE DATABASE): sqitch deploy
    on the coordinator, db/citus/distribute.sql, the ledger's roles LOGIN on the workers, Citus's transaction-id
    functions for the ledger's roles only. A ledger already distributed is left as it is (upgrading one is not this
    command's: docs/citus.md). Returns what it did, one line a step."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        has_citus = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone()
        state = conn.execute(q("citus_cluster" if has_citus else "citus_cluster_no_extension")).fetchone()
    citus, workers, distributed = state
    if citus is None:
        raise ConfigurationError(
            "deploy --citus: no citus extension in this database: create the database on the coordinator and on every "
            "worker, CREATE EXTENSION citus in each, then register the workers on the coordinator "
            "(SELECT citus_add_node(host, port)); locally scripts/citus.sh createdb NAME does all of it"
        )
    if workers == 0:
        raise ConfigurationError("deploy --citus: no active worker is registered: SELECT citus_add_node(host, port) first")
    if distributed:
        return f"the ledger is already distributed on this cluster (citus {citus}, {workers} workers): nothing to do"
    env = sqitch_environment(admin_dsn)
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {CITUS_SQITCH_OPTIONS}".strip()
    done = [deploy(admin_dsn, env=env, create=False).strip()]
    ran = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(project_dir() / "db/citus/distribute.sql")],
        env={k: v for k, v in env.items() if k != "PGOPTIONS"},
        capture_output=True,
        text=True,
    )
    if ran.returncode != 0:
        lines = [line.strip() for line in ran.stderr.splitlines() if line.strip()]
        first = lines[0] if lines else "no output"
        raise DeployError(f"db/citus/distribute.sql failed (exit {ran.returncode}): {first}", ran.stdout + ran.stderr)
    done.append(f"distributed by owner over {workers} workers (db/citus/distribute.sql)")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for step in ("citus_worker_logins", "citus_guard_transaction_ids"):
            failed = [f"{r[0]}:{r[1]}: {r[3]}" for r in conn.execute(q(step)).fetchall() if not r[2]]
            if failed:
                raise ConfigurationError(f"deploy --citus: {step.replace('_', ' ')} failed on {'; '.join(failed)}")
    done.append("the ledger's roles log in on the workers; Citus's transaction-id functions are the ledger roles' only")
    return "\n".join(done)


def ensure_local_logins(admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for login, role in LOCAL_LOGINS.items():
            if not conn.execute(q("role_exists"), {"role": login}).fetchone():
                conn.execute(composed("create_login", login=login))
            conn.execute(composed("grant_role", role=role, login=login))
            conn.execute(q("configure_login"), {"login": login})  # its role's time bounds, in this database
