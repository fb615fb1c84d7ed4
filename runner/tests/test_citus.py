"""On a local Citus cluster (issue 17, docs/citus.md): PgBouncer in front of the coordinator, and a rebalance onto a
third worker while clients write and read.

Skipped unless MEMORIESDB_CITUS_DSN names a ledger deployed by scripts/citus.sh deploy (the superuser's DSN on the
coordinator); scripts/test.sh --citus sets it. Never touches the single node: the conftest's autouse fixture (which
deploys a ledger on 5432) is replaced here. The rebalance test adds worker3 to the database (scripts/citus.sh
add-worker), so it runs last; the database is dropped after it, and scripts/test_citus.sh stops worker3.
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

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .test_pgbouncer import start_pgbouncer, stop_pgbouncer

ROOT = Path(__file__).resolve().parents[2]
CITUS_DSN = os.environ.get("MEMORIESDB_CITUS_DSN", "")
HOST = os.environ.get("PGHOST", "127.0.0.1")
PGB_PORT = int(os.environ.get("MEMORIESDB_CITUS_PGBOUNCER_PORT", "6790"))
pytestmark = pytest.mark.skipif(not CITUS_DSN, reason="no Citus cluster (MEMORIESDB_CITUS_DSN; scripts/test.sh --citus)")

# what a client may meet during a shard move and retry (docs/citus.md, "Rebalancing"): a serialization failure, a
# deadlock (40001, 40P01), or its lock_timeout (55P03) while a move blocks writes to its shard; and while add-worker
# runs, 08006: between citus_add_node (which copies the ledger's roles to the node NOLOGIN, as on the coordinator)
# and their LOGIN there, a call that opens a connection to the new node as its role is refused. Anything else fails.
RETRYABLE = {"40001", "40P01", "55P03"}
RETRYABLE_WHILE_ADDING = {"08006"}
SEARCH = "SELECT id FROM memoriesdb.search(%s::vector, 5) ORDER BY similarity DESC"


@pytest.fixture(autouse=True)
def empty_queue():
    """Replaces the conftest's (it needs the single-node database)."""
    yield


def coordinator_port() -> int:
    return int(psycopg.conninfo.conninfo_to_dict(CITUS_DSN).get("port") or 9700)


def dbname() -> str:
    return psycopg.conninfo.conninfo_to_dict(CITUS_DSN)["dbname"]


def login_dsn(login: str, port: int | None = None) -> str:
    return f"postgresql://{login}@{HOST}:{port or coordinator_port()}/{dbname()}"


def axis(n: int) -> str:
    """A direction per memory: 1 on axis n, 0.01 elsewhere (as db/citus/tests/04-search.sql)."""
    return "[" + ",".join("1" if i == n else "0.01" for i in range(1, 385)) + "]"


def node_of(conn, uid) -> int:
    return conn.execute(
        "SELECT p.nodeport FROM pg_dist_shard_placement AS p "
        "WHERE p.shardid = get_shard_id_for_distribution_column('memoriesdb.memories', %s::uuid)",
        (str(uid),),
    ).fetchone()[0]


@pytest.fixture(scope="module")
def admin():
    with psycopg.connect(CITUS_DSN, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        # the app and worker logins the shipped userlist names (created on every node: role propagation is on)
        for login, role in (("memoriesdb_client", "memoriesdb_app"), ("memoriesdb_runner", "memoriesdb_worker")):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
                conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {role}")
            conn.execute("SELECT memoriesdb.configure_login(%s)", (login,))
        yield conn


def make_user(admin, name: str) -> tuple[uuid.UUID, str]:
    uid = admin.execute("SELECT memoriesdb.create_user(%s)", (f"{name}-{uuid.uuid4().hex[:8]}",)).fetchone()[0]
    return uid, admin.execute("SELECT memoriesdb.create_api_key(%s)", (uid,)).fetchone()[0]


def call(conn, key: str, sql: str, args=()) -> list:
    """One API call in its own transaction: authenticate(key), then sql. Returns its rows."""
    with conn.transaction():
        conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        return conn.execute(sql, args).fetchall()


def sqlstate_of(conn, key: str | None, sql: str, args=()) -> str | None:
    try:
        with conn.transaction():
            if key:
                conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
            conn.execute(sql, args).fetchall()
    except psycopg.Error as exc:
        return exc.diag.sqlstate
    return None


def embed_ready_jobs(vectors: dict) -> list[str]:
    """The runner's claim and completion through the coordinator (a memoriesdb_worker login): vectors[memory id]."""
    with psycopg.connect(login_dsn("memoriesdb_runner"), autocommit=True) as conn:
        with conn.transaction():
            claimed = conn.execute(
                "SELECT memory_id, lease_id FROM memoriesdb.claim_model_embedding_jobs(16, '1 minute', 'citus-pytest')"
            ).fetchall()
            claimed = [c for c in claimed if c[0] in vectors]
            return [
                r[0]
                for r in conn.execute(
                    "SELECT c.outcome FROM memoriesdb.complete_embedding_jobs("
                    "%s::uuid[], %s::uuid[], %s::vector[], 'default') AS c",
                    ([c[0] for c in claimed], [c[1] for c in claimed], [vectors[c[0]] for c in claimed]),
                ).fetchall()
            ]


@pytest.fixture
def bouncer(monkeypatch):
    """The shipped PgBouncer (transaction pooling) in front of the coordinator, one server connection per pool: every
    client of a login shares one server connection, one transaction after the other."""
    if not shutil.which("pgbouncer"):
        pytest.skip("pgbouncer not installed (scripts/setup.sh installs it)")
    monkeypatch.setenv("MEMORIESDB_PGBOUNCER_SERVER_PORT", str(coordinator_port()))
    start_pgbouncer(PGB_PORT, default_pool_size=1, reserve_pool_size=0)
    yield login_dsn("memoriesdb_client", PGB_PORT)
    stop_pgbouncer(PGB_PORT)


def test_two_tenants_through_pgbouncer_in_front_of_the_coordinator(admin, bouncer):
    admin.execute("UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day' WHERE run_after <= now()")
    alice, ka = make_user(admin, "pgb-alice")
    for _ in range(40):  # bob's shard on the other worker
        bob, kb = make_user(admin, "pgb-bob")
        if node_of(admin, bob) != node_of(admin, alice):
            break
    assert node_of(admin, bob) != node_of(admin, alice)

    with (
        psycopg.connect(bouncer, autocommit=True, prepare_threshold=None) as a,
        psycopg.connect(bouncer, autocommit=True, prepare_threshold=None) as b,
    ):
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]

        def same_server(conn):
            assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid, "one pooled server connection"

        a1 = call(a, ka, "SELECT memoriesdb.remember('alice: shared later')")[0][0]
        a2 = call(a, ka, "SELECT memoriesdb.remember('alice: private')")[0][0]
        # the next transaction, on the same server connection, has no context: the SET LOCALs of authenticate() ended
        # on the coordinator and on the workers' connections
        same_server(b)
        with b.transaction():
            assert b.execute("SELECT memoriesdb.current_user_id()").fetchone()[0] is None
            assert b.execute("SELECT count(*) FROM memoriesdb.list_memories()").fetchone()[0] == 0
        assert sqlstate_of(b, None, "SELECT content FROM memoriesdb.recall(%s)", (a1,)) == "MDB03"
        assert sqlstate_of(b, None, "SELECT memoriesdb.remember('written as alice?')") == "MDB01"
        same_server(a)

        call(b, kb, "SELECT memoriesdb.accept_sender(%s)", (alice,))
        b1 = call(b, kb, "SELECT memoriesdb.remember('bob: own')")[0][0]
        # bob cannot read alice's memories, alice cannot read bob's
        assert sqlstate_of(b, kb, "SELECT content FROM memoriesdb.recall(%s)", (a1,)) == "MDB03"
        assert sqlstate_of(a, ka, "SELECT content FROM memoriesdb.recall(%s)", (b1,)) == "MDB03"
        assert call(a, ka, "SELECT content FROM memoriesdb.recall(%s)", (a2,)) == [("alice: private",)]
        assert sorted(call(a, ka, "SELECT id, owned FROM memoriesdb.list_memories()")) == sorted([(a1, True), (a2, True)])
        assert call(b, kb, "SELECT id, owned FROM memoriesdb.list_memories()") == [(b1, True)]

        # a share across owners (and workers)
        call(a, ka, "SELECT memoriesdb.share(%s, %s)", (a1, bob))
        assert call(b, kb, "SELECT content FROM memoriesdb.recall(%s)", (a1,)) == [("alice: shared later",)]
        assert sorted(call(b, kb, "SELECT id, owned FROM memoriesdb.list_memories()")) == sorted([(a1, False), (b1, True)])
        assert sqlstate_of(b, kb, "SELECT content FROM memoriesdb.recall(%s)", (a2,)) == "MDB03"

        # search: embedded by the runner's claim and completion, then each finds what it may see
        outcomes = embed_ready_jobs({a1: axis(1), a2: axis(2), b1: axis(3)})
        assert outcomes == ["stored"] * 3, outcomes
        assert [r[0] for r in call(a, ka, SEARCH, (axis(2),))] == [a2, a1]
        assert [r[0] for r in call(b, kb, SEARCH, (axis(1),))] == [a1, b1]
        # and again: the transaction after a search has none of its context either
        assert b.execute("SELECT count(*) FROM memoriesdb.search(%s::vector, 5)", (axis(1),)).fetchone()[0] == 0
        same_server(a)
        same_server(b)
    # every call in the access log with its actor (the log is the coordinator's; written by its own connection)
    for _ in range(50):
        n = admin.execute(
            "SELECT count(*) FROM memoriesdb.access_log WHERE function = 'search' AND actor IN (%s, %s) AND sqlstate IS NULL",
            (alice, bob),
        ).fetchone()[0]
        if n == 2:
            break
        time.sleep(0.1)
    assert n == 2, "both searches are in the access log under their actors"


def test_the_worker_measures_the_shards_for_search_plans(admin):
    """`memoriesdb worker` runs citus_refresh_search_statistics() (as its worker login): every shard of memories
    measured, and search()'s plan then takes the rows of the caller's shard for the table (docs/citus.md, §12b)."""
    import asyncio

    from memoriesdb_runner.citus_stats import run_search_statistics
    from memoriesdb_runner.settings import Settings

    admin.execute("ANALYZE memoriesdb.memories")  # the shards' reltuples (their autovacuum would, later)
    admin.execute("DELETE FROM memoriesdb_internal.citus_shard_rows")
    settings = Settings(_env_file=None, dsn=login_dsn("memoriesdb_runner"), citus_statistics_interval_seconds=600)
    assert asyncio.run(run_search_statistics(settings, asyncio.Event(), until_empty=True)) == 1
    shards, rows = admin.execute("SELECT count(*), sum(row_estimate) FROM memoriesdb_internal.citus_shard_rows").fetchone()
    assert (
        shards
        == admin.execute("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'memoriesdb.memories'::regclass").fetchone()[0]
    )
    assert rows == admin.execute("SELECT count(*) FROM memoriesdb.memories").fetchone()[0]


def test_the_runner_vouches_as_a_backend(admin):
    """The runner's user-facing commands, from a backend login with a user id (db.become): on Citus they vouch()
    (a set_config() context would be nobody on the workers) and see the user's memories on its worker."""
    import asyncio

    from memoriesdb_runner import db

    if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'memoriesdb_server'").fetchone():
        admin.execute("CREATE ROLE memoriesdb_server LOGIN IN ROLE memoriesdb_backend")
    admin.execute("SELECT memoriesdb.configure_login('memoriesdb_server')")
    uid, key = make_user(admin, "vouched")
    with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
        mid = call(conn, key, "SELECT memoriesdb.remember('seen through the backend')")[0][0]

    async def listed():
        async with await db.connect(login_dsn("memoriesdb_server"), autocommit=False) as conn:
            await db.become(conn, user_id=uid)
            cur = await conn.execute("SELECT id FROM memoriesdb.list_memories()")
            ids = [r["id"] for r in await cur.fetchall()]
            await conn.rollback()
            return ids

    assert asyncio.run(listed()) == [mid]


def test_rebalance_onto_a_third_worker_while_writing(admin):
    """Writers remember() for several owners, a reader recalls their memories and searches, and a sealer seals the
    chains, while worker3 is added and the shards rebalanced onto it; nothing a writer was told is stored is missing,
    and the audit chains verify.

    The moves block writes (shard_transfer_mode 'block_writes'): Citus's default, a copy followed by logical
    replication, fails on the ledger as soon as a row is written during the move — the subscription's apply worker
    "cannot replicate into relation with row-level security enabled" (the ledger's tables FORCE row-level security;
    PostgreSQL applies a subscription as its owner, not as a superuser). Measured; docs/citus.md "Rebalancing"."""
    owners = [make_user(admin, f"rebal{i}") for i in range(4)]
    # the reader's own small tenant: three embedded memories it searches for (a tenant with thousands of rows takes
    # search's HNSW plan, not converted for Citus yet)
    admin.execute("UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day' WHERE run_after <= now()")
    seeker, ks = make_user(admin, "seeker")
    with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
        found = [call(conn, ks, "SELECT memoriesdb.remember(%s)", (f"seeker {i}",))[0][0] for i in range(3)]
    assert embed_ready_jobs({m: axis(i + 1) for i, m in enumerate(found)}) == ["stored"] * 3
    # (sealed first: audit_checkpoint() with groups waiting for their seal fails on Citus, docs/citus.md "Rebalancing")
    admin.execute("SELECT memoriesdb.audit_seal_pending()")
    cp = admin.execute("SELECT memoriesdb.audit_checkpoint()").fetchone()[0]
    stop = threading.Event()
    stored: dict = {uid: [] for uid, _ in owners}  # ids remember() returned (committed)
    times: list[float] = []  # commit times of the writes
    failures: dict[str, int] = {}
    reads = {"ok": 0}
    errors: list[BaseException] = []
    lock = threading.Lock()
    adding = threading.Event()

    def failed(exc: psycopg.Error) -> None:
        with lock:
            failures[exc.diag.sqlstate or "none"] = failures.get(exc.diag.sqlstate or "none", 0) + 1
            if exc.diag.sqlstate not in RETRYABLE and not (adding.is_set() and exc.diag.sqlstate in RETRYABLE_WHILE_ADDING):
                errors.append(exc)

    def writer(uid, key) -> None:
        try:
            with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        mid = call(conn, key, "SELECT memoriesdb.remember(%s)", (f"{uid} write {i}",))[0][0]
                    except psycopg.Error as exc:
                        failed(exc)
                        continue
                    with lock:
                        stored[uid].append(mid)
                        times.append(time.monotonic())
                    time.sleep(0.02)  # a steady client, not a load test: the moves get the cores too
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        rnd = random.Random(1)
        try:
            with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
                while not stop.is_set():
                    uid, key = rnd.choice(owners)
                    with lock:
                        mine = list(stored[uid][-50:])
                    n = rnd.randint(1, 3)
                    try:
                        if mine:
                            mid = rnd.choice(mine)
                            assert call(conn, key, "SELECT id FROM memoriesdb.recall(%s)", (mid,)) == [(mid,)]
                        hits = call(conn, ks, SEARCH, (axis(n),))
                        assert hits and hits[0][0] == found[n - 1] and sorted(h[0] for h in hits) == sorted(found), hits
                        reads["ok"] += 1
                    except psycopg.Error as exc:
                        failed(exc)
                    time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def sealer() -> None:  # the runner's worker seals the waiting chains (docs/citus.md §7)
        try:
            with psycopg.connect(CITUS_DSN, autocommit=True) as conn:
                while not stop.is_set():
                    try:
                        conn.execute("SELECT memoriesdb.audit_seal_pending(50)")  # small batches: short transactions
                        reads["seals"] = reads.get("seals", 0) + 1
                    except psycopg.Error as exc:
                        failed(exc)
                    stop.wait(1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def rate(t0: float, t1: float) -> float:
        with lock:
            return sum(1 for t in times if t0 <= t < t1) / (t1 - t0)

    threads = [threading.Thread(target=writer, args=o) for o in owners] + [
        threading.Thread(target=reader),
        threading.Thread(target=sealer),
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(5)
        t_add = time.monotonic()
        adding.set()
        subprocess.run(["bash", str(ROOT / "scripts/citus.sh"), "add-worker", dbname()], check=True, capture_output=True)
        adding.clear()
        t_start = time.monotonic()
        admin.execute("SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')")
        admin.execute("SELECT citus_rebalance_wait()")
        t_done = time.monotonic()
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    t_end = time.monotonic()
    moves = admin.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'done') FROM pg_dist_background_task "
        "WHERE job_id = (SELECT max(job_id) FROM pg_dist_background_job)"
    ).fetchone()
    print(
        f"\nrebalance: add-worker {t_start - t_add:.1f}s, {moves[0]} tasks ({moves[1]} done) in {t_done - t_start:.1f}s; "
        f"writes/s before {rate(t_add - 5, t_add):.1f}, during {rate(t_start, t_done):.1f}, after {rate(t_done, t_end):.1f}; "
        f"writes {sum(len(v) for v in stored.values())}, reads {reads['ok']}, seals {reads.get('seals')}, failures {failures}"
    )
    assert not errors, errors[:3]
    assert moves[0] > 0 and moves[0] == moves[1], moves
    assert reads["ok"] > 0 and all(len(v) > 0 for v in stored.values())

    # every write a writer was told of is there, and nothing else
    for uid, ids in stored.items():
        rows = admin.execute("SELECT id FROM memoriesdb.memories WHERE owner_id = %s", (uid,)).fetchall()
        assert sorted(r[0] for r in rows) == sorted(ids), f"owner {uid}: {len(rows)} stored, {len(ids)} acknowledged"
    # the shards are on the three workers, and the chains verify (sealed first: sealing is the coordinator's, §7)
    assert (
        admin.execute(
            "SELECT count(DISTINCT p.nodeport) FROM pg_dist_shard_placement AS p JOIN pg_dist_shard AS s USING (shardid) "
            "WHERE s.logicalrelid = 'memoriesdb.memories'::regclass"
        ).fetchone()[0]
        == 3
    )
    admin.execute("SELECT memoriesdb.audit_seal_pending()")
    assert admin.execute("SELECT ok, problem FROM memoriesdb.verify_audit_chain()").fetchone() == (True, None)
    assert admin.execute("SELECT ok, problem FROM memoriesdb.verify_audit_chain(%s)", (Jsonb(cp),)).fetchone() == (True, None)
