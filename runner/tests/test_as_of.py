"""As of a time through real logins (issue 14, part 4): the backend login that vouched for the
write that gave each reader access is the one who_could_read() names; an API key's proof is
vouched for by nobody; each call is one access log entry under the caller's login; custody moves
with a transfer. (The full history — revisions, expiry, unshare, transfer — is db/tests/27-as-of.sql.)
"""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from psycopg.rows import dict_row


@contextlib.contextmanager
def refused(sqlstate: str):
    with pytest.raises(psycopg.Error) as exc:
        yield
    assert exc.value.diag.sqlstate == sqlstate, exc.value


@contextlib.contextmanager
def backend(settings, user_id):
    """One transaction of the application server (memoriesdb_server, a memoriesdb_backend login), vouching for user_id."""
    with psycopg.connect(settings.backend_dsn, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(user_id),))
        yield conn
        conn.commit()


@contextlib.contextmanager
def app(settings, api_key):
    """One transaction of an untrusted app login (memoriesdb_client), its user proven by the API key."""
    with psycopg.connect(settings.app_dsn, row_factory=dict_row) as conn:
        conn.execute("SELECT memoriesdb.authenticate(%s)", (api_key,))
        yield conn
        conn.commit()


def clock(admin_conn):
    return admin_conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]


def test_who_could_read_names_the_backend_that_vouched(settings, admin_conn, user, make_user):
    (alice, akey), bob, carol = user, make_user(), make_user()
    for recipient in (bob, carol):
        with backend(settings, recipient) as conn:
            conn.execute("SELECT memoriesdb.accept_sender(%s)", (alice,))
    with backend(settings, alice) as conn:  # created and shared with bob through the backend: it vouches
        m = conn.execute("SELECT memoriesdb.remember('written through the server') AS id").fetchone()["id"]
        conn.execute("SELECT memoriesdb.share(%s, %s, 'read')", (m, bob))
    with app(settings, akey) as conn:  # shared with carol and revised by alice's own key: nobody vouches
        conn.execute("SELECT memoriesdb.share(%s, %s, 'write')", (m, carol))
        conn.execute("SELECT memoriesdb.revise(%s, 'revised with her key')", (m,))
    after = clock(admin_conn)

    with app(settings, akey) as conn:
        readers = conn.execute(
            "SELECT user_id, level, given_by, vouched_by FROM memoriesdb.who_could_read(%s, %s) ORDER BY level", (m, after)
        ).fetchall()
        revision = conn.execute(
            "SELECT revision, content, revised_by FROM memoriesdb.recall_as_of(%s, %s)", (m, after)
        ).fetchone()
    assert readers == [
        {"user_id": alice, "level": "owner", "given_by": alice, "vouched_by": "memoriesdb_server"},
        {"user_id": bob, "level": "read", "given_by": alice, "vouched_by": "memoriesdb_server"},
        {"user_id": carol, "level": "write", "given_by": alice, "vouched_by": None},
    ]
    assert revision == {"revision": 2, "content": "revised with her key", "revised_by": alice}

    log = admin_conn.execute(
        "SELECT function, actor, db_role, vouched_by, sqlstate FROM memoriesdb.access_log"
        " WHERE memory_ids @> ARRAY[%s::uuid] AND function IN ('who_could_read', 'recall_as_of') ORDER BY id",
        (m,),
    ).fetchall()
    assert log == [
        {"function": "who_could_read", "actor": alice, "db_role": "memoriesdb_client", "vouched_by": None, "sqlstate": None},
        {"function": "recall_as_of", "actor": alice, "db_role": "memoriesdb_client", "vouched_by": None, "sqlstate": None},
    ], "one entry per call, under the caller's login"


def test_custody_moves_with_a_transfer(settings, admin_conn, user, make_user):
    (alice, akey), dave = user, make_user()
    with backend(settings, dave) as conn:
        conn.execute("SELECT memoriesdb.accept_sender(%s)", (alice,))
    with backend(settings, alice) as conn:
        m = conn.execute("SELECT memoriesdb.remember('changes hands') AS id").fetchone()["id"]
    before = clock(admin_conn)
    with backend(settings, alice) as conn:
        conn.execute("SELECT memoriesdb.transfer(%s, %s)", (m, dave))

    with backend(settings, dave) as conn:  # the new owner asks about a time before the transfer
        owner = conn.execute("SELECT user_id, level FROM memoriesdb.who_could_read(%s, %s)", (m, before)).fetchall()
    assert owner == [{"user_id": alice, "level": "owner"}]
    with app(settings, akey) as conn, refused("MDB03"):  # the former owner, even about her own time
        conn.execute("SELECT * FROM memoriesdb.who_could_read(%s, %s)", (m, before))
    refusal = admin_conn.execute(
        "SELECT function, actor, sqlstate FROM memoriesdb.access_log"
        " WHERE memory_ids @> ARRAY[%s::uuid] AND sqlstate IS NOT NULL",
        (m,),
    ).fetchall()
    assert refusal == [{"function": "who_could_read", "actor": alice, "sqlstate": "MDB03"}], (
        "the refusal is on the record although its transaction rolled back"
    )
