"""Ledger behaviour only several real sessions can show (pgTAP runs in one)."""

from __future__ import annotations

import threading
import time

import psycopg
import psycopg.types.json
import pytest
from psycopg.rows import dict_row

from .concurrency import run_in_threads


def test_audit_chain_holds_under_concurrent_writers(database, user, admin_conn):
    uid, key = user
    seals_before = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.audit_seals").fetchone()["n"]

    def writer(n: int) -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            for i in range(40):
                with conn.transaction():
                    conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
                    conn.execute("SELECT memoriesdb.remember(%s)", (f"writer {n} memory {i}",))
                    conn.execute("SELECT memoriesdb.remember(%s)", (f"writer {n} memory {i} bis",))

    errors = run_in_threads(writer, 8)
    assert not errors, errors
    # eight writers of one chain: a commit that found the chain held by another's left its rows waiting
    # (the next commit seals up to 16 of them first); what still waits, the worker's sealer seals
    while admin_conn.execute("SELECT memoriesdb.audit_seal_pending() AS n").fetchone()["n"]:
        pass
    seals = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.audit_seals").fetchone()["n"] - seals_before
    assert seals == 8 * 40, "one seal per committed transaction"
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL ROLE memoriesdb_auditor")
        result = admin_conn.execute("SELECT * FROM memoriesdb.verify_audit_chain()").fetchone()
    assert result["ok"], result


def test_concurrent_claims_are_disjoint(database, user, admin_conn):
    uid, _ = user
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        for i in range(100):
            admin_conn.execute("SELECT memoriesdb.remember(%s)", (f"claimable {i}",))
    claimed: list[list] = []
    barrier = threading.Barrier(4)

    def claimer() -> None:
        with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("SET ROLE memoriesdb_worker")
            barrier.wait()
            got = []
            while rows := conn.execute("SELECT memory_id FROM memoriesdb.claim_embedding_jobs(5)").fetchall():
                got += [r["memory_id"] for r in rows]
            claimed.append(got)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [m for got in claimed for m in got]
    assert len(everything) == 100 and len(set(everything)) == 100, "every job claimed once, by one claimer"


def test_a_session_level_context_is_never_needed(database, user):
    """authenticate() sets the context for its transaction only: the next transaction on the
    same connection (as PgBouncer would hand it to another client) sees nothing."""
    uid, key = user
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SET ROLE memoriesdb_app")
        with conn.transaction():
            conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
            conn.execute("SELECT memoriesdb.remember('mine')")
            assert conn.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0] == 0


def test_no_login_can_take_the_ledgers_locks(database, user, settings, admin_conn):
    """Advisory lock keys are public: the ledger must not serialise on them. A worker login (no write
    rights at all) holding the keys v0.2.0 used must not stall a tenant's commit or the vindexing."""
    uid, key = user
    with psycopg.connect(settings.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(7379, 1), pg_advisory_lock(7379, 2)")
        with psycopg.connect(settings.app_dsn, autocommit=True, row_factory=dict_row) as app:
            # a regression fails here instead of hanging (a COMMIT's deferred triggers run without
            # statement_timeout: only lock_timeout bounds their wait)
            app.execute("SET statement_timeout = '5s'; SET lock_timeout = '5s'")
            with app.transaction():
                app.execute("SELECT memoriesdb.authenticate(%s)", (key,))
                a = app.execute("SELECT memoriesdb.remember('committed past a held key') AS id").fetchone()["id"]
                b = app.execute("SELECT memoriesdb.remember('and linked') AS id").fetchone()["id"]
                app.execute("SELECT memoriesdb.link(%s, %s, 'related_to')", (a, b))
        with psycopg.connect(settings.dsn, autocommit=True, row_factory=dict_row) as worker:
            worker.execute("SET statement_timeout = '5s'; SET lock_timeout = '5s'")
            run = worker.execute("SELECT * FROM memoriesdb.run_vindexing('test')").fetchone()
        assert run["refreshed"], "vindexing ran although a client held the old advisory key"
        for table in ("memoriesdb_internal.audit_seal_lock", "memoriesdb_internal.vindexing_lock"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                holder.execute(f"BEGIN; LOCK TABLE {table}; ROLLBACK")
            holder.execute("ROLLBACK")


def test_client_logins_are_time_bounded(database, settings, admin_conn):
    """The local logins get their role's bounds; an idle open transaction of an application login
    ends at idle_in_transaction_session_timeout (so it cannot hold locks or snapshots for ever)."""
    bounds = admin_conn.execute("SELECT memoriesdb.setting('login_bounds') AS b").fetchone()["b"]
    with psycopg.connect(settings.app_dsn, autocommit=True) as app:
        assert app.execute("SHOW statement_timeout").fetchone()[0] == bounds["memoriesdb_app"]["statement_timeout"]
        assert app.execute("SHOW lock_timeout").fetchone()[0] == bounds["memoriesdb_app"]["lock_timeout"]
    assert not admin_conn.execute("SELECT * FROM memoriesdb.unbounded_logins()").fetchall()
    login, idle = "t_bounded_idle", ["memoriesdb_app", "idle_in_transaction_session_timeout"]
    admin_conn.execute(f"DROP ROLE IF EXISTS {login}")
    admin_conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE memoriesdb_app")
    try:
        with admin_conn.transaction():  # a short idle bound for this login only
            admin_conn.execute(
                "UPDATE memoriesdb.config SET value = jsonb_set(value, %s, '\"1s\"') WHERE key = 'login_bounds'", (idle,)
            )
            admin_conn.execute("SELECT memoriesdb.configure_login(%s)", (login,))
            admin_conn.execute(
                "UPDATE memoriesdb.config SET value = jsonb_set(value, %s, %s) WHERE key = 'login_bounds'",
                (idle, psycopg.types.json.Jsonb(bounds["memoriesdb_app"]["idle_in_transaction_session_timeout"])),
            )
        with psycopg.connect(psycopg.conninfo.make_conninfo(settings.app_dsn, user=login)) as conn:
            conn.execute("SELECT 1")  # opens a transaction (not autocommit) and leaves it idle
            time.sleep(2.5)
            with pytest.raises((psycopg.errors.IdleInTransactionSessionTimeout, psycopg.OperationalError)):
                conn.execute("SELECT 1")
    finally:
        admin_conn.execute(f"DROP ROLE IF EXISTS {login}")
