"""Offers (issue 12): nothing appears in a user's account or searches unasked.

- The runner's queries (share, offers, accept_offer) go through an offer: the grantee's search shows the
  shared memory only after it accepted it.
- An upgrade from @v0.3.0 keeps every grant and transfer made before it in effect (nothing becomes an offer),
  while a share made after it waits for the recipient.
"""

from __future__ import annotations

from hashlib import md5

import psycopg
import pytest
from psycopg.rows import dict_row

from memoriesdb_runner import db

from .conftest import DB, HOST, PORT
from .test_operations import dsn, fresh, sqitch

UPGRADED = f"{DB}_offers_upgrade"


def as_user(conn, user_id, query: str, params=None):
    """One statement in a transaction of its own, as the application role acting for user_id."""
    with conn.transaction():
        conn.execute("SET LOCAL ROLE memoriesdb_app")
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(user_id),))
        return conn.execute(query, params).fetchall()


def test_runner_share_waits_for_the_grantee(admin_conn, make_user):
    alice, bob = make_user(), make_user()
    [m] = [r["id"] for r in as_user(admin_conn, alice, "SELECT memoriesdb.remember('alice plants a lantern note') AS id")]
    [offer] = as_user(admin_conn, alice, db.q("share"), {"memory_id": m, "grantee": bob})
    assert as_user(admin_conn, bob, "SELECT id FROM memoriesdb.search_text('lantern')") == [], "an offer shows nothing"
    [pending] = as_user(admin_conn, bob, db.q("offers"))
    assert (pending["id"], pending["kind"], pending["sender"], pending["memory_id"], pending["level"]) == (
        offer["grant_id"],
        "share",
        alice,
        m,
        "read",
    )
    assert "content" not in pending
    assert as_user(admin_conn, bob, db.q("accept_offer"), {"offer_id": offer["grant_id"]}) == [{"memory_id": m}]
    assert [r["id"] for r in as_user(admin_conn, bob, "SELECT id FROM memoriesdb.search_text('lantern')")] == [m]


@pytest.fixture
def upgraded():
    yield UPGRADED
    with psycopg.connect(dsn("postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {UPGRADED} WITH (FORCE)")
        c.execute(f"DROP ROLE IF EXISTS memoriesdb_log_{md5(UPGRADED.encode()).hexdigest()[:12]}")  # its logger


def test_upgrade_from_v0_3_0_keeps_grants_and_transfers_in_effect(upgraded):
    fresh(upgraded)
    target = f"db:pg://postgres@{HOST}:{PORT}/{upgraded}"
    sqitch("deploy", target, "--to", "@v0.3.0")
    with psycopg.connect(dsn(upgraded), autocommit=True, row_factory=dict_row) as conn:
        new_user = "SELECT memoriesdb.create_user(%s) AS id"
        alice, bob, carol = (conn.execute(new_user, (h,)).fetchone()["id"] for h in ("of-alice", "of-bob", "of-carol"))
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            m1 = conn.execute("SELECT memoriesdb.remember('harbour lights shared before the upgrade') AS id").fetchone()["id"]
            m2 = conn.execute("SELECT memoriesdb.remember('harbour charts given before the upgrade') AS id").fetchone()["id"]
            conn.execute("SELECT memoriesdb.link(%s, %s, 'related_to')", (m1, m2))
            conn.execute("SELECT memoriesdb.share(%s, %s)", (m1, bob))
            conn.execute("SELECT memoriesdb.share(%s, %s, 'write')", (m1, carol))
            conn.execute("SELECT memoriesdb.transfer(%s, %s, 'before offers')", (m2, bob))
        conn.execute("SET ROLE memoriesdb_worker")
        conn.execute("SELECT * FROM memoriesdb.run_vindexing('offers-upgrade')")
        conn.execute("RESET ROLE")

    sqitch("deploy", target)  # the rest of the plan, over the data
    sqitch("verify", target)
    with psycopg.connect(dsn(upgraded), autocommit=True, row_factory=dict_row) as conn:
        found = {r["id"] for r in as_user(conn, bob, "SELECT id FROM memoriesdb.search_text('harbour')")}
        assert found == {m1, m2}, "bob still finds the memory shared with him and the one transferred to him"
        assert as_user(conn, bob, "SELECT owner_id FROM memoriesdb.recall(%s)", (m2,)) == [{"owner_id": bob}]
        assert m2 in {r["id"] for r in as_user(conn, bob, "SELECT id FROM memoriesdb.neighbors(%s)", (m1,))}
        assert as_user(conn, bob, "SELECT * FROM memoriesdb.offers()") == [], "nothing became an offer"
        assert as_user(conn, carol, "SELECT memoriesdb.revise(%s, 'carol still writes') AS r", (m1,)) == [{"r": 2}]
        # a share made after the upgrade waits for its recipient
        later = as_user(conn, bob, "SELECT memoriesdb.remember('bob offers this back') AS id")[0]["id"]
        as_user(conn, bob, "SELECT memoriesdb.share(%s, %s)", (later, carol))
        assert as_user(conn, carol, "SELECT id FROM memoriesdb.search_text('offers this back')") == []
        assert [r["memory_id"] for r in as_user(conn, carol, "SELECT memory_id FROM memoriesdb.offers()")] == [later]
