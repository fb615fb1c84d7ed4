"""A streaming replica (a second cluster made with pg_basebackup): search on the
replica finds what was written on the primary after replay, and RLS holds there;
the replica's reads and refusals are in the primary's access log.

The test builds its own primary and replica clusters in a temporary directory
(so it needs no change to the machine's PostgreSQL), on ports 5441 and 5442.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path("/usr/lib/postgresql/15/bin")
PRIMARY, REPLICA = 5441, 5442
pytestmark = pytest.mark.skipif(not (BIN / "initdb").exists(), reason="PostgreSQL 15 server binaries not found")


def as_pg(*cmd: str, **kw) -> subprocess.CompletedProcess:
    """Run a server command as user postgres when we are root (PostgreSQL refuses root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def clusters():
    work = Path(tempfile.mkdtemp(prefix="mdb-replica-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    primary, replica = work / "primary", work / "replica"
    try:
        as_pg(str(BIN / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust")
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {PRIMARY}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{work}'\n"
                "wal_level = replica\nmax_wal_senders = 4\n"
            )
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        as_pg(str(BIN / "pg_ctl"), "-D", str(primary), "-l", str(work / "primary.log"), "-w", "start")
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(PRIMARY), "-U", "postgres", "memoriesdb"], check=True)
        subprocess.run(
            ["sqitch", "--quiet", "deploy", f"db:pg://postgres@127.0.0.1:{PRIMARY}/memoriesdb"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        as_pg(
            str(BIN / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(PRIMARY),
            "-U",
            "postgres",
            "-D",
            str(replica),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )
        with open(replica / "postgresql.conf", "a") as conf:
            conf.write(f"port = {REPLICA}\n")
        as_pg(str(BIN / "pg_ctl"), "-D", str(replica), "-l", str(work / "replica.log"), "-w", "start")
        yield
    finally:
        for d in (replica, primary):
            if (d / "postmaster.pid").exists():
                as_pg(str(BIN / "pg_ctl"), "-D", str(d), "-m", "immediate", "stop")
        shutil.rmtree(work, ignore_errors=True)


def test_search_on_the_replica_with_rls(clusters):
    primary = f"postgresql://postgres@127.0.0.1:{PRIMARY}/memoriesdb"
    replica = f"postgresql://postgres@127.0.0.1:{REPLICA}/memoriesdb"
    axis = "[" + ",".join("1" if i == 0 else "0" for i in range(384)) + "]"
    with psycopg.connect(primary, autocommit=True) as conn:
        alice = conn.execute("SELECT memoriesdb.create_user('replica-alice')").fetchone()[0]
        bob = conn.execute("SELECT memoriesdb.create_user('replica-bob')").fetchone()[0]
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            m = conn.execute("SELECT memoriesdb.remember('written on the primary')").fetchone()[0]
        conn.execute(
            "UPDATE memoriesdb.memories SET embedding = %s::vector, embedding_model = 't', embedded_at = now() WHERE id = %s",
            (axis, m),
        )
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with psycopg.connect(replica, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        for _ in range(100):
            if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                break
            time.sleep(0.1)
        conn.execute("SET ROLE memoriesdb_app")
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            rows = conn.execute("SELECT id, content FROM memoriesdb.search(%s::vector, 5)", (axis,)).fetchall()
            assert conn.execute("SELECT id, owned FROM memoriesdb.list_memories()").fetchall() == [(m, True)]
        assert rows == [(m, "written on the primary")], "alice finds her memory on the replica after replay"
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(bob),))
            assert conn.execute("SELECT count(*) FROM memoriesdb.search(%s::vector, 5)", (axis,)).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0] == 0
        with conn.transaction():
            assert conn.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0] == 0, "no context: nothing"
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(alice),))
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("SELECT memoriesdb.remember('writes go to the primary')")
        with conn.transaction():  # a refused read on the replica
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(bob),))
            with pytest.raises(psycopg.Error) as exc:
                conn.execute("SELECT * FROM memoriesdb.recall(%s)", (m,))
            assert exc.value.diag.sqlstate == "MDB03"
    # a standby cannot write: its reads and refusals are logged on the primary
    with psycopg.connect(primary, autocommit=True) as conn:
        log = conn.execute(
            "SELECT function, actor, sqlstate FROM memoriesdb.access_log WHERE memory_ids @> ARRAY[%s::uuid] ORDER BY id", (m,)
        ).fetchall()
    assert log == [("search", alice, None), ("recall", bob, "MDB03")], log


def test_tenants_never_mix_on_the_replica_through_pgbouncer(clusters):
    """The cross-tenant checks of test_pgbouncer, read-only, against the replica behind a PgBouncer: the clients are
    trusted backends (memoriesdb_server), reading through the API (search, list_memories())."""
    import random
    import threading

    import numpy as np

    from memoriesdb_runner import admin

    from .test_pgbouncer import listed, make_tenants, owners_leaked, start_pgbouncer, stop_pgbouncer, tags, vec

    primary = f"postgresql://postgres@127.0.0.1:{PRIMARY}/memoriesdb"
    rng = np.random.default_rng(3)
    with psycopg.connect(primary, autocommit=True) as conn:
        admin.ensure_local_logins(primary)  # memoriesdb_server: a memoriesdb_backend login
        users = make_tenants(conn, 20, rng)
        partner = {users[i]: users[i ^ 1] for i in range(len(users))}
        for uid in users[::2]:  # each even user shares one memory with its partner
            with conn.transaction():
                conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                mid = conn.execute("SELECT id FROM memoriesdb.memories WHERE owner_id = %s LIMIT 1", (uid,)).fetchone()[0]
                conn.execute("SELECT memoriesdb.share(%s, %s)", (mid, partner[uid]))
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{REPLICA}/memoriesdb", autocommit=True) as conn:
        for _ in range(100):
            if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                break
            time.sleep(0.1)

    port = 6438
    start_pgbouncer(port, **{"*": f"host=127.0.0.1 port={REPLICA}"})
    dsn = f"postgresql://memoriesdb_server@127.0.0.1:{port}/memoriesdb"
    leaks, listings, errors, counts = [], [], [], {"transactions": 0}
    lock = threading.Lock()

    def allowed(uid) -> set[str]:
        return {str(uid), str(partner[uid])}

    def client(n: int) -> None:
        rnd, crng = random.Random(n), np.random.default_rng(n)
        uid = users[n % len(users)]
        done = 0
        try:
            with psycopg.connect(dsn, prepare_threshold=None) as conn:
                for _ in range(60):
                    kind = rnd.random()
                    if kind < 0.1:
                        conn.execute(f"SET \"app.current_user\" = '{users[(n + 5) % len(users)]}'")
                        conn.commit()
                        continue
                    with conn.transaction():
                        if kind < 0.25:  # no context (a session SET left behind would be its context)
                            seen = listed(conn)
                            found = conn.execute("SELECT content FROM memoriesdb.search(%s::vector, 10)", (vec(crng),)).fetchall()
                            if seen or found:
                                leaks.append(f"client {n}: no-context transaction saw {len(seen) + len(found)} rows")
                        else:
                            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                            seen = conn.execute("SELECT content FROM memoriesdb.search(%s::vector, 10)", (vec(crng),)).fetchall()
                            listings.append((f"client {n}", uid, listed(conn)))
                            if tags(seen) - allowed(uid):
                                leaks.append(f"client {n} as {uid} saw {tags(seen) - allowed(uid)}")
                    done += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        with lock:
            counts["transactions"] += done

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(30)]  # 30 clients, 8 server connections
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop_pgbouncer(port)
    assert not errors, errors[:3]
    leaks += owners_leaked(primary, listings, allowed)
    print(f"\nreplica isolation: {counts}, listings: {len(listings)}, leaks found: {len(leaks)}")
    assert not leaks, leaks[:5]
    assert sum(len(ms) for _, _, ms in listings) > 3000, "the listings saw memories (a check of nothing finds no leak)"
    assert counts["transactions"] > 1200
