"""Red team of issue 14 (per-owner audit chains): attacks that need two sessions. Each test performs
the attack and asserts the defence (a chain another transaction holds is not waited for: the commit's
rows of it wait in audit_pending and are sealed afterwards); xfail(strict) marks a defence that is missing (see the red
team's report), so the test starts to pass, and must be unmarked, the day it is fixed."""

from __future__ import annotations

import time

import psycopg
import pytest

from .conftest import DB, HOST, PORT

APP_DSN = f"postgresql://memoriesdb_client@{HOST}:{PORT}/{DB}"  # an app login (memoriesdb_app, its login bounds)


def _key(admin_conn, uid) -> str:
    return admin_conn.execute("SELECT memoriesdb.create_api_key(%s) AS k", (uid,)).fetchone()["k"]


def _as(admin_conn, uid, sql: str, *args):
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        row = admin_conn.execute(sql, args).fetchone()
    return row


def _victim_commit_seconds(database_key: str, lock_timeout: str = "2s") -> float:
    """bob writes his own, unrelated memory on another app connection; how long his commit took
    (raises LockNotAvailable when it waited longer than lock_timeout)."""
    with psycopg.connect(APP_DSN, autocommit=True) as bob_conn:
        bob_conn.execute(f"SET lock_timeout = '{lock_timeout}'")
        started = time.monotonic()
        with bob_conn.transaction():
            bob_conn.execute("SELECT memoriesdb.authenticate(%s)", (database_key,))
            bob_conn.execute("SELECT memoriesdb.remember('bob''s own, nothing to do with alice')")
        return time.monotonic() - started


def _sealed_after_the_hold(admin_conn) -> None:
    """What waited while the chain was held is sealed afterwards, in order, and the history verifies."""
    waiting = "SELECT count(*) AS n FROM memoriesdb_internal.audit_pending"
    assert admin_conn.execute(waiting).fetchone()["n"] >= 1, "the victim's rows wait for their chain"
    assert admin_conn.execute("SELECT memoriesdb.audit_seal_pending() AS n").fetchone()["n"] >= 1
    assert admin_conn.execute(waiting).fetchone()["n"] == 0
    v = admin_conn.execute("SELECT * FROM memoriesdb.verify_audit_chain()").fetchone()
    assert v["ok"], v["problem"]


@pytest.mark.parametrize("how", ["write_grant", "transfer"])
def test_a_tenant_cannot_hold_another_tenants_chain(database, admin_conn, make_user, how):
    """alice (an app login with her API key) writes once into bob's chain (a revision of his memory he
    shared with write permission, or a transfer of her memory to him, who accepts her as a sender),
    fires the seal at once and keeps her transaction open: bob's commits of his own, unrelated
    memories wait for her. Measured on the app login's bounds: bob's write fails after his
    lock_timeout (10 s) for as long as alice keeps her transaction busy (pg_sleep() under
    statement_timeout, 30 s, again and again: idle_in_transaction_session_timeout never fires)."""
    alice, bob = make_user(), make_user()
    alice_key, bob_key = _key(admin_conn, alice), _key(admin_conn, bob)
    if how == "write_grant":
        _as(admin_conn, alice, "SELECT memoriesdb.accept_sender(%s)", bob)  # bob's share is a grant, not an offer
        target = _as(admin_conn, bob, "SELECT memoriesdb.remember('bob''s shared one') AS id")["id"]
        _as(admin_conn, bob, "SELECT memoriesdb.share(%s, %s, 'write', NULL)", target, alice)
        attack = ("SELECT memoriesdb.revise(%s, 'alice revises bob''s memory', NULL)", (target,))
    else:
        _as(admin_conn, bob, "SELECT memoriesdb.accept_sender(%s)", alice)
        gift = _as(admin_conn, alice, "SELECT memoriesdb.remember('a gift for bob') AS id")["id"]
        attack = ("SELECT memoriesdb.transfer(%s, %s, 'gift')", (gift, bob))
    head_locks = (
        "SELECT count(*) AS n FROM pg_locks WHERE pid = %s "
        "AND relation = 'memoriesdb_internal.audit_chain_heads'::regclass AND mode = 'RowShareLock'"
    )
    with psycopg.connect(APP_DSN) as holder:
        holder.execute("SET CONSTRAINTS ALL IMMEDIATE")  # any login may: the seal fires at the statement's end
        holder.execute("SELECT memoriesdb.authenticate(%s)", (alice_key,))
        holder.execute(*attack)
        # alice's still open transaction sealed bob's chain: it holds the chain heads' row locks
        pid = holder.info.backend_pid
        assert admin_conn.execute(head_locks, (pid,)).fetchone()["n"] > 0
        took = _victim_commit_seconds(bob_key)  # (before v0.5's waiting seals) LockNotAvailable after 2 s
        holder.rollback()
    assert took < 1, f"bob's commit waited {took:.1f} s for alice's open transaction"
    _sealed_after_the_hold(admin_conn)


def test_a_backend_cannot_hold_the_common_chain(database, admin_conn):
    """A backend login creates a user (a row of the common chain), fires the seal at once and keeps
    its transaction open: every other backend's create_user() (and every config change) waits."""
    backend_dsn = f"postgresql://memoriesdb_server@{HOST}:{PORT}/{DB}"
    with psycopg.connect(backend_dsn) as holder, psycopg.connect(backend_dsn, autocommit=True) as other:
        holder.execute("SET CONSTRAINTS ALL IMMEDIATE")
        holder.execute("SELECT memoriesdb.create_user(%s, NULL)", (f"rt{time.time_ns()}",))
        other.execute("SET lock_timeout = '2s'")
        started = time.monotonic()
        other.execute("SELECT memoriesdb.create_user(%s, NULL)", (f"rt{time.time_ns()}b",))  # LockNotAvailable after 2 s
        took = time.monotonic() - started
        holder.rollback()
    assert took < 1, f"another backend's create_user() waited {took:.1f} s"
    _sealed_after_the_hold(admin_conn)


@pytest.mark.parametrize("lift", ["idle_in_transaction_session_timeout = 0", "statement_timeout = 0", "lock_timeout = '1h'"])
def test_an_app_login_that_lifts_its_time_bounds_gets_no_context(database, admin_conn, make_user, lift):
    """The login bounds are role defaults (configure_login()), and PostgreSQL lets any session SET its
    own: the red team set idle_in_transaction_session_timeout and statement_timeout to 0 and held a
    transaction for as long as it liked. A setting cannot be locked; the context can be withheld:
    authenticate() refuses (MDB15, on the access log) a session whose bounds are off or above
    config login_bounds, so no API work runs unbounded; RESET and it works again. (What such a
    session can still hold after authenticating first: its own rows, and chains, which nobody waits
    for since v0.5: test_a_tenant_cannot_hold_another_tenants_chain; PgBouncer's
    idle_transaction_timeout bounds it from outside.)"""
    key = _key(admin_conn, make_user())
    with psycopg.connect(APP_DSN, autocommit=True) as conn:
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] != "0", "the login is bounded"
        conn.execute(f"SET {lift}")
        with pytest.raises(psycopg.Error) as refused, conn.transaction():
            conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        assert refused.value.sqlstate == "MDB15", refused.value
        assert lift.split(" =")[0] in refused.value.diag.message_detail
        conn.execute("RESET ALL")
        with conn.transaction():
            conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
            conn.execute("SELECT memoriesdb.remember('bounded again')")
    n = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.access_log WHERE function = 'authenticate' AND sqlstate = 'MDB15'"
    ).fetchone()["n"]
    assert n >= 1, "the refusal is on the access log"


def test_receipts_of_a_transferred_memory_name_only_the_callers_chain(database, admin_conn, make_user):
    """Fixed (audit_log.sql, audit_receipts()): the third owner of a memory got the seals of the first
    owner's chain as receipts: her user id (who_could_read() shows her as a pseudonym), her chain's
    length (how many transactions she wrote) and when."""
    ann, ben, cat = make_user(), make_user(), make_user()
    cat_key = _key(admin_conn, cat)
    _as(admin_conn, ben, "SELECT memoriesdb.accept_sender(%s)", ann)
    _as(admin_conn, cat, "SELECT memoriesdb.accept_sender(%s)", ben)
    m = _as(admin_conn, ann, "SELECT memoriesdb.remember('ann''s first') AS id")["id"]
    _as(admin_conn, ann, "SELECT memoriesdb.transfer(%s, %s, 'to ben')", m, ben)
    _as(admin_conn, ben, "SELECT memoriesdb.transfer(%s, %s, 'to cat')", m, cat)
    with psycopg.connect(APP_DSN, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT memoriesdb.authenticate(%s)", (cat_key,))
        chains = {r[0] for r in conn.execute("SELECT r->>'chain' FROM memoriesdb.audit_receipts(%s) AS r", (m,))}
        shown = {str(r[0]) for r in conn.execute("SELECT user_id FROM memoriesdb.who_could_read(%s, now())", (m,))}
    assert str(ann) not in shown, "who_could_read does not disclose ann to cat"
    assert chains == {str(cat)}, f"receipts name chains {chains - {str(cat)}} of former owners"
