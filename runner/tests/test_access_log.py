"""The access log across real sessions: a refusal stays on the record when the
caller's transaction rolls back or its session is killed; reads in read-only
transactions are logged too; a broken logger never lets a read through unlogged.
"""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from psycopg.rows import dict_row

from .conftest import remember


@contextlib.contextmanager
def refused(sqlstate: str):
    """The block must fail with this SQLSTATE (MemoriesDB's own codes have no psycopg class)."""
    with pytest.raises(psycopg.Error) as exc:
        yield
    assert exc.value.diag.sqlstate == sqlstate, exc.value


@contextlib.contextmanager
def app(settings, user_id=None):
    """An application server's session (a memoriesdb_backend login: it vouches for the user ids it
    sets); on the way out it waits for its access log entries (reads send them without waiting), as a
    client that needs them at once would."""
    conn = psycopg.connect(settings.backend_dsn, row_factory=dict_row)
    if user_id is not None:
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(user_id),))
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.rollback()
            conn.execute("SELECT memoriesdb.flush_access_log()")
            conn.close()


def history(settings, owner, memory_id) -> list[dict]:
    with app(settings, owner) as conn:
        return conn.execute(
            "SELECT outcome, function, actor, sqlstate FROM memoriesdb.access_history(%s)", (memory_id,)
        ).fetchall()


def entries(admin_conn, memory_id) -> list[dict]:
    return admin_conn.execute(
        "SELECT function, actor, sqlstate FROM memoriesdb.access_log WHERE memory_ids @> ARRAY[%s::uuid] ORDER BY id",
        (memory_id,),
    ).fetchall()


def test_refusal_survives_rollback_of_a_separate_session(settings, admin_conn, user, make_user):
    alice, bob = user[0], make_user()
    [m] = remember(admin_conn, alice, "alice's secret")
    with app(settings, bob) as conn:  # bob's own session and transaction
        conn.execute("SELECT memoriesdb.remember('bob wrote this in the same transaction')")
        with refused("MDB03"):
            conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
        conn.rollback()
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(bob),))
        assert conn.execute("SELECT count(*) AS n FROM memoriesdb.list_memories() WHERE owned").fetchone()["n"] == 0, (
            "the rollback took bob's write with it"
        )
        with refused("MDB03"):
            conn.execute("SELECT * FROM memoriesdb.access_history(%s)", (m,))
    seen = history(settings, alice, m)
    stranger = seen[0]["actor"]  # bob, whom alice does not deal with, by a pseudonym stable for her (never his id)
    assert stranger != bob
    assert seen == [  # newest first; asking for the history was an attempt too
        {"outcome": "refused", "function": "access_history", "actor": stranger, "sqlstate": "MDB03"},
        {"outcome": "refused", "function": "recall", "actor": stranger, "sqlstate": "MDB03"},
    ]


def test_refusal_survives_a_killed_session(settings, admin_conn, user, make_user):
    alice, bob = user[0], make_user()
    [m] = remember(admin_conn, alice, "still alice's")
    with admin_conn.transaction():  # bob takes alice's shares at once (else they wait as offers)
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(bob),))
        admin_conn.execute("SELECT memoriesdb.accept_sender(%s)", (alice,))
    with admin_conn.transaction():  # bob may read it, not transfer it
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
        admin_conn.execute("SELECT memoriesdb.share(%s, %s)", (m, bob))
    conn = psycopg.connect(settings.backend_dsn)
    conn.execute("SELECT set_config('app.current_user', %s, true)", (str(bob),))
    conn.execute("SELECT memoriesdb.remember('written before the attempt')")
    conn.execute("SAVEPOINT try")
    with refused("MDB04"):
        conn.execute("SELECT memoriesdb.transfer(%s, %s)", (m, bob))
    admin_conn.execute("SELECT pg_terminate_backend(%s, 5000)", (conn.info.backend_pid,))  # the client dies mid-transaction
    with pytest.raises(psycopg.OperationalError):
        conn.execute("ROLLBACK TO SAVEPOINT try")
    conn.close()
    assert entries(admin_conn, m)[-1] == {"function": "transfer", "actor": bob, "sqlstate": "MDB04"}


def test_reads_in_a_read_only_transaction_are_logged_autonomously(settings, admin_conn, user):
    alice = user[0]
    [m] = remember(admin_conn, alice, "read in a read-only transaction")
    with app(settings) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
        assert (
            conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,)).fetchone()["content"]
            == "read in a read-only transaction"
        )
        conn.rollback()
    assert entries(admin_conn, m) == [{"function": "recall", "actor": alice, "sqlstate": None}]


def test_reads_survive_rollback_unless_configured_transactional(settings, admin_conn, user):
    alice = user[0]
    [m] = remember(admin_conn, alice, "read, then rolled back")
    set_mode = "UPDATE memoriesdb.config SET value = %s::jsonb WHERE key = 'access_log_reads'"
    with app(settings, alice) as conn:
        conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SELECT pg_current_xact_id_if_assigned() AS x").fetchone()["x"] is None, (
            "the read left the caller's transaction without a transaction id (no WAL flush at its commit)"
        )
        conn.rollback()
    assert entries(admin_conn, m) == [{"function": "recall", "actor": alice, "sqlstate": None}], (
        "the default (autonomous): the entry survives the caller's rollback"
    )
    admin_conn.execute(set_mode, ('"transactional"',))
    try:
        with app(settings, alice) as conn:
            conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
            conn.rollback()
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
            conn.commit()
    finally:
        admin_conn.execute(set_mode, ('"autonomous"',))
    assert len(entries(admin_conn, m)) == 2, "transactional: the rolled-back read's entry went with it, the committed one stayed"


def test_a_broken_logger_refuses_unlogged_reads_and_says_a_refusal_went_unrecorded(settings, admin_conn, user, make_user):
    alice, bob = user[0], make_user()
    [m] = remember(admin_conn, alice, "logger down")
    logger = admin_conn.execute("SELECT logger_role FROM memoriesdb.access_log_sink").fetchone()["logger_role"]
    admin_conn.execute(f'ALTER ROLE "{logger}" NOLOGIN')
    try:
        with app(settings, bob) as conn:
            with refused("MDB23"):  # still refused, and never silently: the entry could not be written
                conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
        with app(settings) as conn:
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            with refused("MDB22"):
                conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
        with app(settings, alice) as conn:  # a read-write transaction too: no fallback into the caller's transaction
            with refused("MDB22"):
                conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
    finally:
        admin_conn.execute("SELECT memoriesdb.setup_access_logger()")  # renews LOGIN and the password
    with app(settings, bob) as conn:
        with refused("MDB03"):
            conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
        conn.rollback()
    assert entries(admin_conn, m)[-1] == {"function": "recall", "actor": bob, "sqlstate": "MDB03"}, "logging resumes"


def test_the_logger_login_can_only_append_authenticated_entries(settings, admin_conn, user):
    s = admin_conn.execute("SELECT logger_role, password FROM memoriesdb.access_log_sink").fetchone()
    dsn = psycopg.conninfo.make_conninfo(settings.app_dsn, user=s["logger_role"], password=s["password"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        for sql in (
            "SELECT count(*) FROM memoriesdb.memories",
            "SELECT count(*) FROM memoriesdb.access_log",
            "SELECT mac_key FROM memoriesdb.access_log_sink",
            "UPDATE memoriesdb.access_log SET actor = NULL",
            "SELECT memoriesdb.setting('access_log_reads')",
            "SELECT memoriesdb_internal.append_access_log(now(), NULL, 'x', '', 'recall', '{}', NULL, NULL)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        with refused("MDB24"):
            conn.execute(
                "SELECT memoriesdb_internal.append_access_entry(gen_random_uuid(), now() - interval '1 day', NULL, 'x', NULL, '',"
                " 'recall', '{}', NULL, NULL, sha256('a guess'))"
            )


def test_worker_metrics_count_refusals(settings, user):
    """The runner exports the last hour's refusals (memoriesdb_access_refusals_last_hour) for alerting."""
    import asyncio

    from memoriesdb_runner import db, metrics, service

    with app(settings, user[0]) as conn:
        with refused("MDB03"):
            conn.execute("SELECT * FROM memoriesdb.recall(gen_random_uuid())")

    async def one_round() -> None:
        pool = db.make_pool(settings.dsn, max_size=1)
        await pool.open(wait=True)
        stop = asyncio.Event()
        task = asyncio.create_task(service._watch_queue(pool, stop))
        await asyncio.sleep(0.5)
        stop.set()
        await task
        await pool.close()

    asyncio.run(one_round())
    assert metrics.REFUSALS_LAST_HOUR.labels("recall", "MDB03")._value.get() >= 1
