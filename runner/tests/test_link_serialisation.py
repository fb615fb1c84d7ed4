"""link() serialises on a lock no client can take, and still never lets two concurrent
links close a cycle of an acyclic edge type (several real sessions, so pytest)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from .conftest import remember


def _session(database, user_id, isolation: str = "read committed"):
    conn = psycopg.connect(database, autocommit=True, row_factory=dict_row)
    # a regression must fail fast, not hang the suite
    conn.execute("SET lock_timeout = '5s'")
    conn.execute("SET statement_timeout = '20s'")
    conn.execute(f"BEGIN ISOLATION LEVEL {isolation}")
    conn.execute("SET LOCAL ROLE memoriesdb_app")
    conn.execute("SELECT set_config('app.current_user', %s, true)", (str(user_id),))
    return conn


def _wait_until_blocked(admin_conn, pid: int) -> None:
    """Until session pid waits for a lock (it must, or the test proves nothing)."""
    for _ in range(500):
        row = admin_conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row and row["wait_event_type"] == "Lock":
            return
        time.sleep(0.01)
    pytest.fail("the second link() never waited for the first")


@pytest.mark.parametrize("role", ["memoriesdb_worker", "memoriesdb_app", "memoriesdb_auditor"])
def test_a_held_advisory_lock_does_not_block_link(database, admin_conn, make_user, role):
    """Advisory lock keys are public: any login could take link()'s old key and hold it forever."""
    uid = make_user()
    a, b = remember(admin_conn, uid, "a", "b")
    with psycopg.connect(database, autocommit=True) as squatter:
        squatter.execute(f"SET ROLE {role}")
        squatter.execute("SELECT pg_advisory_lock(7379, hashtext('derived_from'))")
        squatter.execute("SELECT pg_advisory_lock(7379, hashtext('related_to'))")
        with _session(database, uid) as conn:
            conn.execute("SET LOCAL lock_timeout = '1s'")
            conn.execute("SELECT memoriesdb.link(%s, %s, 'derived_from')", (a, b))
            conn.execute("SELECT memoriesdb.link(%s, %s, 'related_to')", (a, b))
            conn.execute("COMMIT")
    n = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.memory_edges WHERE source_id = %s", (a,)).fetchone()["n"]
    assert n == 2


def _link_back_while_first_commits(admin_conn, first, second, b, a, edge_type: str) -> list[object]:
    """second links b -> a and waits on first's link; first commits; second's outcome: committed or a SQLSTATE."""
    outcome: list[object] = []

    def link_back() -> None:
        try:
            second.execute("SELECT memoriesdb.link(%s, %s, %s)", (b, a, edge_type))
            second.execute("COMMIT")
            outcome.append("committed")
        except psycopg.Error as exc:
            outcome.append(exc.sqlstate)

    t = threading.Thread(target=link_back)
    t.start()
    _wait_until_blocked(admin_conn, second.info.backend_pid)
    first.execute("COMMIT")
    t.join()
    return outcome


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read", "serializable"])
def test_two_concurrent_links_cannot_close_a_cycle(database, admin_conn, make_user, isolation):
    """a -> b and b -> a, each alone fine, together a cycle of derived_from: at most one commits."""
    uid = make_user()
    a, b = remember(admin_conn, uid, "a", "b")
    first = _session(database, uid, isolation)
    second = _session(database, uid, isolation)
    try:
        second.execute("SELECT 1")  # the second transaction's snapshot predates the first link
        first.execute("SELECT memoriesdb.link(%s, %s, 'derived_from')", (a, b))
        outcome = _link_back_while_first_commits(admin_conn, first, second, b, a, "derived_from")
    finally:
        first.close()
        second.close()
    # the cycle is refused (MDB08), or the second transaction must retry (40001)
    assert outcome and outcome[0] in ("MDB08", "40001"), outcome
    edges = admin_conn.execute(
        "SELECT source_id, target_id FROM memoriesdb.memory_edges WHERE edge_type = 'derived_from' AND source_id IN (%s, %s)",
        (a, b),
    ).fetchall()
    assert [(e["source_id"], e["target_id"]) for e in edges] == [(a, b)]


def test_two_concurrent_identical_undirected_links_make_one_edge(database, admin_conn, make_user):
    """related_to is undirected: a - b and b - a are the same edge; no unique index can see that."""
    uid = make_user()
    a, b = remember(admin_conn, uid, "a", "b")
    first = _session(database, uid)
    second = _session(database, uid)
    try:
        first.execute("SELECT memoriesdb.link(%s, %s, 'related_to')", (a, b))
        outcome = _link_back_while_first_commits(admin_conn, first, second, b, a, "related_to")
    finally:
        first.close()
        second.close()
    assert outcome == ["MDB09"], outcome
