"""Operations: backup and restore keep everything (and the audit chain verifies);
an upgrade from an earlier point of the plan keeps every row."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .conftest import drop_ledger_database

ROOT = Path(__file__).resolve().parents[2]
HOST = os.environ.get("PGHOST", "127.0.0.1")
PORT = os.environ.get("PGPORT", "5432")


def dsn(db: str) -> str:
    return f"postgresql://postgres@{HOST}:{PORT}/{db}"


# the restored copy first: it holds grants to the source's logger role, which cannot be dropped before it
OPS_DATABASES = ("memoriesdb_ops_dst", "memoriesdb_ops_src", "memoriesdb_ops_upgrade")


@pytest.fixture(scope="module", autouse=True)
def drop_ops_databases():
    """The ledgers this module makes, and their loggers' LOGIN roles, are gone before it and after it."""
    for db in OPS_DATABASES:
        drop_ledger_database(db)
    yield
    for db in OPS_DATABASES:
        drop_ledger_database(db)


def fresh(db: str) -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")


def sqitch(*args: str) -> None:
    subprocess.run(["sqitch", "--quiet", *args], cwd=ROOT, check=True, capture_output=True, text=True)


def populate(conn) -> None:
    """Users, memories, a revision, a grant, a transfer, an edge: every kind of row."""
    a = conn.execute("SELECT memoriesdb.create_user('ops-alice') AS id").fetchone()["id"]
    b = conn.execute("SELECT memoriesdb.create_user('ops-bob') AS id").fetchone()["id"]
    if conn.execute("SELECT to_regprocedure('memoriesdb.accept_sender(uuid)') IS NOT NULL AS v").fetchone()["v"]:
        with conn.transaction():  # since offers: b takes a's share and transfer at once
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(b),))
            conn.execute("SELECT memoriesdb.accept_sender(%s)", (a,))
    with conn.transaction():
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(a),))
        m1 = conn.execute("SELECT memoriesdb.remember('kept across a restore', '{\"k\": 1}') AS id").fetchone()["id"]
        m2 = conn.execute("SELECT memoriesdb.remember('and across an upgrade') AS id").fetchone()["id"]
        conn.execute("SELECT memoriesdb.revise(%s, 'kept across a restore, revised')", (m1,))
        conn.execute("SELECT memoriesdb.link(%s, %s, 'related_to')", (m1, m2))
        conn.execute("SELECT memoriesdb.share(%s, %s)", (m1, b))
        conn.execute("SELECT memoriesdb.transfer(%s, %s, 'ops test')", (m2, b))


COUNTED = [
    "users",
    "memories",
    "memory_revisions",
    "memory_grants",
    "memory_transfers",
    "memory_edges",
    "audit_log",
    "audit_seals",
    "embedding_schedule",
]


def counts(conn) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) AS n FROM memoriesdb.{t}").fetchone()["n"] for t in COUNTED}


def test_dump_and_restore_keep_everything(database):
    src, dst = "memoriesdb_ops_src", "memoriesdb_ops_dst"
    fresh(src)
    sqitch("deploy", f"db:pg://postgres@{HOST}:{PORT}/{src}")
    with psycopg.connect(dsn(src), autocommit=True, row_factory=dict_row) as conn:
        populate(conn)
        before = counts(conn)
        memories_before = conn.execute(
            "SELECT id, owner_id, content, content_hash, created_by FROM memoriesdb.memories ORDER BY id"
        ).fetchall()
        with conn.transaction():  # a checkpoint kept outside, before the dump
            conn.execute("SET LOCAL ROLE memoriesdb_auditor")
            checkpoint = conn.execute("SELECT memoriesdb.audit_checkpoint() AS cp").fetchone()["cp"]
    dump = Path(f"/tmp/{src}.dump")
    subprocess.run(["pg_dump", "-Fc", "-h", HOST, "-p", PORT, "-U", "postgres", "-f", str(dump), src], check=True)
    fresh(dst)
    subprocess.run(["pg_restore", "--exit-on-error", "-h", HOST, "-p", PORT, "-U", "postgres", "-d", dst, str(dump)], check=True)
    with psycopg.connect(dsn(dst), autocommit=True, row_factory=dict_row) as conn:
        assert counts(conn) == before
        assert (
            conn.execute("SELECT id, owner_id, content, content_hash, created_by FROM memoriesdb.memories ORDER BY id").fetchall()
            == memories_before
        )
        with conn.transaction():
            conn.execute("SET LOCAL ROLE memoriesdb_auditor")
            result = conn.execute("SELECT * FROM memoriesdb.verify_audit_chain()").fetchone()
        assert result["ok"] and result["rows_checked"] == before["audit_log"], result
        with conn.transaction():  # the restored history is the one the checkpoint commits to (same ledger id)
            conn.execute("SET LOCAL ROLE memoriesdb_auditor")
            result = conn.execute("SELECT * FROM memoriesdb.verify_audit_chain(%s)", (Jsonb(checkpoint),)).fetchone()
        assert result["ok"], result
        # and the restored ledger keeps working, RLS included
        bob = conn.execute("SELECT id FROM memoriesdb.users WHERE handle = 'ops-bob'").fetchone()["id"]
        with conn.transaction():
            conn.execute("SET LOCAL ROLE memoriesdb_app")
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(bob),))
            listed = conn.execute("SELECT id, owned, permission FROM memoriesdb.list_memories()").fetchall()
            assert sorted((r["owned"], r["permission"]) for r in listed) == [(False, "read"), (True, "owner")], listed
            shared = next(r["id"] for r in listed if not r["owned"])
            assert conn.execute("SELECT content FROM memoriesdb.recall(%s)", (shared,)).fetchone()["content"] == (
                "kept across a restore, revised"
            )
            conn.execute("SELECT memoriesdb.remember('written after the restore')")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE memoriesdb_auditor")
            assert conn.execute("SELECT ok FROM memoriesdb.verify_audit_chain()").fetchone()["ok"]
    dump.unlink()


@pytest.mark.parametrize("upgrade_from", ["api_graph@v0.1.0", "search_fn@v0.1.0"])
def test_upgrade_keeps_every_row(database, upgrade_from):
    db = "memoriesdb_ops_upgrade"
    fresh(db)
    target = f"db:pg://postgres@{HOST}:{PORT}/{db}"
    sqitch("deploy", target, "--to", upgrade_from)
    audit = "SELECT id, row_hash FROM memoriesdb.audit_log ORDER BY id"
    with psycopg.connect(dsn(db), autocommit=True, row_factory=dict_row) as conn:
        populate(conn)
        before = counts(conn)
        audit_before = conn.execute(audit).fetchall()
    sqitch("deploy", target)  # the rest of the plan, over the data
    sqitch("verify", target)
    with psycopg.connect(dsn(db), autocommit=True, row_factory=dict_row) as conn:
        after = counts(conn)
        ledger = [t for t in COUNTED if not t.startswith("audit")]
        assert {t: after[t] for t in ledger} == {t: before[t] for t in ledger}
        # the upgrade's own changes (new settings) are audited too; the old rows are untouched
        assert conn.execute(audit).fetchall()[: len(audit_before)] == audit_before
        with conn.transaction():
            conn.execute("SET LOCAL ROLE memoriesdb_auditor")
            assert conn.execute("SELECT ok FROM memoriesdb.verify_audit_chain()").fetchone()["ok"]
        alice = conn.execute("SELECT id FROM memoriesdb.users WHERE handle = 'ops-alice'").fetchone()["id"]
        with conn.transaction():
            conn.execute("SET LOCAL ROLE memoriesdb_app")
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            rows = conn.execute("SELECT content FROM memoriesdb.search_text('restore')").fetchall()
            assert [r["content"] for r in rows] == ["kept across a restore, revised"], "new features work on old rows"
