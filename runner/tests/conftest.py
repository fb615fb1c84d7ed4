"""Fixtures: a real PostgreSQL database with the ledger deployed (no mocks of the database)."""

from __future__ import annotations

import hashlib
import os
import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from memoriesdb_runner import admin
from memoriesdb_runner.settings import Settings

from .fake_ollama import FakeOllama

HOST = os.environ.get("PGHOST", "127.0.0.1")
PORT = os.environ.get("PGPORT", "5432")
DB = os.environ.get("MEMORIESDB_PYTEST_DB", "memoriesdb_pytest")
ADMIN_DSN = f"postgresql://postgres@{HOST}:{PORT}/{DB}"


def logger_role(db: str) -> str:
    """The access log's logger role of database db (memoriesdb.setup_access_logger()): cluster-wide."""
    return "memoriesdb_log_" + hashlib.md5(db.encode()).hexdigest()[:12]


def drop_ledger_database(db: str) -> None:
    """DROP DATABASE leaves the database's logger LOGIN role behind: drop both."""
    with psycopg.connect(f"postgresql://postgres@{HOST}:{PORT}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(logger_role(db))))


@pytest.fixture(scope="session")
def database():
    drop_ledger_database(DB)
    admin.deploy(ADMIN_DSN)
    admin.ensure_local_logins(ADMIN_DSN)
    yield ADMIN_DSN
    drop_ledger_database(DB)


@pytest.fixture
def settings(database, fake_ollama) -> Settings:
    return Settings(
        _env_file=None,
        dsn=f"postgresql://memoriesdb_runner@{HOST}:{PORT}/{DB}",
        listen_dsn=None,
        listen_port=int(PORT),
        app_dsn=f"postgresql://memoriesdb_client@{HOST}:{PORT}/{DB}",
        backend_dsn=f"postgresql://memoriesdb_server@{HOST}:{PORT}/{DB}",
        admin_dsn=database,
        provider="ollama",
        ollama_url=fake_ollama.url,
        batch_size=16,
        lease_seconds=30,
        poll_seconds=0.2,
        max_retries=3,
    )


@pytest.fixture
def admin_conn(database):
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def fake_ollama():
    fake = FakeOllama()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def empty_queue(admin_conn):
    """Each test starts with no ready job of other tests in the way."""
    admin_conn.execute(
        "UPDATE memoriesdb.embedding_schedule SET dead_at = coalesce(dead_at, now()), last_error = 'parked by test fixture'"
    )
    yield


@pytest.fixture
def user(admin_conn):
    """A fresh user: (id, api_key)."""
    uid = admin_conn.execute("SELECT memoriesdb.create_user(%s) AS id", (f"u{uuid.uuid4().hex[:12]}",)).fetchone()["id"]
    key = admin_conn.execute("SELECT memoriesdb.create_api_key(%s) AS k", (uid,)).fetchone()["k"]
    return uid, key


@pytest.fixture
def make_user(admin_conn):
    """Makes further fresh users: make_user() -> id."""

    def make() -> uuid.UUID:
        return admin_conn.execute("SELECT memoriesdb.create_user(%s) AS id", (f"u{uuid.uuid4().hex[:12]}",)).fetchone()["id"]

    return make


def remember(admin_conn, user_id, *contents: str) -> list[uuid.UUID]:
    ids = []
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(user_id),))
        for c in contents:
            ids.append(admin_conn.execute("SELECT memoriesdb.remember(%s) AS id", (c,)).fetchone()["id"])
    return ids
