"""Identity over real connections, as non-superuser logins (issue 12): a context minted by
authenticate() cannot be forged, replayed in another session or carried into another
transaction; a memoriesdb_backend login vouches; failed authentications are counted durably
(the failing transaction rolls back) and throttled without letting anyone lock a key's holder out."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .conftest import DB, HOST, PORT


def _dsn(login: str) -> str:
    return f"postgresql://{login}@{HOST}:{PORT}/{DB}"


@pytest.fixture
def logins(admin_conn):
    """Fresh logins: two untrusted apps and a trusted backend (fresh names: failures are counted by login)."""
    tag = uuid.uuid4().hex[:8]
    names = {"app": f"mdb_id_app_{tag}", "app2": f"mdb_id_app2_{tag}", "backend": f"mdb_id_be_{tag}"}
    for kind, name in names.items():
        role = "memoriesdb_backend" if kind == "backend" else "memoriesdb_app"
        admin_conn.execute(f"CREATE ROLE {name} LOGIN IN ROLE {role}")
        admin_conn.execute("SELECT memoriesdb.configure_login(%s)", (name,))  # its time bounds (authenticate() checks them)
    yield names
    for name in names.values():
        admin_conn.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
def throttle(admin_conn):
    """Set auth_throttle for one test, restored afterwards."""
    old = admin_conn.execute("SELECT value FROM memoriesdb.config WHERE key = 'auth_throttle'").fetchone()["value"]

    def set_(**values):
        admin_conn.execute("UPDATE memoriesdb.config SET value = %s WHERE key = 'auth_throttle'", (Jsonb({**old, **values}),))

    yield set_
    admin_conn.execute("UPDATE memoriesdb.config SET value = %s WHERE key = 'auth_throttle'", (Jsonb(old),))


def _connect(login: str) -> psycopg.Connection:
    return psycopg.connect(_dsn(login), row_factory=dict_row)


def test_a_bare_uuid_from_an_app_login_is_nobody(logins, user, admin_conn):
    uid, _ = user
    with _connect(logins["app"]) as conn:
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        assert conn.execute("SELECT memoriesdb.current_user_id() AS u").fetchone()["u"] is None
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT memoriesdb.remember('planted')")
        assert e.value.diag.sqlstate == "MDB01"
        assert "unproven" in e.value.diag.message_detail


def test_no_key_is_minted_for_a_victim_without_its_context(logins, user):
    uid, _ = user
    with _connect(logins["app"]) as conn:
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT memoriesdb.create_api_key(%s)", (uid,))
        assert e.value.diag.sqlstate == "MDB01"


def test_a_proof_is_not_carried_into_the_next_transaction(logins, user):
    """Even written back session-wide (set_config(..., false)) after the commit, the minted
    context acts as nobody in the next transaction of the same session."""
    uid, key = user
    with _connect(logins["app"]) as conn:
        with conn.transaction():
            assert conn.execute("SELECT memoriesdb.authenticate(%s) AS u", (key,)).fetchone()["u"] == uid
            ctx = conn.execute(
                "SELECT current_setting('app.current_user') AS u, current_setting('app.current_user_proof') AS p"
            ).fetchone()
            conn.execute("SELECT memoriesdb.remember('proven')")
        # The attack, on purpose: a session-level copy of a genuine context (what would leak to the next
        # client under transaction pooling without PgBouncer's reset). Direct connection, never pooled;
        # the assertions below show it acts as nobody in every later transaction.
        conn.execute(
            "SELECT set_config('app.current_user', %s, false), set_config('app.current_user_proof', %s, false)",
            (ctx["u"], ctx["p"]),
        )
        conn.commit()
        for _ in range(2):  # the session-level values stay, and stay nobody, in every later transaction
            with conn.transaction():
                assert conn.execute("SELECT current_setting('app.current_user_proof') AS p").fetchone()["p"] == ctx["p"]
                assert conn.execute("SELECT memoriesdb.current_user_id() AS u").fetchone()["u"] is None
                assert conn.execute("SELECT count(*) AS n FROM memoriesdb.list_memories()").fetchone()["n"] == 0
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT memoriesdb.remember('replayed')")
        assert e.value.diag.sqlstate == "MDB01"


def test_a_proof_is_not_replayed_in_another_session(logins, user):
    uid, key = user
    with _connect(logins["app"]) as victim, _connect(logins["app2"]) as thief, _connect(logins["app"]) as same_login:
        victim.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        ctx = victim.execute(
            "SELECT current_setting('app.current_user') AS u, current_setting('app.current_user_proof') AS p"
        ).fetchone()
        for other in (thief, same_login):  # another login, or the same login in another session
            other.execute(
                "SELECT set_config('app.current_user', %s, true), set_config('app.current_user_proof', %s, true)",
                (ctx["u"], ctx["p"]),
            )
            assert other.execute("SELECT memoriesdb.current_user_id() AS u").fetchone()["u"] is None
            with pytest.raises(psycopg.Error) as e:
                other.execute("SELECT memoriesdb.remember('replayed')")
            assert e.value.diag.sqlstate == "MDB01"
            other.rollback()
        assert victim.execute("SELECT memoriesdb.current_user_id() AS u").fetchone()["u"] == uid
        victim.rollback()


def test_a_backend_vouches_and_the_audit_log_says_who(logins, admin_conn):
    with _connect(logins["backend"]) as be:
        uid = be.execute("SELECT memoriesdb.create_user(%s) AS id", (f"be{uuid.uuid4().hex[:10]}",)).fetchone()["id"]
        be.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        key = be.execute("SELECT memoriesdb.create_api_key(%s) AS k", (uid,)).fetchone()["k"]
        mid = be.execute("SELECT memoriesdb.remember('vouched') AS id").fetchone()["id"]
        be.commit()
    rows = admin_conn.execute(
        "SELECT login, vouched_by, created_by FROM memoriesdb.audit_log WHERE row_id = %s", (mid,)
    ).fetchall()
    assert rows == [{"login": logins["backend"], "vouched_by": logins["backend"], "created_by": uid}]
    with _connect(logins["app"]) as app:  # the key the backend provisioned works for the untrusted client
        assert app.execute("SELECT memoriesdb.authenticate(%s) AS u", (key,)).fetchone()["u"] == uid
        mid2 = app.execute("SELECT memoriesdb.remember('proven') AS id").fetchone()["id"]
        app.commit()
    row = admin_conn.execute("SELECT login, vouched_by FROM memoriesdb.audit_log WHERE row_id = %s", (mid2,)).fetchone()
    assert row == {"login": logins["app"], "vouched_by": None}
    with _connect(logins["app"]) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT memoriesdb.create_user('mallory')")


def _authenticate(conn, key) -> str | None:
    """SQLSTATE of one authenticate() in its own transaction, rolled back on failure (None: it worked)."""
    try:
        with conn.transaction():
            conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
    except psycopg.Error as e:
        return e.diag.sqlstate
    return None


def test_failures_are_counted_through_rollbacks_and_throttled_per_login(logins, user, throttle):
    _, key = user
    throttle(window_seconds=300, max_failures_per_login=3, max_failures_per_key_prefix=1000)
    with _connect(logins["app"]) as conn:
        conn.autocommit = True
        assert [_authenticate(conn, f"mdb_wrong{i}") for i in range(3)] == ["MDB10"] * 3
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))  # the right key, unchecked
        assert e.value.diag.sqlstate == "MDB14"
        assert "failed 3 times" in e.value.diag.message_detail and "retry after" in e.value.diag.message_hint
        # refusals while throttled do not count, so waiting out the window is enough
        assert _authenticate(conn, "mdb_wrong") == "MDB14"
    with _connect(logins["app2"]) as other:  # another login is not throttled by this one's failures
        other.autocommit = True
        assert _authenticate(other, key) is None


def test_a_key_prefix_throttle_cannot_lock_the_holder_out(logins, user, throttle):
    """Failing on a victim's key prefix from several logins throttles those logins on that prefix,
    never a login that has not failed on it: the holder of the key still gets in."""
    _, key = user
    throttle(window_seconds=300, max_failures_per_login=1000, max_failures_per_key_prefix=3)
    guess = key[:12] + "0" * (len(key) - 12)
    with _connect(logins["app"]) as a, _connect(logins["app2"]) as b:
        a.autocommit = b.autocommit = True
        assert [_authenticate(a, guess), _authenticate(b, guess), _authenticate(a, guess)] == ["MDB10"] * 3
        assert _authenticate(a, guess) == "MDB14"
        assert _authenticate(b, key) == "MDB14", "a login that failed on the prefix is refused, right key or not"
        assert _authenticate(a, "mdb_other_prefix") == "MDB10", "other prefixes are not throttled"
    with _connect(logins["backend"]) as holder:
        holder.autocommit = True
        assert _authenticate(holder, key) is None


def test_no_key_is_answered_when_a_failure_could_not_be_recorded(logins, user, admin_conn):
    """The logger's connection slots taken: a session that cannot open its logger connection gets MDB23 for every
    key, right or wrong, before either is checked (a wrong key's unrecorded MDB23 beside a right key's context
    answered every guess, uncounted: red team, 2026-12-01). A session whose connection is open goes on, its
    failures recorded; once the slots are free, the fresh login gets in."""
    _, key = user
    logger = admin_conn.execute("SELECT logger_role FROM memoriesdb.access_log_sink").fetchone()["logger_role"]
    with _connect(logins["app2"]) as open_:
        open_.autocommit = True
        assert _authenticate(open_, key) is None  # its first authenticate() opens its logger connection
        # the logger's slots taken: no connection beyond those open now (app2's among them)
        held = admin_conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = %s", (logger,)).fetchone()["n"]
        admin_conn.execute(f'ALTER ROLE "{logger}" CONNECTION LIMIT {held}')
        try:
            with _connect(logins["app"]) as fresh:
                fresh.autocommit = True
                assert [_authenticate(fresh, "mdb_wrong_guess"), _authenticate(fresh, key)] == ["MDB23", "MDB23"]
            assert _authenticate(open_, key) is None
            assert _authenticate(open_, "mdb_wrong_guess") == "MDB10"
        finally:
            admin_conn.execute(f'ALTER ROLE "{logger}" CONNECTION LIMIT -1')
    failures = "SELECT count(*) AS n FROM memoriesdb.access_log WHERE db_role = %s AND sqlstate = 'MDB10'"
    assert admin_conn.execute(failures, (logins["app"],)).fetchone()["n"] == 0, "nothing was checked, nothing recorded"
    assert admin_conn.execute(failures, (logins["app2"],)).fetchone()["n"] == 1
    with _connect(logins["app"]) as fresh:
        fresh.autocommit = True
        assert _authenticate(fresh, key) is None


@pytest.mark.parametrize("level", [psycopg.IsolationLevel.REPEATABLE_READ, psycopg.IsolationLevel.SERIALIZABLE])
def test_a_repeatable_read_transaction_checks_one_key(logins, user, throttle, level):
    """Such a transaction reads the access log in its first snapshot, blind to the failures recorded during it:
    each guess in a savepoint of its own got unlimited guesses (red team, 2026-12-01: 200 in 2.5 s). Now one key
    check per transaction, noted in the logger's session (no savepoint's rollback undoes it); the next
    transaction is counted as ever. A single authenticate() per transaction works as before."""
    _, key = user
    throttle(window_seconds=300, max_failures_per_login=3, max_failures_per_key_prefix=1000)
    with _connect(logins["app"]) as conn:
        conn.isolation_level = level
        with conn.transaction():
            codes = [_authenticate(conn, f"mdb_wrong{i}") for i in range(4)] + [_authenticate(conn, key)]
        assert codes == ["MDB10"] + ["MDB14"] * 4, codes
        with conn.transaction():  # a new transaction: its snapshot shows the failure; the right key is in
            assert _authenticate(conn, key) is None
            assert conn.execute("SELECT memoriesdb.current_user_id() AS u").fetchone()["u"] == user[0]
    with _connect(logins["app2"]) as conn:  # the same for a right key first: then nothing more
        conn.isolation_level = level
        with conn.transaction():
            assert [_authenticate(conn, key), _authenticate(conn, key)] == [None, "MDB14"]
