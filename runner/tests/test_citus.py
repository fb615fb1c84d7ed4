"""On a local Citus cluster (issue 17, docs/citus.md): PgBouncer in front of the coordinator, a single-node ledger
migrated to the cluster (scripts/citus.sh migrate), and a rebalance onto a third worker while clients write and read.

Skipped unless MEMORIESDB_CITUS_DSN names a ledger deployed by scripts/citus.sh deploy (the superuser's DSN on the
coordinator); scripts/test.sh --citus sets it. Never touches the single node: the conftest's autouse fixture (which
deploys a ledger on 5432) is replaced here. The rebalance test adds worker3 to the database (scripts/citus.sh
add-worker), so it runs last; the database is dropped after it, and scripts/test_citus.sh stops worker3. The
migration test deploys its own ledger on the single node (<database>_migsrc on PGPORT, 5432) with two logins
(<database>_app, <database>_runner), and migrates it to <database>_migrated on the cluster (CITUS_PORT from the DSN's
port, CITUS_DIR as exported); all of them are dropped after it.
"""

from __future__ import annotations

import hashlib
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
# deadlock (40001, 40P01), or its lock_timeout (55P03) while a move blocks writes to its shard. Anything else fails:
# also while add-worker runs (it used to make the ledger's roles NOLOGIN on the new node for a moment: 08006, or
# XX000 "failure on connection marked as essential"; scripts/citus.sh add-worker creates them LOGIN first now).
RETRYABLE = {"40001", "40P01", "55P03"}
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


def embed_ready_jobs(vectors: dict, dsn: str | None = None) -> list[str]:
    """The runner's claim and completion through the coordinator (a memoriesdb_worker login; or dsn): vectors[memory id]."""
    with psycopg.connect(dsn or login_dsn("memoriesdb_runner"), autocommit=True) as conn:
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


def test_the_runner_embeds_and_each_tenant_searches_exactly_what_it_may_see(admin):
    """The runner's embedding worker (run_embed_workers: claims, a provider speaking Ollama's API, completions) through
    the coordinator, then search through the runner (`memoriesdb search`: the query embedded by the provider and cached
    per user) as three tenants, two on different workers: each gets exactly the k nearest of the memories it may see by
    an exact cosine over the stored vectors (own, shared with it, transferred to it; never another tenant's), before
    and after a share and a transfer across workers; every search in the owner's access history with the reader; the
    chains sealed and verified after."""
    import asyncio

    import numpy as np

    from memoriesdb_runner.search import search_text
    from memoriesdb_runner.service import run_embed_workers
    from memoriesdb_runner.settings import Settings

    from .fake_ollama import FakeOllama, vector_for

    admin.execute("UPDATE memoriesdb.embedding_schedule SET run_after = now() + interval '1 day' WHERE run_after <= now()")
    alice, ka = make_user(admin, "rr-alice")
    for _ in range(40):  # bob's shard on the other worker
        bob, kb = make_user(admin, "rr-bob")
        if node_of(admin, bob) != node_of(admin, alice):
            break
    assert node_of(admin, bob) != node_of(admin, alice)
    carol, kc = make_user(admin, "rr-carol")
    rng = random.Random(17)
    words = "amber basalt cobalt dune ember fjord garnet harbor iris jade kelp lagoon marble nectar onyx".split()
    texts = {}  # memory id -> text
    with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
        call(conn, kb, "SELECT memoriesdb.accept_sender(%s)", (alice,))
        call(conn, kc, "SELECT memoriesdb.accept_sender(%s)", (alice,))
        owned = {}
        for name, key in (("alice", ka), ("bob", kb), ("carol", kc)):
            owned[name] = []
            for i in range(12):
                text = f"{name} {i} " + " ".join(rng.sample(words, 5))
                mid = call(conn, key, "SELECT memoriesdb.remember(%s)", (text,))[0][0]
                texts[mid] = text
                owned[name].append(mid)

    fake = FakeOllama()
    try:
        settings = Settings(
            _env_file=None,
            dsn=login_dsn("memoriesdb_runner"),
            listen_dsn=None,
            listen_port=coordinator_port(),
            app_dsn=login_dsn("memoriesdb_client"),
            provider="ollama",
            ollama_url=fake.url,
            batch_size=8,
            lease_seconds=30,
            poll_seconds=0.2,
            max_retries=3,
        )
        embedded = asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False))
        assert embedded >= len(texts)
        stored = dict(
            admin.execute(
                "SELECT id, embedding::text FROM memoriesdb.memories WHERE id = ANY(%s::uuid[]) AND embedded_hash = content_hash",
                (list(texts),),
            ).fetchall()
        )
        assert set(stored) == set(texts), "every memory embedded and fresh, on both workers"
        for mid, text in texts.items():
            expected = np.array(vector_for(text, 384))
            assert np.allclose(np.array(eval(stored[mid])), expected / np.linalg.norm(expected), atol=1e-6)

        def unit(v):
            v = np.array(v)
            return v / np.linalg.norm(v)

        def exact(query: str, visible: list, k: int) -> list:
            q = unit(vector_for(query, 384))
            return sorted(visible, key=lambda m: -float(q @ unit(vector_for(texts[m], 384))))[:k]

        def searched(key: str, query: str, k: int) -> list:
            return [r["id"] for r in asyncio.run(search_text(settings, query, key, None, k=k))]

        queries = [" ".join(rng.sample(words, 3)) for _ in range(4)]

        def check(visible: dict) -> None:
            for name, key in (("alice", ka), ("bob", kb), ("carol", kc)):
                for q in queries:
                    got = searched(key, q, 10)
                    assert got == exact(q, visible[name], 10), (name, q)
                    assert set(got) <= set(visible[name]), "nothing another tenant may not show it"

        check({n: list(ids) for n, ids in owned.items()})
        # alice shares one with carol (accepted sender: no offer) and transfers one to bob (on the other worker)
        shared, moved = owned["alice"][0], owned["alice"][1]
        with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
            call(conn, ka, "SELECT memoriesdb.share(%s, %s)", (shared, carol))
            call(conn, ka, "SELECT memoriesdb.transfer(%s, %s, 'yours')", (moved, bob))
        check(
            {
                "alice": [m for m in owned["alice"] if m != moved],
                "bob": owned["bob"] + [moved],
                "carol": owned["carol"] + [shared],
            }
        )
        # the access log: alice sees carol's searches that returned her shared memory, under carol's id
        with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
            history = call(conn, ka, "SELECT actor, function, outcome FROM memoriesdb.access_history(%s)", (shared,))
        assert any(r == (carol, "search", "read") for r in history), history
    finally:
        fake.close()
    admin.execute("SELECT memoriesdb.audit_seal_pending()")
    assert admin.execute("SELECT ok, problem FROM memoriesdb.verify_audit_chain()").fetchone() == (True, None)


def test_memoriesdb_deploy_citus_distributes_a_ledger(admin):
    """`memoriesdb deploy --citus` over the coordinator's admin DSN (a database on every node with citus, the workers
    registered: scripts/citus.sh createdb): sqitch deploy, db/citus/distribute.sql, the workers' logins and guards, as
    scripts/citus.sh deploy does; then a client's calls work, a second run does nothing, and a database without citus is
    refused with what to do."""
    from click.testing import CliRunner

    from memoriesdb_runner.cli import main

    other = f"{dbname()}_cli"
    assert citus_sh("createdb", other).returncode == 0
    try:
        dsn = f"postgresql://postgres@{HOST}:{coordinator_port()}/{other}"
        first = CliRunner().invoke(main, ["deploy", "--citus"], env={"MEMORIESDB_ADMIN_DSN": dsn})
        assert first.exit_code == 0, first.output
        assert "distributed by owner over 2 workers" in first.output
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SET client_min_messages = warning")
            assert (
                c.execute(
                    "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h' AND logicalrelid IN "
                    "('memoriesdb.memories'::regclass, 'memoriesdb.audit_log'::regclass, 'memoriesdb.memory_grants'::regclass)"
                ).fetchone()[0]
                == 3
            )
            assert c.execute("SELECT count(*) FROM memoriesdb_internal.citus_worker_access()").fetchone()[0] == 0
            c.execute("SELECT memoriesdb.configure_login('memoriesdb_client')")
            uid = c.execute("SELECT memoriesdb.create_user('cli-deployed')").fetchone()[0]
            key = c.execute("SELECT memoriesdb.create_api_key(%s)", (uid,)).fetchone()[0]
        with psycopg.connect(f"postgresql://memoriesdb_client@{HOST}:{coordinator_port()}/{other}", autocommit=True) as conn:
            mid = call(conn, key, "SELECT memoriesdb.remember('deployed by the runner')")[0][0]
            assert call(conn, key, "SELECT content FROM memoriesdb.recall(%s)", (mid,)) == [("deployed by the runner",)]
        again = CliRunner().invoke(main, ["deploy", "--citus"], env={"MEMORIESDB_ADMIN_DSN": dsn})
        assert again.exit_code == 0 and "already distributed" in again.output, again.output
        single = CliRunner().invoke(
            main, ["deploy", "--citus"], env={"MEMORIESDB_ADMIN_DSN": f"postgresql://postgres@{HOST}:{SINGLE_PORT}/postgres"}
        )
        assert single.exit_code != 0 and "no citus extension in this database" in single.output, single.output
    finally:
        citus_sh("dropdb", other)


# --- migrating a single-node ledger (scripts/citus.sh migrate; docs/citus.md "Migrating a single-node ledger") -------

SINGLE_PORT = os.environ.get("PGPORT", "5432")
# what the migration changes on purpose: NAME's own access-log logger (a new role and password; the keys are kept)
MIGRATION_CHANGES = {"memoriesdb.access_log_sink": {"logger_role", "password"}}


SEARCH_INDEXES = (
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'memoriesdb' AND tablename IN ('memories', 'embeddings') "
    "AND indexdef ~ ' USING (hnsw|gin|gist) ' ORDER BY 1"
)


def single_dsn(db: str, user: str = "postgres") -> str:
    return f"postgresql://{user}@{HOST}:{SINGLE_PORT}/{db}"


def logger_of(db: str) -> str:
    return "memoriesdb_log_" + hashlib.md5(db.encode()).hexdigest()[:12]


def citus_sh(*args: str) -> subprocess.CompletedProcess:
    """scripts/citus.sh on this cluster (CITUS_PORT from the DSN; CITUS_DIR as the caller exported it)."""
    env = {**os.environ, "CITUS_PORT": str(coordinator_port())}
    return subprocess.run(["bash", str(ROOT / "scripts/citus.sh"), *args], env=env, cwd=ROOT, capture_output=True, text=True)


def table_digests(conn, columns: dict) -> dict:
    """Per ledger table: its row count and a digest of its rows over the source's columns (the migration adds columns:
    owner_id, chain_key), each row as text in one order."""
    conn.execute("SET TimeZone = 'UTC'")
    out = {}
    for table, cols in columns.items():
        cols = [c for c in cols if c not in MIGRATION_CHANGES.get(table, ())]
        sel = ", ".join(f'"{c}"' for c in cols)
        out[table] = conn.execute(
            f"SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM (SELECT {sel} FROM {table}) AS r"
        ).fetchone()
    return out


def ledger_columns(conn) -> dict:
    rows = conn.execute(
        "SELECT c.oid::regclass::text, array_agg(a.attname::text ORDER BY a.attnum) FROM pg_class AS c "
        "JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relkind = 'r' AND c.relnamespace::regnamespace::text IN ('memoriesdb', 'memoriesdb_internal', 'sqitch') "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return dict(rows)


def ids_of(conn) -> dict:
    return {
        "memories": conn.execute("SELECT id, owner_id FROM memoriesdb.memories ORDER BY id").fetchall(),
        "audit_log": conn.execute("SELECT id, row_hash FROM memoriesdb.audit_log ORDER BY id").fetchall(),
        "audit_seals": conn.execute("SELECT seq, seal_hash FROM memoriesdb.audit_seals ORDER BY seq").fetchall(),
        "users": conn.execute("SELECT id FROM memoriesdb.users ORDER BY id").fetchall(),
    }


def what_each_sees(dsn: str, keys: dict, near: dict) -> dict:
    """Through the API as each user (an app login, authenticate(key)): list_memories(), recall() of each, a search near
    one of the user's memories (near[user]: the axis; every other visible memory is at one distance from it)."""
    seen = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for name, key in keys.items():
            listed = sorted(call(conn, key, "SELECT * FROM memoriesdb.list_memories()"))
            recalled = [call(conn, key, "SELECT * FROM memoriesdb.recall(%s)", (row[0],)) for row in listed]
            hits = [r[0] for r in call(conn, key, SEARCH, (axis(near[name]),))]
            seen[name] = (listed, recalled, hits)
    return seen


@pytest.fixture
def single_node_ledger():
    """A ledger deployed on the single node (own database), its app and runner logins (with passwords, configured for
    the database); the migrated copy, the source and the logins (on every node) dropped afterwards."""
    base = dbname()
    src, fake, dst = f"{base}_migsrc", f"{base}_migfake", f"{base}_migrated"
    app, runner = f"{base}_app", f"{base}_runner"
    nodes = [coordinator_port() + i for i in range(3)]

    def drop_all() -> None:
        citus_sh("dropdb", dst)
        for port in nodes:
            with psycopg.connect(f"postgresql://postgres@{HOST}:{port}/postgres", autocommit=True) as c:
                c.execute("SET citus.enable_create_role_propagation = off")
                for role in (app, runner):
                    c.execute(f'DROP ROLE IF EXISTS "{role}"')
        with psycopg.connect(single_dsn("postgres"), autocommit=True) as c:
            for db in (src, fake):
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                c.execute(f'DROP ROLE IF EXISTS "{logger_of(db)}"')
            for role in (app, runner):
                c.execute(f'DROP ROLE IF EXISTS "{role}"')

    drop_all()
    with psycopg.connect(single_dsn("postgres"), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{src}"')
        c.execute(f'CREATE DATABASE "{fake}"')
    subprocess.run(
        ["sqitch", "--quiet", "deploy", f"db:pg://postgres@{HOST}:{SINGLE_PORT}/{src}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with psycopg.connect(single_dsn(src), autocommit=True) as c:
        c.execute(f"CREATE ROLE \"{app}\" LOGIN PASSWORD 'migrate-app' IN ROLE memoriesdb_app")
        c.execute(f"CREATE ROLE \"{runner}\" LOGIN PASSWORD 'migrate-runner' IN ROLE memoriesdb_worker")
        for login in (app, runner):
            c.execute("SELECT memoriesdb.configure_login(%s)", (login,))
    yield {"src": src, "fake": fake, "dst": dst, "app": app, "runner": runner}
    drop_all()


def test_deploying_another_ledger_leaves_this_ones_logins(admin):
    """scripts/citus.sh deploy of a second ledger on the same cluster while a client of this one makes calls, each in a
    new session (so Citus opens new connections to the workers, as the ledger's roles): no call fails. Distributing the
    new ledger's objects made Citus ALTER the roles on the workers to the coordinator's attributes (NOLOGIN) until the
    deploy made them LOGIN again there: 76 of 308 such calls failed with "role memoriesdb_owner is not permitted to log
    in" (db/citus/distribute.sql now leaves roles a worker has as they are)."""
    other = f"{dbname()}_other"
    _, key = make_user(admin, "deploying")
    stop = threading.Event()
    failures: list[str] = []
    calls = [0]

    def client() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(login_dsn("memoriesdb_client"), autocommit=True) as conn:
                    call(conn, key, "SELECT memoriesdb.remember('made while another ledger is deployed')")
                calls[0] += 1
            except psycopg.Error as exc:
                failures.append(f"{exc.diag.sqlstate}: {str(exc).splitlines()[0]}")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1)
        deployed = citus_sh("deploy", other)
        time.sleep(1)
    finally:
        stop.set()
        thread.join()
        citus_sh("dropdb", other)
    assert deployed.returncode == 0, deployed.stderr
    assert calls[0] > 20, calls
    assert failures == [], sorted(set(failures))[:5]


def test_migrate_a_single_node_ledger_to_citus(single_node_ledger):
    """A single-node ledger written through the API by three users (remember, revise, link, an accepted share, a
    transfer, a forget, embeddings by the runner's functions), sealed, a checkpoint taken; scripts/citus.sh migrate
    moves it to the cluster: every table holds the same rows, the chains verify (against the checkpoint too), each
    user authenticates with the same API key and sees exactly what they saw, and new writes seal and verify."""
    ctx = single_node_ledger
    src, dst = ctx["src"], ctx["dst"]
    app_src, runner_src = single_dsn(src, ctx["app"]), single_dsn(src, ctx["runner"])

    # the ledger on the single node
    with psycopg.connect(single_dsn(src), autocommit=True) as admin_src:
        users = {n: make_user(admin_src, f"mig-{n}") for n in ("alice", "bob", "carol")}
    (alice, ka), (bob, kb), (carol, kc) = users["alice"], users["bob"], users["carol"]
    keys = {n: k for n, (_, k) in users.items()}
    with psycopg.connect(app_src, autocommit=True) as conn:
        call(conn, kb, "SELECT memoriesdb.accept_sender(%s)", (alice,))
        call(conn, kc, "SELECT memoriesdb.accept_sender(%s)", (alice,))
        a1, a2, a3, a4 = (
            call(conn, ka, "SELECT memoriesdb.remember(%s, %s)", (c, Jsonb({"n": i})))[0][0]
            for i, c in enumerate(["alice: shared with bob", "alice: given to carol", "alice: private", "alice: forgotten"])
        )
        call(conn, ka, "SELECT memoriesdb.revise(%s, 'alice: shared with bob, revised')", (a1,))
        call(conn, ka, "SELECT memoriesdb.link(%s, %s, 'related_to')", (a1, a3))
        call(conn, ka, "SELECT memoriesdb.share(%s, %s)", (a1, bob))
        call(conn, ka, "SELECT memoriesdb.transfer(%s, %s, 'yours now')", (a2, carol))
        call(conn, ka, "SELECT memoriesdb.forget(%s)", (a4,))
        b1 = call(conn, kb, "SELECT memoriesdb.remember('bob: own')")[0][0]
        c1 = call(conn, kc, "SELECT memoriesdb.remember('carol: own')")[0][0]
    assert embed_ready_jobs({a1: axis(1), a2: axis(2), a3: axis(3), b1: axis(4), c1: axis(5)}, runner_src) == ["stored"] * 5
    with psycopg.connect(single_dsn(src), autocommit=True) as admin_src:
        while admin_src.execute("SELECT memoriesdb.audit_seal_pending(1000)").fetchone()[0]:
            pass
        cp = admin_src.execute("SELECT memoriesdb.audit_checkpoint()").fetchone()[0]
        assert admin_src.execute("SELECT ok FROM memoriesdb.verify_audit_chain(%s)", (Jsonb(cp),)).fetchone()[0]
    near = {"alice": 1, "bob": 4, "carol": 2}
    seen = what_each_sees(app_src, keys, near)
    assert [r[0] for r in seen["bob"][0]] == sorted([a1, b1]) and seen["carol"][2] == [a2, c1]
    assert seen["alice"][2] == [a1, a3] and seen["bob"][2] == [b1, a1]
    with psycopg.connect(app_src, autocommit=True) as conn:  # the reads of a1 so far, each entry's MAC verified
        history = call(conn, ka, "SELECT * FROM memoriesdb.access_history(%s)", (a1,))
    assert {r[2] for r in history} >= {alice, bob}, history
    with psycopg.connect(single_dsn(src), autocommit=True) as admin_src:  # (after the reads: their access log rows too)
        columns = ledger_columns(admin_src)
        before, ids = table_digests(admin_src, columns), ids_of(admin_src)
        indexes = admin_src.execute(SEARCH_INDEXES).fetchall()
        passwords = admin_src.execute(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (%s, %s) ORDER BY 1", (ctx["app"], ctx["runner"])
        ).fetchall()

    # refusals: a source at a change this checkout's plan does not hold; nothing is created
    with psycopg.connect(single_dsn(ctx["fake"]), autocommit=True) as c:
        c.execute("CREATE SCHEMA sqitch")
        c.execute("CREATE TABLE sqitch.changes (change_id text, change text, project text, committed_at timestamptz)")
        c.execute("INSERT INTO sqitch.changes VALUES (repeat('0', 40), 'privileges', 'memoriesdb', now())")
    refused = citus_sh("migrate", ctx["fake"], dst)
    assert refused.returncode == 1 and "which this checkout's plan does not hold" in refused.stderr, refused
    with psycopg.connect(f"postgresql://postgres@{HOST}:{coordinator_port()}/postgres", autocommit=True) as c:
        assert not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dst,)).fetchone()

    t0 = time.monotonic()
    done = citus_sh("migrate", src, dst)
    elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stderr + done.stdout
    print(f"\nmigrate: {elapsed:.1f}s\n{done.stdout}")
    again = citus_sh("migrate", src, dst)
    assert again.returncode == 1 and f"database {dst} exists" in again.stderr, again

    coordinator = f"postgresql://postgres@{HOST}:{coordinator_port()}/{dst}"
    with psycopg.connect(coordinator, autocommit=True) as admin_dst:
        # distributed: memories by owner on the workers, users a reference table
        assert admin_dst.execute(
            "SELECT array_agg(partmethod::text ORDER BY logicalrelid::text) FROM pg_dist_partition "
            "WHERE logicalrelid IN ('memoriesdb.memories'::regclass, 'memoriesdb.users'::regclass)"
        ).fetchone()[0] == ["h", "n"]
        # every row of every table, as on the single node; the same ids and hashes; the same logins and passwords
        after = table_digests(admin_dst, columns)
        assert {t: v for t, v in after.items() if v != before[t]} == {}, {t: before[t] for t in after if after[t] != before[t]}
        assert ids_of(admin_dst) == ids
        assert (
            admin_dst.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (%s, %s) ORDER BY 1", (ctx["app"], ctx["runner"])
            ).fetchall()
            == passwords
        )
        # the search indexes the migration builds again after the distribution
        assert admin_dst.execute(SEARCH_INDEXES).fetchall() == indexes
        # the logins are Citus's (a worker added later gets them too)
        assert (
            admin_dst.execute(
                "SELECT count(*) FROM pg_dist_object WHERE classid = 'pg_authid'::regclass "
                "AND objid IN (SELECT oid FROM pg_roles WHERE rolname IN (%s, %s))",
                (ctx["app"], ctx["runner"]),
            ).fetchone()[0]
            == 2
        )
        # the chains, and the checkpoint taken on the single node
        assert admin_dst.execute("SELECT ok, problem FROM memoriesdb.verify_audit_chain()").fetchone() == (True, None)
        assert admin_dst.execute("SELECT ok, problem FROM memoriesdb.verify_audit_chain(%s)", (Jsonb(cp),)).fetchone() == (
            True,
            None,
        )
    # sqitch on the coordinator knows what is deployed (the registry came along)
    status = subprocess.run(
        ["sqitch", "status", f"db:pg://postgres@{HOST}:{coordinator_port()}/{dst}"], cwd=ROOT, capture_output=True, text=True
    )
    assert "Nothing to deploy (up-to-date)" in status.stdout, status.stdout + status.stderr

    # the same logins and API keys, and each user sees exactly what they saw
    app_dst = f"postgresql://{ctx['app']}@{HOST}:{coordinator_port()}/{dst}"
    runner_dst = f"postgresql://{ctx['runner']}@{HOST}:{coordinator_port()}/{dst}"
    assert what_each_sees(app_dst, keys, near) == seen
    # the access log came along, and its entries still verify (the log's keys are the source's; the logger is new)
    with psycopg.connect(app_dst, autocommit=True) as conn:
        history_dst = call(conn, ka, "SELECT * FROM memoriesdb.access_history(%s)", (a1,))
    assert set(history) <= set(history_dst) and len(history_dst) > len(history)

    # new writes on the cluster: remembered, embedded by the runner through the coordinator, found; sealed, verified
    with psycopg.connect(app_dst, autocommit=True) as conn:
        a5 = call(conn, ka, "SELECT memoriesdb.remember('alice: after the migration')")[0][0]
        b2 = call(conn, kb, "SELECT memoriesdb.remember('bob: after the migration')")[0][0]
        call(conn, ka, "SELECT memoriesdb.share(%s, %s)", (a5, carol))
    assert embed_ready_jobs({a5: axis(6), b2: axis(7)}, runner_dst) == ["stored"] * 2
    with psycopg.connect(app_dst, autocommit=True) as conn:
        hits = [r[0] for r in call(conn, ka, SEARCH, (axis(6),))]
        assert hits[0] == a5 and sorted(hits) == sorted([a1, a3, a5])
        assert call(conn, kc, "SELECT content FROM memoriesdb.recall(%s)", (a5,)) == [("alice: after the migration",)]
        assert sorted(r[0] for r in call(conn, kb, "SELECT id FROM memoriesdb.list_memories()")) == sorted([a1, b1, b2])
    with psycopg.connect(coordinator, autocommit=True) as admin_dst:
        admin_dst.execute("SELECT memoriesdb.audit_seal_pending()")
        assert admin_dst.execute("SELECT ok, problem FROM memoriesdb.verify_audit_chain()").fetchone() == (True, None)
        assert admin_dst.execute("SELECT ok, problem FROM memoriesdb.verify_audit_chain(%s)", (Jsonb(cp),)).fetchone() == (
            True,
            None,
        )


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

    def failed(exc: psycopg.Error) -> None:
        with lock:
            failures[exc.diag.sqlstate or "none"] = failures.get(exc.diag.sqlstate or "none", 0) + 1
            if exc.diag.sqlstate not in RETRYABLE:
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
        subprocess.run(["bash", str(ROOT / "scripts/citus.sh"), "add-worker", dbname()], check=True, capture_output=True)
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
