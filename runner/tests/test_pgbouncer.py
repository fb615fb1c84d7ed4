"""Through a real PgBouncer in transaction mode: tenants never mix.

Many concurrent clients (more than the server pool) each act for their own user
over thousands of transactions; interleaved, clients run transactions with no
context and clients try a session-level SET "app.current_user". The clients are
trusted backends (the memoriesdb_server login, a member of memoriesdb_backend):
their set_config is believed, and so would a session-level SET be, so for them
the PgBouncer reset is the barrier. Clients read through the API only: contents
(search, recall) carry the id of the memory's creator, the ids list_memories()
gives are checked against their owners afterwards (through the superuser
connection). Every memory a client may see is its user's or its one partner's
(the only user that ever shares or transfers to it; transfers stay in a pair),
so any other owner seen is a leak. An app login (memoriesdb_client) with a
session-level SET is nobody, even without the reset.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = os.environ.get("PGHOST", "127.0.0.1")
PORT0 = int(os.environ.get("MEMORIESDB_PYTEST_PGBOUNCER_PORT", "6435"))  # this file uses PORT0 .. PORT0+2
pytestmark = pytest.mark.skipif(not shutil.which("pgbouncer"), reason="pgbouncer not installed (scripts/setup.sh installs it)")


def start_pgbouncer(port: int, **overrides) -> None:
    env = {**os.environ}
    subprocess.run([str(ROOT / "scripts/pgbouncer.sh"), "start", str(port)], check=True, env=env, capture_output=True)
    if overrides:
        ini = ROOT / f".run/pgbouncer-{port}/pgbouncer.ini"
        text = ini.read_text()
        for k, v in overrides.items():
            text = "\n".join(f"{k} = {v}" if line.startswith(f"{k} =") else line for line in text.splitlines()) + "\n"
        ini.write_text(text)
        subprocess.run(
            ["psql", "-X", "-q", "-h", HOST, "-p", str(port), "-U", "postgres", "pgbouncer", "-c", "RELOAD"], check=True
        )


def stop_pgbouncer(port: int) -> None:
    subprocess.run([str(ROOT / "scripts/pgbouncer.sh"), "stop", str(port)], check=True)


@pytest.fixture(scope="module")
def bouncer(database):
    """The DSN of the app login (memoriesdb_client) through the shipped PgBouncer; backend_dsn() gives the backend's."""
    port = PORT0
    start_pgbouncer(port)
    yield f"postgresql://memoriesdb_client@{HOST}:{port}/{database.rsplit('/', 1)[1]}"
    stop_pgbouncer(port)


def backend_dsn(dsn: str) -> str:
    """The same PgBouncer and database, as the trusted backend login (memoriesdb_server)."""
    return dsn.replace("//memoriesdb_client@", "//memoriesdb_server@", 1)


def vec(rng) -> str:
    v = rng.standard_normal(384)
    return "[" + ",".join(f"{x:.5f}" for x in v / np.linalg.norm(v)) + "]"


def make_tenants(conn, n: int, rng) -> list:
    """n users (partners in pairs 2i, 2i+1, each accepting the other as a sender), each with 5 embedded memories tagged with
    its owner's id."""
    users = []
    for i in range(n):
        uid = conn.execute("SELECT memoriesdb.create_user(%s)", (f"mix{i}-{uuid.uuid4().hex[:6]}",)).fetchone()[0]
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            for j in range(5):
                mid = conn.execute("SELECT memoriesdb.remember(%s)", (f"owner:{uid} note {j}",)).fetchone()[0]
                conn.execute(
                    "UPDATE memoriesdb.memories SET embedding = %s::vector, embedding_model = 't' WHERE id = %s", (vec(rng), mid)
                )
        users.append(uid)
    for i, uid in enumerate(users):  # partners take each other's shares and transfers at once (else they wait as offers)
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            conn.execute("SELECT memoriesdb.accept_sender(%s)", (users[i ^ 1],))
    return users


@pytest.fixture(scope="module")
def tenants(database):
    """40 users in 20 partner pairs."""
    with psycopg.connect(database, autocommit=True) as conn:
        return make_tenants(conn, 40, np.random.default_rng(1))


def tags(rows) -> set[str]:
    return {r[0].split(" ", 1)[0].removeprefix("owner:") for r in rows}


def listed(conn) -> list:
    """The ids of the memories the context user may see (list_memories(): no owner, no content)."""
    return [r[0] for r in conn.execute("SELECT id FROM memoriesdb.list_memories()").fetchall()]


def owners_leaked(admin_dsn: str, seen: list, allowed) -> list[str]:
    """seen: (who, uid, memory ids listed for uid); the memories whose owner, read as the superuser, is not in
    allowed(uid) (or that do not exist). Transfers stay in a pair, so the owner now is in the pair iff it was then."""
    ids = list({m for _, _, ms in seen for m in ms})
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        owner = dict(conn.execute("SELECT id, owner_id FROM memoriesdb.memories WHERE id = ANY(%s)", (ids,)).fetchall())
    leaks = []
    for who, uid, ms in seen:
        bad = {str(owner.get(m)) for m in ms} - allowed(uid)
        if bad:
            leaks.append(f"{who} as {uid} listed memories of {bad}")
    return leaks


def test_tenants_never_mix_through_pgbouncer(bouncer, tenants, database):
    partner = {tenants[i]: tenants[i ^ 1] for i in range(len(tenants))}
    counts = {"transactions": 0, "no_context": 0, "session_set_attempts": 0, "searches": 0}
    with psycopg.connect(database, autocommit=True) as conn:
        started = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    leaks: list[str] = []
    listings: list = []  # (who, uid, ids list_memories() gave), checked against the owners at the end
    errors: list[BaseException] = []
    lock = threading.Lock()
    dsn = backend_dsn(bouncer)

    def allowed(uid) -> set[str]:
        return {str(uid), str(partner[uid])}

    def client(n: int) -> None:
        rnd = random.Random(n)
        rng = np.random.default_rng(n)
        uid = tenants[n % len(tenants)]
        local = {"transactions": 0, "no_context": 0, "session_set_attempts": 0, "searches": 0}
        try:
            with psycopg.connect(dsn, prepare_threshold=None) as conn:
                for i in range(60):
                    kind = rnd.random()
                    if kind < 0.1:  # a transaction that forgot its context (a session SET left behind would be its context)
                        with conn.transaction():
                            seen = listed(conn)
                            found = conn.execute("SELECT content FROM memoriesdb.search(%s::vector, 10)", (vec(rng),)).fetchall()
                        if seen or found:
                            leaks.append(f"client {n}: no-context transaction saw {len(seen) + len(found)} rows")
                        local["no_context"] += 1
                        local["searches"] += 1
                    elif kind < 0.15:  # the forbidden session-level SET, for another user
                        victim = tenants[(n + 7) % len(tenants)]
                        conn.execute(f"SET \"app.current_user\" = '{victim}'")
                        conn.commit()
                        local["session_set_attempts"] += 1
                    else:
                        with conn.transaction():
                            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                            op = rnd.choice(["remember", "recall", "search", "list", "share", "transfer"])
                            if op == "remember":
                                conn.execute("SELECT memoriesdb.remember(%s)", (f"owner:{uid} fresh {n}-{i}",))
                                seen = []
                            elif op == "recall":
                                ids = listed(conn)
                                listings.append((f"client {n} (recall)", uid, ids))
                                seen = []
                                for mid in ids[:3]:
                                    try:
                                        with conn.transaction():  # it may have been transferred away meanwhile
                                            seen.append(
                                                conn.execute("SELECT content FROM memoriesdb.recall(%s)", (mid,)).fetchone()
                                            )
                                    except psycopg.Error as exc:
                                        if exc.diag.sqlstate != "MDB03":
                                            raise
                                        local["lost_races"] = local.get("lost_races", 0) + 1
                            elif op == "search":
                                seen = conn.execute(
                                    "SELECT content FROM memoriesdb.search(%s::vector, 10)", (vec(rng),)
                                ).fetchall()
                                local["searches"] += 1
                            elif op == "list":
                                listings.append((f"client {n} (list)", uid, listed(conn)))
                                seen = []
                            else:
                                mine = conn.execute("SELECT id FROM memoriesdb.list_memories() WHERE owned LIMIT 1").fetchone()
                                try:
                                    with conn.transaction():  # another client of this user may transfer it first
                                        if mine and op == "share":
                                            conn.execute("SELECT memoriesdb.share(%s, %s)", (mine[0], partner[uid]))
                                        elif mine and rnd.random() < 0.3:
                                            conn.execute("SELECT memoriesdb.transfer(%s, %s)", (mine[0], partner[uid]))
                                except psycopg.Error as exc:
                                    if exc.diag.sqlstate not in ("MDB03", "MDB04"):
                                        raise
                                    local["lost_races"] = local.get("lost_races", 0) + 1
                                listings.append((f"client {n} ({op})", uid, listed(conn)))
                                seen = []
                            bad = tags(seen) - allowed(uid)
                            if bad:
                                leaks.append(f"client {n} ({op}) as {uid} saw memories of {bad}")
                        local["transactions"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        with lock:
            for k, v in local.items():
                counts[k] = counts.get(k, 0) + v

    threads = [threading.Thread(target=client, args=(n,)) for n in range(60)]  # 60 clients, 8 server connections
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    leaks += owners_leaked(database, listings, allowed)
    print(f"\npgbouncer isolation: {counts}, listings: {len(listings)}, leaks found: {len(leaks)}")
    assert not leaks, leaks[:5]
    assert sum(len(ms) for _, _, ms in listings) > 5000, "the listings saw memories (a check of nothing finds no leak)"
    assert counts["transactions"] > 2500 and counts["no_context"] > 200 and counts["session_set_attempts"] > 100

    # the access log under pooling: one entry per search, each naming the actor whose
    # transaction it was, with only memories of that actor's pair (transfers stay in a pair)
    pair = {str(u): {str(u), str(partner[u])} for u in tenants}
    with psycopg.connect(database, autocommit=True) as conn:
        for _ in range(50):  # reads' entries are committed by the logger a moment after the read
            entries = conn.execute(
                "SELECT l.actor, array_agg(m.owner_id) FILTER (WHERE m.id IS NOT NULL) "
                "FROM memoriesdb.access_log AS l LEFT JOIN LATERAL unnest(l.memory_ids) AS u(id) ON true "
                "LEFT JOIN memoriesdb.memories AS m ON m.id = u.id "
                "WHERE l.function = 'search' AND l.at >= %s GROUP BY l.id, l.actor",
                (started,),
            ).fetchall()
            if len(entries) >= counts["searches"]:
                break
            time.sleep(0.1)
    assert len(entries) == counts["searches"], "one access log entry per search"
    misattributed = [e for e in entries if e[0] is not None and not {str(o) for o in (e[1] or [])} <= pair[str(e[0])]]
    assert not misattributed, misattributed[:3]
    assert sum(1 for e in entries if e[0] is None) == counts["no_context"], "no-context searches are logged with no actor"


def test_without_the_reset_a_session_set_leaks(database, tenants):
    """Why the shipped pgbouncer.ini resets every server connection: without it a
    session-level SET stays on the server connection and the next client inherits it.
    A backend login (memoriesdb_server) is believed, so for it the reset is the barrier;
    an app login (memoriesdb_client) with a bare uuid is nobody, reset or not."""
    victim = tenants[0]
    with psycopg.connect(database, autocommit=True) as conn:
        with conn.transaction():  # what the victim may see (its own and its partner's shares)
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(victim),))
            victims = conn.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0]
        victims_memory = conn.execute("SELECT id FROM memoriesdb.memories WHERE owner_id = %s LIMIT 1", (victim,)).fetchone()[0]
    assert victims > 0
    db = database.rsplit("/", 1)[1]
    port = PORT0 + 1
    start_pgbouncer(port, server_reset_query_always=0, default_pool_size=1)
    try:
        backend = f"postgresql://memoriesdb_server@{HOST}:{port}/{db}"
        with psycopg.connect(backend, autocommit=True) as attacker, psycopg.connect(backend, autocommit=True) as bystander:
            attacker.execute(f"SET \"app.current_user\" = '{victim}'")
            leaked = bystander.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0]
        assert leaked == victims, "expected the unsafe configuration to leak (that is the point of this test)"
        # defence in depth: an app login's session SET stays on the server connection too, but a bare uuid is nobody
        app = f"postgresql://memoriesdb_client@{HOST}:{port}/{db}"
        with psycopg.connect(app, autocommit=True) as attacker, psycopg.connect(app, autocommit=True) as bystander:
            attacker.execute(f"SET \"app.current_user\" = '{victim}'")
            for conn in (bystander, attacker):
                assert conn.execute("SELECT current_setting('app.current_user', true)").fetchone()[0] == str(victim), (
                    "the SET is still on the one server connection (no reset): the scenario that leaks for a backend"
                )
                assert conn.execute("SELECT memoriesdb.current_user_id()").fetchone()[0] is None
                assert conn.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0] == 0
                with pytest.raises(psycopg.Error) as exc:
                    conn.execute("SELECT content FROM memoriesdb.recall(%s)", (victims_memory,))
                assert exc.value.diag.sqlstate == "MDB03", exc.value
                with pytest.raises(psycopg.Error) as exc:
                    conn.execute("SELECT memoriesdb.remember('written as the victim?')")
                assert exc.value.diag.sqlstate == "MDB01", exc.value
    finally:
        stop_pgbouncer(port)
    # the shipped configuration, same scenario
    port = PORT0 + 2
    start_pgbouncer(port, default_pool_size=1)
    try:
        backend = f"postgresql://memoriesdb_server@{HOST}:{port}/{db}"
        with psycopg.connect(backend, autocommit=True) as attacker, psycopg.connect(backend, autocommit=True) as bystander:
            attacker.execute(f"SET \"app.current_user\" = '{victim}'")
            assert bystander.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0] == 0
            assert bystander.execute("SELECT current_setting('app.current_user', true)").fetchone()[0] in (None, "")
    finally:
        stop_pgbouncer(port)


def test_status_shows_pool_utilisation(bouncer, settings):
    from click.testing import CliRunner

    from memoriesdb_runner.cli import main

    with psycopg.connect(bouncer) as conn:  # one pooled client, so the pool exists
        conn.execute("SELECT 1")
        env = {
            "MEMORIESDB_DSN": settings.dsn,
            "MEMORIESDB_LISTEN_DSN": settings.listen,
            "MEMORIESDB_PGBOUNCER_ADMIN_DSN": f"postgresql://postgres@{HOST}:{PORT0}/pgbouncer",
        }
        result = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    import json

    pools = json.loads(result.output)["pools"]
    assert any(p["user"] == "memoriesdb_client" for p in pools), pools
    unreachable = CliRunner().invoke(
        main, ["status"], env={**env, "MEMORIESDB_PGBOUNCER_ADMIN_DSN": "postgresql://postgres@127.0.0.1:1/pgbouncer"}
    )
    assert unreachable.exit_code == 0 and "admin console not reachable" in unreachable.output, unreachable.output
