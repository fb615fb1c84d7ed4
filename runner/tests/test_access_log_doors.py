"""The access log fails closed and has no side doors, across real sessions: when the
logger cannot connect (its connection slots taken) no read goes unlogged and no refusal
goes unrecorded silently, in either mode; the logger's statements (which carry the
entries' MACs) are hidden even from another login as the logger; a storm of refusals is
counted exactly without a row each.
"""

from __future__ import annotations

import contextlib
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from .conftest import remember
from .test_access_log import app, entries, refused


@contextlib.contextmanager
def logger_slots_taken(admin_conn, settings):
    """The logger role's connections all in use: CONNECTION LIMIT 1, and one held here."""
    s = admin_conn.execute("SELECT logger_role, password FROM memoriesdb.access_log_sink").fetchone()
    admin_conn.execute(f'ALTER ROLE "{s["logger_role"]}" CONNECTION LIMIT 1')
    holder = psycopg.connect(psycopg.conninfo.make_conninfo(settings.app_dsn, user=s["logger_role"], password=s["password"]))
    try:
        yield
    finally:
        holder.close()
        admin_conn.execute(f'ALTER ROLE "{s["logger_role"]}" CONNECTION LIMIT -1')


@contextlib.contextmanager
def reads_mode(admin_conn, mode: str):
    set_mode = "UPDATE memoriesdb.config SET value = %s::jsonb WHERE key = 'access_log_reads'"
    admin_conn.execute(set_mode, (f'"{mode}"',))
    try:
        yield
    finally:
        admin_conn.execute(set_mode, ('"autonomous"',))


def test_no_logger_connection_no_unlogged_read_autonomous(settings, admin_conn, user, make_user):
    alice, bob = user[0], make_user()
    [m] = remember(admin_conn, alice, "the logger has no free connection")
    with logger_slots_taken(admin_conn, settings):
        with app(settings, alice) as conn:  # a new session: its logger connection cannot be opened
            with refused("MDB22"):
                conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,))
        with app(settings, bob) as conn:
            with refused("MDB23"):  # refused, and told that the refusal could not be recorded
                conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,))
    assert entries(admin_conn, m) == [], "nothing was read, nothing is on the log"


def test_no_logger_connection_no_unlogged_read_transactional(settings, admin_conn, user, make_user):
    alice, bob = user[0], make_user()
    [m] = remember(admin_conn, alice, "transactional mode, no logger connection")
    with reads_mode(admin_conn, "transactional"), logger_slots_taken(admin_conn, settings):
        with app(settings, alice) as conn:  # the read's entry goes in the caller's transaction: no logger needed
            assert conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,)).fetchone()["content"]
            conn.commit()
        with app(settings) as conn:  # but a read-only transaction can only log autonomously
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            with refused("MDB22"):
                conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,))
        with app(settings, bob) as conn:
            with refused("MDB23"):
                conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,))
    assert entries(admin_conn, m) == [{"function": "recall", "actor": alice, "sqlstate": None}]


def test_the_loggers_statements_are_hidden_from_a_login_as_the_logger(settings, admin_conn, user):
    """The logger's session runs EXECUTE memoriesdb_append(..., mac): shown in pg_stat_activity,
    another session of the logger role could copy a genuine entry's fields and MAC."""
    alice = user[0]
    [m] = remember(admin_conn, alice, "watched")
    with app(settings, alice) as conn:
        conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,))
        s = admin_conn.execute("SELECT logger_role, password FROM memoriesdb.access_log_sink").fetchone()
        spy_dsn = psycopg.conninfo.make_conninfo(settings.app_dsn, user=s["logger_role"], password=s["password"])
        with psycopg.connect(spy_dsn, autocommit=True) as spy:
            seen = spy.execute(
                "SELECT coalesce(query, '') FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid()"
            ).fetchall()
        assert seen, "the reading session's logger connection is there"
        assert not any("memoriesdb_append" in q for (q,) in seen), seen


def test_a_refusal_storm_is_counted_exactly_but_not_row_by_row(settings, admin_conn, user):
    bob = user[0]
    burst = "UPDATE memoriesdb.config SET value = %s::jsonb WHERE key = 'access_log_refusal_burst'"
    admin_conn.execute(burst, ('{"threshold": 20, "bucket_seconds": 3600}',))
    n = 300
    try:
        with psycopg.connect(settings.backend_dsn, row_factory=dict_row) as conn:  # a backend vouches for bob
            conn.execute("SET application_name = 'storm'")
            for _ in range(n):
                conn.execute("SELECT set_config('app.current_user', %s, true)", (str(bob),))
                with refused("MDB03"):
                    conn.execute("SELECT * FROM memoriesdb.recall(%s)", (uuid.uuid4(),))
                conn.rollback()
    finally:
        admin_conn.execute(burst, ('{"threshold": 100, "bucket_seconds": 60}',))
    rows = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.access_log WHERE actor = %s AND function = 'recall' AND sqlstate = 'MDB03'", (bob,)
    ).fetchone()["n"]
    b = admin_conn.execute(
        "SELECT count(*) AS buckets, sum(logged) AS logged, sum(aggregated) AS aggregated FROM memoriesdb.access_refusal_bursts"
        " WHERE actor = %s AND function = 'recall' AND sqlstate = 'MDB03'",
        (bob,),
    ).fetchone()
    assert rows == b["logged"] <= 20 * b["buckets"], "at most the threshold of rows per bucket"
    assert rows + b["aggregated"] == n, "every refusal counted: rows + aggregated"
    admin_conn.execute("SET ROLE memoriesdb_auditor")
    try:
        attempts = admin_conn.execute(
            "SELECT attempts FROM memoriesdb.access_refusals('1 hour') WHERE function = 'recall' AND sqlstate = 'MDB03'"
        ).fetchone()["attempts"]
    finally:
        admin_conn.execute("RESET ROLE")
    assert attempts >= n, "access_refusals() counts the aggregated ones too"


def test_forged_burst_counts_and_entries_are_not_counted(settings, admin_conn, user):
    """A row that did not come through append_access_entry (here: a superuser's direct write) carries no valid MAC:
    access_refusals() does not count it."""
    before = admin_conn.execute(
        "SELECT coalesce(sum(attempts), 0) AS n FROM memoriesdb.access_refusals('1 hour') WHERE function = 'forged_fn'"
    ).fetchone()["n"]
    with admin_conn.transaction():
        admin_conn.execute(
            "INSERT INTO memoriesdb.access_refusal_bursts (actor, db_role, function, sqlstate, bucket, logged, aggregated,"
            " first_at, last_at, mac) VALUES (NULL, 'x', 'forged_fn', 'MDB03', now(), 0, 100000, now(), now(), sha256('x'))"
        )
        admin_conn.execute(
            "INSERT INTO memoriesdb.access_log (entry_id, at, db_role, function, memory_ids, sqlstate, mac)"
            " VALUES (gen_random_uuid(), now(), 'x', 'forged_fn', '{}', 'MDB03', sha256('y'))"
        )
        after = admin_conn.execute(
            "SELECT coalesce(sum(attempts), 0) AS n FROM memoriesdb.access_refusals('1 hour') WHERE function = 'forged_fn'"
        ).fetchone()["n"]
        assert after == before == 0
        raise psycopg.Rollback()


@pytest.mark.parametrize("mode", ["autonomous", "transactional"])
def test_every_entry_of_a_session_verifies(settings, admin_conn, user, mode):
    alice = user[0]
    [m] = remember(admin_conn, alice, f"verified in {mode} mode")
    with reads_mode(admin_conn, mode):
        with app(settings, alice) as conn:
            conn.execute("SELECT content FROM memoriesdb.recall(%s)", (m,))
            conn.commit()
    bad = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.access_log AS l WHERE l.memory_ids @> ARRAY[%s::uuid] AND l.mac IS DISTINCT FROM"
        " memoriesdb_internal.access_log_mac(l.entry_id, l.at, l.actor, l.db_role, l.vouched_by, l.application_name,"
        " l.function, l.memory_ids, l.query_hash, l.sqlstate)",
        (m,),
    ).fetchone()["n"]
    assert bad == 0
    assert entries(admin_conn, m) == [{"function": "recall", "actor": alice, "sqlstate": None}]


def test_a_worker_logins_claims_are_its_reads(settings, admin_conn, user):
    """The runner's login (memoriesdb_worker) reads contents only by claiming jobs: one entry per claim, under its login."""
    [m] = remember(admin_conn, user[0], "to be embedded")
    admin_conn.execute("UPDATE memoriesdb.embedding_schedule SET dead_at = now() WHERE memory_id <> %s", (m,))
    with psycopg.connect(settings.dsn, row_factory=dict_row) as worker:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            worker.execute("SELECT content FROM memoriesdb.memories")
        worker.rollback()
        claim = "SELECT memory_id, lease_id, content FROM memoriesdb.claim_embedding_jobs(4, '1 minute', 'test')"
        claimed = worker.execute(claim).fetchall()
        worker.execute("SELECT memoriesdb.release_embedding_jobs(%s, %s)", ([m], [c["lease_id"] for c in claimed]))
        worker.commit()
    assert [c["memory_id"] for c in claimed] == [m]
    row = admin_conn.execute(
        "SELECT db_role, actor, memory_ids FROM memoriesdb.access_log WHERE function = 'claim_embedding_jobs'"
        " AND memory_ids @> ARRAY[%s::uuid]",
        (m,),
    ).fetchone()
    assert row == {"db_role": "memoriesdb_runner", "actor": None, "memory_ids": [m]}
