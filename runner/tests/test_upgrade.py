"""Upgrade from the first release: deploy @v0.1.0, fill the ledger through the
v0.1.0 API, deploy the rest of the plan over it. Then the schema is the one a
fresh deploy makes (schema snapshot), no row is lost or changed, the audit
chain verifies and the API works on the old rows."""

from __future__ import annotations

import difflib
import subprocess
from contextlib import contextmanager
from hashlib import md5

import psycopg
import psycopg.types.json
import pytest
from psycopg.rows import dict_row

from .test_operations import HOST, PORT, ROOT, dsn, fresh, sqitch

OLD, FRESH = "memoriesdb_upgrade_old", "memoriesdb_upgrade_fresh"
DIM = 384  # sqitch.conf's embedding_dim
GROWING = {"audit_log", "audit_seals", "config"}  # an upgrade may add rows to these, never change one
# config defaults a later change re-tunes, only where the operator left the old default (search_plan_config.sql:
# search_exact_max 20000 -> 700); after the upgrade each holds what a fresh deploy holds
RETUNED = {"search_exact_max"}
SEEDED = {
    "config": ["key", "value", "description"],  # rows the deploy itself writes (ids and times aside)
    "edge_types": ["name", "description", "directed", "acyclic"],
}


@pytest.fixture(autouse=True)
def empty_queue():
    """This module deploys its own databases, not conftest's shared one."""


@pytest.fixture
def databases():
    """Drops this test's databases (and their logger roles) afterwards."""
    yield
    with psycopg.connect(dsn("postgres"), autocommit=True) as c:
        for db in (OLD, FRESH):
            c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            c.execute(f"DROP ROLE IF EXISTS memoriesdb_log_{md5(db.encode()).hexdigest()[:12]}")  # its logger


def target(db: str) -> str:
    return f"db:pg://postgres@{HOST}:{PORT}/{db}"


@contextmanager
def acting(conn, role: str, user=None):
    """A transaction as role, with user as the context (v0.1.0's set_config way)."""
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        if user:
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(user),))
        yield conn


def one(conn, query: str, *args):
    return conn.execute(query, args).fetchone()["v"]


def embedding(i: int) -> str:
    """A distinct unit-ish vector per memory: 1 at i, 0.5 at i + 1."""
    v = [0.0] * DIM
    v[i % DIM], v[(i + 1) % DIM] = 1.0, 0.5
    return "[" + ",".join(map(str, v)) + "]"


def populate(conn) -> dict:
    """Every kind of row, through the API of v0.1.0 only."""
    with acting(conn, "memoriesdb_app"):
        alice, bob, carol = (
            one(conn, "SELECT memoriesdb.create_user(%s, %s) AS v", h, h.title()) for h in ("up-alice", "up-bob", "up-carol")
        )
        key = one(conn, "SELECT memoriesdb.create_api_key(%s) AS v", alice)
        spare = one(conn, "SELECT memoriesdb.create_api_key(%s) AS v", carol)
    with acting(conn, "memoriesdb_app"):
        one(conn, "SELECT memoriesdb.authenticate(%s) AS v", key)  # alice, by her key
        m1 = one(conn, "SELECT memoriesdb.remember('the lighthouse keeper logs every storm', '{\"topic\": \"sea\"}') AS v")
        m2 = one(conn, "SELECT memoriesdb.remember('tide tables for the harbour') AS v")
        gone = one(conn, "SELECT memoriesdb.remember('a note to forget') AS v")
        one(conn, "SELECT memoriesdb.revise(%s, 'the lighthouse keeper logs every storm and every ship') AS v", m1)
        one(conn, 'SELECT memoriesdb.revise(%s, NULL, \'{"topic": "sea", "checked": true}\') AS v', m1)
        one(conn, "SELECT memoriesdb.forget(%s) AS v", gone)
        one(conn, "SELECT memoriesdb.share(%s, %s) AS v", m1, bob)
        one(conn, "SELECT memoriesdb.share(%s, %s, 'write', now() + interval '30 days') AS v", m1, carol)
        one(conn, "SELECT memoriesdb.share(%s, %s) AS v", m2, carol)
        one(conn, "SELECT memoriesdb.unshare(%s, %s) AS v", m2, carol)
        one(conn, "SELECT memoriesdb.create_edge_type('inspired_by', 'one memory led to another', true, true) AS v")
        one(conn, "SELECT memoriesdb.link(%s, %s, 'inspired_by', 0.5, '{\"why\": \"tides\"}') AS v", m1, m2)
        dropped = one(conn, "SELECT memoriesdb.link(%s, %s, 'related_to') AS v", m2, m1)
        one(conn, "SELECT memoriesdb.unlink(%s) AS v", dropped)
        one(conn, "SELECT memoriesdb.transfer(%s, %s, 'handover before the upgrade') AS v", m2, bob)
    with acting(conn, "memoriesdb_app", bob):
        m3 = one(conn, "SELECT memoriesdb.remember('ships seen from the harbour wall') AS v")
    with acting(conn, "memoriesdb_app"):
        one(conn, "SELECT memoriesdb.revoke_api_key(%s) AS v", spare)
    # the runner: embeddings for all but one job, which fails and stays queued
    memories = {m1: 1, m2: 2, m3: 3}
    with acting(conn, "memoriesdb_worker"):
        jobs = conn.execute(
            "SELECT memory_id, lease_id FROM memoriesdb.claim_embedding_jobs(100, '5 minutes', 'upgrade')"
        ).fetchall()
        assert {j["memory_id"] for j in jobs} == set(memories)
        done = [j for j in jobs if j["memory_id"] != m3]
        conn.execute(
            "SELECT memoriesdb.complete_embedding_jobs(%s, %s, %s::public.vector[], 'test-model')",
            ([j["memory_id"] for j in done], [j["lease_id"] for j in done], [embedding(memories[j["memory_id"]]) for j in done]),
        )
        failed = next(j for j in jobs if j["memory_id"] == m3)
        conn.execute("SELECT memoriesdb.fail_embedding_job(%s, %s, 'provider timed out')", (m3, failed["lease_id"]))
        conn.execute("SELECT * FROM memoriesdb.run_vindexing('upgrade')")
    with acting(conn, "memoriesdb_app", bob):  # an edge the graph has not absorbed yet: a pending refresh
        one(conn, "SELECT memoriesdb.link(%s, %s, 'related_to') AS v", m3, m2)
    return {"alice": alice, "bob": bob, "carol": carol, "m1": m1, "m2": m2, "m3": m3, "gone": gone}


def ledger_rows(conn, columns: dict | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """Every table of the ledger's schemas: table name -> (its columns, its rows as text, sorted).
    With columns (an earlier answer), only those columns of those tables, wherever the table now lives."""
    tables = conn.execute(
        "SELECT c.relname AS name, c.oid::regclass::text AS qualified,"
        "       array_agg(quote_ident(a.attname) ORDER BY a.attnum) AS cols"
        "  FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        "  JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE c.relkind IN ('r', 'p') AND n.nspname LIKE 'memoriesdb%' GROUP BY 1, 2"
    ).fetchall()
    where = {t["name"]: t["qualified"] for t in tables}
    wanted = columns or {t["name"]: t["cols"] for t in tables}
    return {
        name: (cols, sorted(r["v"] for r in conn.execute(f"SELECT row({', '.join(cols)})::text AS v FROM {where[name]}")))
        for name, cols in wanted.items()
    }


def snapshot(db: str) -> list[str]:
    done = subprocess.run(["bash", "scripts/schema_snapshot.sh", db], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.splitlines()


def test_upgrade_from_v0_1_0(databases):
    fresh(OLD)
    sqitch("deploy", target(OLD), "--to", "@v0.1.0")
    with psycopg.connect(dsn(OLD), autocommit=True, row_factory=dict_row) as conn:
        ids = populate(conn)
        before = ledger_rows(conn)
    assert [name for name, (_, rows) in before.items() if not rows] == [], "every table has rows"

    sqitch("deploy", target(OLD))  # the rest of the plan, over the data
    sqitch("verify", target(OLD))
    fresh(FRESH)
    sqitch("deploy", target(FRESH))

    upgraded, clean = snapshot(OLD), snapshot(FRESH)
    assert upgraded == clean, "an upgraded database differs from a fresh deploy:\n" + "\n".join(
        difflib.unified_diff(clean, upgraded, f"fresh deploy ({FRESH})", f"upgraded from v0.1.0 ({OLD})", lineterm="")
    )

    with psycopg.connect(dsn(FRESH), autocommit=True, row_factory=dict_row) as conn:
        seeded = ledger_rows(conn, SEEDED)
    with psycopg.connect(dsn(OLD), autocommit=True, row_factory=dict_row) as conn:
        for name, (_, rows) in ledger_rows(conn, SEEDED).items():
            assert set(seeded[name][1]) <= set(rows), f"{name}: the upgrade did not seed what a fresh deploy seeds"
        after = ledger_rows(conn, {name: cols for name, (cols, _) in before.items()})
        for name, (_, rows) in before.items():
            kept = after[name][1]
            if name == "config":  # a re-tuned default's row changes (value, description, times): compared below
                rows = [r for r in rows if not any(r.startswith(f"({key},") for key in RETUNED)]
            if name in GROWING:
                assert set(rows) <= set(kept), f"{name}: a row was lost or changed"
            else:
                assert kept == rows, f"{name}: rows changed by the upgrade"
        retuned = conn.execute("SELECT key, value::text FROM memoriesdb.config WHERE key = ANY(%s)", (list(RETUNED),))
        with psycopg.connect(dsn(FRESH), autocommit=True) as fresh_conn:
            fresh_values = fresh_conn.execute(
                "SELECT key, value::text FROM memoriesdb.config WHERE key = ANY(%s)", (list(RETUNED),)
            ).fetchall()
        assert sorted((r["key"], r["value"]) for r in retuned) == sorted(fresh_values), "a re-tuned default differs"
        with acting(conn, "memoriesdb_auditor"):
            chain = conn.execute("SELECT * FROM memoriesdb.verify_audit_chain()").fetchone()
        assert chain["ok"], chain

        # the API on the old rows
        with acting(conn, "memoriesdb_app", ids["alice"]):
            recalled = conn.execute("SELECT content, revision FROM memoriesdb.recall(%s)", (ids["m1"],)).fetchone()
            assert recalled == {"content": "the lighthouse keeper logs every storm and every ship", "revision": 3}
            assert [r["id"] for r in conn.execute("SELECT id FROM memoriesdb.search_text('lighthouse storm')")] == [ids["m1"]]
            found = conn.execute("SELECT id FROM memoriesdb.search(%s::public.vector, 1)", (embedding(1),)).fetchall()
            assert [r["id"] for r in found] == [ids["m1"]]
        with acting(conn, "memoriesdb_app", ids["bob"]):
            assert one(conn, "SELECT content AS v FROM memoriesdb.recall(%s)", ids["m2"]) == "tide tables for the harbour"
            assert ids["m2"] in {r["id"] for r in conn.execute("SELECT id FROM memoriesdb.neighbors(%s)", (ids["m1"],))}
        with pytest.raises(psycopg.Error) as refused, acting(conn, "memoriesdb_app", ids["alice"]):
            conn.execute("SELECT * FROM memoriesdb.recall(%s)", (ids["gone"],))
        assert refused.value.diag.sqlstate == "MDB03"
        # the history as of a time, from audit rows written by v0.1.0 (no login, no vouched_by)
        with acting(conn, "memoriesdb_app", ids["alice"]):
            readers = conn.execute(
                "SELECT user_id, level, given_by, vouched_by FROM memoriesdb.who_could_read(%s, statement_timestamp())"
                " ORDER BY level",
                (ids["m1"],),
            ).fetchall()
            assert [(r["user_id"], r["level"], r["given_by"], r["vouched_by"]) for r in readers] == [
                (ids["alice"], "owner", ids["alice"], None),
                (ids["bob"], "read", ids["alice"], None),
                (ids["carol"], "write", ids["alice"], None),
            ]
            then = conn.execute(
                "SELECT revision, content, metadata FROM memoriesdb.recall_as_of(%s, statement_timestamp())", (ids["m1"],)
            ).fetchone()
            assert then == {
                "revision": 3,
                "content": "the lighthouse keeper logs every storm and every ship",
                "metadata": {"topic": "sea", "checked": True},
            }
        with acting(conn, "memoriesdb_app", ids["bob"]):
            readers = conn.execute(
                "SELECT user_id, level, given_by FROM memoriesdb.who_could_read(%s, statement_timestamp())", (ids["m2"],)
            ).fetchall()
            assert readers == [{"user_id": ids["bob"], "level": "owner", "given_by": ids["alice"]}], (
                "the transfer before the upgrade: bob, given it by alice (carol's grant was unshared)"
            )
        # and new writes on old rows, still in the chain
        with acting(conn, "memoriesdb_app", ids["alice"]):
            one(conn, "SELECT memoriesdb.revise(%s, 'revised after the upgrade') AS v", ids["m1"])
            one(conn, "SELECT memoriesdb.remember('written after the upgrade') AS v")
        with acting(conn, "memoriesdb_auditor"):
            chain = conn.execute("SELECT * FROM memoriesdb.verify_audit_chain()").fetchone()
        assert chain["ok"], chain
        # per-owner chains (v0.5): the old single chain stays, frozen, as "legacy"; what was
        # written after the upgrade is in its owner's chain; a checkpoint covers both
        legacy = conn.execute("SELECT count(*) AS n FROM memoriesdb.audit_seals WHERE chain IS NULL").fetchone()["n"]
        assert legacy > 0, "the v0.1.0 seals are kept"
        chains = {
            r["chain"]
            for r in conn.execute(
                "SELECT DISTINCT chain FROM memoriesdb.audit_log WHERE memory_id = %s AND chain IS NOT NULL", (ids["m1"],)
            )
        }
        assert chains == {ids["alice"]}, "the revision after the upgrade is in alice's chain"
        with acting(conn, "memoriesdb_auditor"):
            checkpoint = conn.execute("SELECT memoriesdb.audit_checkpoint() AS cp").fetchone()["cp"]
            names = [c["chain"] for c in checkpoint["chains"]]
            assert "legacy" in names and str(ids["alice"]) in names, names
            verified = conn.execute(
                "SELECT * FROM memoriesdb.verify_audit_chain(%s)", (psycopg.types.json.Jsonb(checkpoint),)
            ).fetchone()
        assert verified["ok"], verified
