"""Workers keep working through database faults, stop within 5 s, and their health tells the truth.

Against real servers only: a private PostgreSQL cluster (with a streaming replica, for the
failover) on ports 5491/5492 that the tests restart, stop and promote; a private PgBouncer on 6450;
pg_terminate_backend on the shared cluster, limited to this test database's backends; a provider
that answers (fake_ollama), one that never answers (BlackHole) and one that refuses (refused_url).
The worker under test is the real CLI (`memoriesdb worker embed`) in a subprocess.

MEMORIESDB_TEST_OUTAGE_SECONDS (default 15) sets the length of the outage test (120: the 2-minute
case; the code path is the same).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from memoriesdb_runner import admin, db, metrics
from memoriesdb_runner import status as status_report
from memoriesdb_runner.providers import OllamaProvider
from memoriesdb_runner.settings import Settings
from memoriesdb_runner.worker import EmbedWorker, _waiter

from .conftest import DB, HOST, remember
from .fake_ollama import BlackHole, refused_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path("/usr/lib/postgresql/15/bin")
PRIMARY, REPLICA = 5491, 5492
BOUNCER = 6450
OUTAGE = float(os.environ.get("MEMORIESDB_TEST_OUTAGE_SECONDS", "15"))
STOP_LIMIT = 5.0


def as_pg(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """A server command as user postgres when we are root (PostgreSQL refuses root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], check=check, capture_output=True, text=True)


class Cluster:
    """A private primary (and a streaming replica made on demand) in a temporary directory."""

    def __init__(self):
        self.work = Path(tempfile.mkdtemp(prefix="mdb_wf_pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.work, "postgres")
        self.primary, self.replica = self.work / "primary", self.work / "replica"
        as_pg(str(BIN / "initdb"), "-D", str(self.primary), "-U", "postgres", "--auth=trust")
        with open(self.primary / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {PRIMARY}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.work}'\n"
                "wal_level = replica\nmax_wal_senders = 4\nfsync = off\n"
            )
        with open(self.primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self.start()
        self.admin = f"postgresql://postgres@127.0.0.1:{PRIMARY}/memoriesdb"
        admin.deploy(self.admin)
        admin.ensure_local_logins(self.admin)

    def ctl(self, *args: str, data: Path | None = None) -> None:
        d = data or self.primary
        as_pg(str(BIN / "pg_ctl"), "-D", str(d), "-l", str(self.work / f"{d.name}.log"), "-w", *args)

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self.ctl("-m", "fast", "restart")

    def make_replica(self) -> None:
        as_pg(
            str(BIN / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(PRIMARY), "-U", "postgres", "-D", str(self.replica), "-R", "-X", "stream"),
            *("-c", "fast"),
        )
        with open(self.replica / "postgresql.conf", "a") as conf:
            conf.write(f"port = {REPLICA}\n")
        self.ctl("start", data=self.replica)

    def close(self) -> None:
        for d in (self.replica, self.primary):
            if (d / "postmaster.pid").exists():
                as_pg(str(BIN / "pg_ctl"), "-D", str(d), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.work, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    if not (BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 server binaries not found")
    c = Cluster()
    yield c
    c.close()


@pytest.fixture
def private_conn(cluster):
    with psycopg.connect(cluster.admin, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("UPDATE memoriesdb.embedding_schedule SET dead_at = coalesce(dead_at, now())")
        yield conn


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """`memoriesdb worker embed` in a subprocess, with its health server on a free port."""

    def __init__(self, dsn: str, provider_url: str, *, listen_dsn: str | None = None, kind: str = "embed", **env: str):
        self.metrics_port = _port()
        self.log = tempfile.NamedTemporaryFile(prefix="mdb_wf_worker-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memoriesdb_runner.cli", "--json", "worker", kind],
            env={
                **os.environ,
                "MEMORIESDB_DSN": dsn,
                "MEMORIESDB_LISTEN_DSN": listen_dsn or dsn,
                "MEMORIESDB_PROVIDER": "ollama",
                "MEMORIESDB_OLLAMA_URL": provider_url,
                "MEMORIESDB_LEASE_SECONDS": "30",
                "MEMORIESDB_BATCH_SIZE": "8",
                "MEMORIESDB_POLL_SECONDS": "0.5",
                "MEMORIESDB_METRICS_PORT": str(self.metrics_port),
                **{f"MEMORIESDB_{k.upper()}": v for k, v in env.items()},
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=3).status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def wait_status(self, path: str, code: int, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            assert self.proc.poll() is None, f"the worker exited:\n{self.output()}"
            if self.get(path) == code:
                return time.monotonic() - t0
            time.sleep(0.1)
        raise AssertionError(f"{path} never answered {code} in {timeout}s:\n{self.output()[-3000:]}")

    def events(self) -> list[dict]:
        out = []
        for line in self.output().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def terminate(self) -> float:
        """SIGTERM; the seconds until the process exited."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return time.monotonic() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.log.name)


def _remember_many(conn, n: int, tag: str) -> list:
    uid = conn.execute("SELECT memoriesdb.create_user(%s) AS id", (f"{tag.replace(' ', '-')}-{time.time_ns()}",)).fetchone()["id"]
    return remember(conn, uid, *[f"{tag} {i}" for i in range(n)])


def _embedded(conn, ids) -> int:
    return conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.memories WHERE id = ANY(%s) AND embedding IS NOT NULL", (ids,)
    ).fetchone()["n"]


def _wait_embedded(conn_factory, ids, n: int, timeout: float, worker: Worker) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert worker.proc.poll() is None, f"the worker exited:\n{worker.output()[-3000:]}"
        try:
            with conn_factory() as conn:
                if _embedded(conn, ids) >= n:
                    return time.monotonic() - t0
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"only part of the work was done in {timeout}s:\n{worker.output()[-3000:]}")


def _assert_once(fake, texts, conn, ids) -> None:
    """Every job done, none twice: each text reached the provider exactly once, every memory has
    its embedding and no job is left in the queue."""
    seen = Counter(t for t in fake.embedded_texts() if t in set(texts))
    assert set(seen) == set(texts) and max(seen.values()) == 1, {t: c for t, c in seen.items() if c > 1}
    assert _embedded(conn, ids) == len(ids)
    left = conn.execute("SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s)", (ids,))
    assert left.fetchone()["n"] == 0


def _faults(worker: Worker) -> list[dict]:
    return [e for e in worker.events() if e.get("event") == "database fault"]


def _report(name: str, **numbers) -> None:
    """The measured numbers, for the fault matrix (printed; run pytest -s to see them)."""
    print(f"\nMEASURED {name}: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items()))


# --- database faults -------------------------------------------------------------------------------


def test_worker_survives_a_postgresql_restart(cluster, private_conn, fake_ollama):
    # a provider that answers at once: the worker spends its time in the database, so the restart
    # cuts statements in flight (claims, completions), not only idle pooled connections
    ids = _remember_many(private_conn, 1200, "restart")
    texts = [f"restart {i}" for i in range(1200)]
    fake_ollama.delay = 0.01
    w = Worker(f"postgresql://memoriesdb_runner@127.0.0.1:{PRIMARY}/memoriesdb", fake_ollama.url)
    try:
        w.wait_status("/readyz", 200, 30)
        _wait_embedded(lambda: psycopg.connect(cluster.admin, row_factory=dict_row), ids, 200, 60, w)
        t0 = time.monotonic()
        cluster.restart()  # "terminating connection due to administrator command" to every backend
        restarted = time.monotonic() - t0
        done = _wait_embedded(lambda: psycopg.connect(cluster.admin, row_factory=dict_row), ids, 1200, 120, w)
        with psycopg.connect(cluster.admin, row_factory=dict_row) as conn:
            _assert_once(fake_ollama, texts, conn, ids)
        # every backend was terminated: the LISTEN connection always sees it; a statement in flight
        # (most runs, not all: the worker may be between statements) is a logged, counted fault
        lost = [e for e in w.events() if e.get("event") in ("listen connection lost", "database fault")]
        assert lost, "the restart cut the worker's connections:\n" + w.output()[-5000:]
        back = [e for e in w.events() if e.get("event") == "database back"]
        _report("postgresql restart", restart_s=restarted, rest_of_work_s=done, faults=len(_faults(w)), back=len(back))
        assert w.get("/readyz") == 200 and w.get("/healthz") == 200
        assert w.terminate() < STOP_LIMIT and w.proc.returncode == 0
    finally:
        w.close()


def test_worker_survives_pg_terminate_backend(settings, admin_conn, fake_ollama):
    """On the shared cluster: only this test database's worker backends are terminated."""
    ids = _remember_many(admin_conn, 120, "terminated")
    texts = [f"terminated {i}" for i in range(120)]
    fake_ollama.delay = 0.1
    w = Worker(settings.dsn, fake_ollama.url, listen_dsn=settings.listen)
    try:
        w.wait_status("/readyz", 200, 30)
        killed = 0
        for _ in range(4):
            time.sleep(1.0)
            killed += admin_conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                " WHERE datname = %s AND usename = 'memoriesdb_runner'",
                (DB,),
            ).fetchone()["n"]
        assert killed >= 4
        done = _wait_embedded(lambda: psycopg.connect(settings.admin_dsn, row_factory=dict_row), ids, 120, 90, w)
        _assert_once(fake_ollama, texts, admin_conn, ids)
        _report("pg_terminate_backend x4", backends_killed=killed, faults=len(_faults(w)), finished_after_s=done)
        assert w.terminate() < STOP_LIMIT and w.proc.returncode == 0
    finally:
        w.close()


@pytest.fixture
def bouncer():
    if not shutil.which("pgbouncer"):
        pytest.skip("pgbouncer not installed")
    script = str(ROOT / "scripts/pgbouncer.sh")
    subprocess.run([script, "start", str(BOUNCER)], check=True, capture_output=True)
    yield lambda action: subprocess.run([script, action, str(BOUNCER)], check=True, capture_output=True)
    subprocess.run([script, "stop", str(BOUNCER)], check=True, capture_output=True)


def test_worker_survives_a_pgbouncer_restart(settings, admin_conn, fake_ollama, bouncer):
    ids = _remember_many(admin_conn, 120, "bounced")
    texts = [f"bounced {i}" for i in range(120)]
    fake_ollama.delay = 0.15
    w = Worker(f"postgresql://memoriesdb_runner@{HOST}:{BOUNCER}/{DB}", fake_ollama.url, listen_dsn=settings.listen)
    try:
        w.wait_status("/readyz", 200, 30)
        _wait_embedded(lambda: psycopg.connect(settings.admin_dsn, row_factory=dict_row), ids, 24, 60, w)
        bouncer("stop")  # PgBouncer killed: every client connection drops
        time.sleep(8)  # longer than the 6 s that used to kill the worker
        assert w.proc.poll() is None, w.output()[-3000:]
        not_ready = w.get("/readyz")
        t0 = time.monotonic()
        bouncer("start")
        ready_after = w.wait_status("/readyz", 200, 60)
        done = _wait_embedded(lambda: psycopg.connect(settings.admin_dsn, row_factory=dict_row), ids, 120, 90, w)
        _assert_once(fake_ollama, texts, admin_conn, ids)
        _report(
            "pgbouncer restart (8 s down)",
            readyz_during=not_ready,
            ready_after_start_s=ready_after,
            finished_after_start_s=time.monotonic() - t0,
            rest_of_work_s=done,
            faults=len(_faults(w)),
        )
        assert not_ready == 503
        assert time.monotonic() - t0 < 60
        assert w.terminate() < STOP_LIMIT
    finally:
        w.close()


def test_worker_survives_an_outage_and_readyz_tells(cluster, private_conn, fake_ollama):
    ids = _remember_many(private_conn, 80, "outage")
    texts = [f"outage {i}" for i in range(80)]
    fake_ollama.delay = 0.2
    w = Worker(f"postgresql://memoriesdb_runner@127.0.0.1:{PRIMARY}/memoriesdb", fake_ollama.url)
    try:
        w.wait_status("/readyz", 200, 30)
        _wait_embedded(lambda: psycopg.connect(cluster.admin, row_factory=dict_row), ids, 16, 60, w)
        cluster.stop()
        down_at = time.monotonic()
        unready_after = w.wait_status("/readyz", 503, 15)
        healthz = set()
        while time.monotonic() - down_at < OUTAGE:
            assert w.proc.poll() is None, w.output()[-3000:]
            healthz.add(w.get("/healthz"))
            time.sleep(1)
        assert healthz == {200}, "the loop beats through the outage: alive, not ready"
        cluster.start()
        ready_after = w.wait_status("/readyz", 200, 60)
        done = _wait_embedded(lambda: psycopg.connect(cluster.admin, row_factory=dict_row), ids, 80, 120, w)
        with psycopg.connect(cluster.admin, row_factory=dict_row) as conn:
            _assert_once(fake_ollama, texts, conn, ids)
        fault_ops = Counter(e["operation"] for e in _faults(w))
        _report(
            f"postgresql down {OUTAGE:.0f} s",
            readyz_503_after_s=unready_after,
            readyz_200_after_start_s=ready_after,
            finished_after_s=done,
            faults=dict(fault_ops),
        )
        assert w.terminate() < STOP_LIMIT and w.proc.returncode == 0
    finally:
        w.close()


def test_vindex_worker_survives_pg_terminate_backend(settings, admin_conn, fake_ollama):
    ids = _remember_many(admin_conn, 4, "vindexed")
    w = Worker(settings.dsn, fake_ollama.url, listen_dsn=settings.listen, kind="vindex", vindex_debounce_seconds="0.2")
    try:
        w.wait_status("/readyz", 200, 30)
        uid = admin_conn.execute("SELECT owner_id FROM memoriesdb.memories WHERE id = %s", (ids[0],)).fetchone()["owner_id"]
        killed = 0
        for a, b in itertools.pairwise(ids):
            killed += admin_conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                " WHERE datname = %s AND usename = 'memoriesdb_runner'",
                (DB,),
            ).fetchone()["n"]
            with admin_conn.transaction():
                admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                admin_conn.execute("SELECT memoriesdb.link(%s, %s, 'related_to')", (a, b))
            time.sleep(1)
        t0 = time.monotonic()
        while admin_conn.execute("SELECT pending FROM memoriesdb.vindexing_status()").fetchone()["pending"]:
            assert w.proc.poll() is None, w.output()[-3000:]
            assert time.monotonic() - t0 < 60, w.output()[-3000:]
            time.sleep(0.2)
        graph = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.memory_graph WHERE node_id = ANY(%s)", (ids,))
        assert graph.fetchone()["n"] == 6, "every link, both directions"
        _report("vindex worker, pg_terminate_backend x3", backends_killed=killed, faults=len(_faults(w)))
        assert w.terminate() < STOP_LIMIT and w.proc.returncode == 0
    finally:
        w.close()


# --- stopping within 5 s ---------------------------------------------------------------------------


def test_sigterm_during_startup_with_a_hanging_provider(settings):
    hole = BlackHole()
    w = Worker(settings.dsn, hole.url, listen_dsn=settings.listen)
    try:
        time.sleep(3)  # connected to the database, stuck in the provider's dimension probe
        assert w.proc.poll() is None and w.get("/readyz") == 503
        took = w.terminate()
        _report("SIGTERM at start-up (provider hangs)", stop_s=took)
        assert took < STOP_LIMIT and w.proc.returncode == 0
    finally:
        w.close()
        hole.close()


def test_sigterm_when_idle(settings, fake_ollama):
    w = Worker(settings.dsn, fake_ollama.url, listen_dsn=settings.listen)
    try:
        w.wait_status("/readyz", 200, 30)
        time.sleep(1)
        took = w.terminate()
        _report("SIGTERM idle", stop_s=took)
        assert took < STOP_LIMIT and w.proc.returncode == 0
    finally:
        w.close()


def test_sigterm_mid_batch_hands_the_batch_back(settings, admin_conn, fake_ollama):
    ids = _remember_many(admin_conn, 5, "mid-batch")
    fake_ollama.delay = 60
    w = Worker(settings.dsn, fake_ollama.url, listen_dsn=settings.listen)
    try:
        t0 = time.monotonic()
        while not admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s) AND lease_id IS NOT NULL", (ids,)
        ).fetchone()["n"]:
            assert time.monotonic() - t0 < 30, w.output()
            time.sleep(0.05)
        time.sleep(0.5)
        took = w.terminate()
        jobs = admin_conn.execute(
            "SELECT lease_id, attempts FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s)", (ids,)
        ).fetchall()
        _report("SIGTERM mid-batch (provider hangs)", stop_s=took)
        assert took < STOP_LIMIT and w.proc.returncode == 0
        assert all(j["lease_id"] is None and j["attempts"] == 0 for j in jobs), jobs
    finally:
        w.close()


def test_sigterm_during_a_database_outage(cluster, private_conn, fake_ollama):
    w = Worker(f"postgresql://memoriesdb_runner@127.0.0.1:{PRIMARY}/memoriesdb", fake_ollama.url)
    try:
        w.wait_status("/readyz", 200, 30)
        cluster.stop()
        try:
            w.wait_status("/readyz", 503, 15)
            time.sleep(4)  # into the backoff
            took = w.terminate()
        finally:
            cluster.start()
        _report("SIGTERM in a database outage", stop_s=took, faults=len(_faults(w)))
        assert took < STOP_LIMIT and w.proc.returncode == 0
    finally:
        w.close()


def test_sigterm_at_startup_while_the_database_is_down(cluster, fake_ollama):
    cluster.stop()
    try:
        w = Worker(f"postgresql://memoriesdb_runner@127.0.0.1:{PRIMARY}/memoriesdb", fake_ollama.url)
        try:
            time.sleep(4)
            assert w.proc.poll() is None, "a database that is down at start-up is waited for: " + w.output()
            assert w.get("/readyz") == 503 and w.get("/healthz") == 200
            took = w.terminate()
            _report("SIGTERM at start-up, database down", stop_s=took)
            assert took < STOP_LIMIT
        finally:
            w.close()
    finally:
        cluster.start()


# --- the provider: unreachable is no attempt; Retry-After below the lease ----------------------------


def _one_batch(settings, url: str, **overrides) -> None:
    async def scenario():
        s = settings.model_copy(update={"ollama_url": url, **overrides})
        pool = db.make_pool(s.dsn)
        await pool.open()
        provider = OllamaProvider(s)
        try:
            worker = EmbedWorker(s, pool, provider, name="pytest-one-batch")
            await worker.run_once(asyncio.Event())
            await worker.flush()
        finally:
            await provider.aclose()
            await pool.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("where", ["refused", "dns"])
def test_an_unreachable_provider_costs_no_attempt(settings, admin_conn, user, where):
    uid, _ = user
    [m] = remember(admin_conn, uid, f"provider {where}")
    url = refused_url() if where == "refused" else "http://memoriesdb-no-such-host.invalid:11434"
    for _ in range(7):  # more tries than max_attempts (5): an outage of the provider kills nothing
        admin_conn.execute("UPDATE memoriesdb.embedding_schedule SET run_after = now() WHERE memory_id = %s", (m,))
        _one_batch(settings, url, max_retries=1)
    job = admin_conn.execute("SELECT * FROM memoriesdb.embedding_schedule WHERE memory_id = %s", (m,)).fetchone()
    assert job["dead_at"] is None and job["attempts"] == 0 and job["lease_id"] is None
    assert "unreachable" in job["last_error"] and job["run_after"] > job["updated_at"]


def test_a_provider_that_never_answers_costs_an_attempt(settings, admin_conn, user):
    uid, _ = user
    [m] = remember(admin_conn, uid, "provider hung")
    hole = BlackHole()
    try:
        _one_batch(settings, hole.url, max_retries=1, request_timeout=0.5)
    finally:
        hole.close()
    job = admin_conn.execute("SELECT * FROM memoriesdb.embedding_schedule WHERE memory_id = %s", (m,)).fetchone()
    assert job["attempts"] == 1 and "ReadTimeout" in job["last_error"], "the request reached it: an attempt"


def test_retry_after_waits_stay_below_the_lease(settings, admin_conn, user, fake_ollama):
    class State:
        def __init__(self, exc):
            self.outcome = type("O", (), {"exception": lambda _self: exc})()
            self.attempt_number = 1
            self.idle_for = 0
            self.upcoming_sleep = 0

    from memoriesdb_runner.errors import TransientProviderError

    assert _waiter(300)(State(TransientProviderError("429", retry_after=300))) == 150
    assert _waiter(30)(State(TransientProviderError("429", retry_after=300))) == 15
    assert _waiter(900)(State(TransientProviderError("429", retry_after=3600))) == 300
    uid, _ = user
    [m] = remember(admin_conn, uid, "rate limited")
    fake_ollama.fail_next = [(429, {"Retry-After": "300"})]
    t0 = time.monotonic()
    _one_batch(settings, fake_ollama.url, lease_seconds=4)
    took = time.monotonic() - t0
    assert admin_conn.execute("SELECT embedding IS NOT NULL AS e FROM memoriesdb.memories WHERE id = %s", (m,)).fetchone()["e"]
    assert 2 <= took < 10, f"waited {took:.1f}s: half the 4 s lease, not the 300 s asked"


# --- health -----------------------------------------------------------------------------------------


def test_an_idle_connection_does_not_block_healthz():
    assert Settings(_env_file=None).metrics_host == "127.0.0.1"
    port = _port()
    metrics.HEALTH.reset()
    server = metrics.serve(port)
    try:
        assert server.server_address[0] == "127.0.0.1"
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # connected, never a byte
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # a request that never ends
        # a server that waited on an idle or unfinished connection would never answer: the timeout is the test
        # (generous, so a loaded machine cannot fail it); the time taken is reported, not asserted
        t0 = time.monotonic()
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=15).status == 200
        _report("/healthz with 21 idle connections", answer_s=time.monotonic() - t0)
        for s in [*idle, half]:
            s.close()
    finally:
        server.shutdown()


def test_healthz_fails_when_the_loop_stops_beating():
    port = _port()
    metrics.HEALTH.reset()
    metrics.HEALTH.stale_after = 0.5
    server = metrics.serve(port)
    try:
        metrics.HEALTH.beat("embed w0")
        metrics.HEALTH.started()
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
        time.sleep(0.8)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
        assert err.value.code == 503 and b"no heartbeat from embed w0" in err.value.read()
    finally:
        metrics.HEALTH.stale_after = 60
        metrics.HEALTH.reset()
        server.shutdown()


def test_readyz_is_503_while_the_provider_hangs(settings, admin_conn, fake_ollama):
    w = Worker(
        settings.dsn, fake_ollama.url, listen_dsn=settings.listen, request_timeout="5", max_retries="2", health_stale_seconds="2"
    )
    try:
        w.wait_status("/readyz", 200, 30)
        fake_ollama.delay = 30  # the provider hangs from now on
        _remember_many(admin_conn, 3, "hung provider")
        t0 = time.monotonic()
        healthz = set()
        while time.monotonic() - t0 < 4:  # inside the 5 s provider call, past health_stale_seconds (2 s)
            healthz.add(w.get("/healthz"))
            time.sleep(0.25)
        assert healthz == {200}, "waiting on a slow provider is no wedged loop: the loop beats while it waits"
        took = w.wait_status("/readyz", 503, 20) + 4
        _report("/readyz with a hung provider", readyz_503_after_s=took)
        fake_ollama.delay = 0
        _remember_many(admin_conn, 1, "provider back")
        back = w.wait_status("/readyz", 200, 60)
        _report("/readyz after the provider answers again", readyz_200_after_s=back)
    finally:
        w.close()


def test_status_shows_the_oldest_lease_its_holder_and_the_last_error(settings, admin_conn, fake_ollama):
    ids = _remember_many(admin_conn, 2, "status")
    admin_conn.execute(
        "UPDATE memoriesdb.embedding_schedule SET last_error = 'HTTP 503: overloaded' WHERE memory_id = %s", (ids[1],)
    )
    fake_ollama.delay = 60  # the worker hangs on its batch, renewing the leases
    w = Worker(settings.dsn, fake_ollama.url, listen_dsn=settings.listen)
    try:
        t0 = time.monotonic()
        while not admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s) AND lease_id IS NOT NULL", (ids,)
        ).fetchone()["n"]:
            assert time.monotonic() - t0 < 30, w.output()
            time.sleep(0.05)
        time.sleep(1.5)
        data = asyncio.run(status_report.collect(settings))
        h = data["health"]
        assert h["oldest_lease_holder"].endswith(f":{w.proc.pid}") and h["holders"] >= 1
        assert h["oldest_lease_age"].total_seconds() >= 1.5
        assert h["last_error"] == "HTTP 503: overloaded"
        out = subprocess.run(
            [sys.executable, "-m", "memoriesdb_runner.cli", "status"],
            env={**os.environ, "MEMORIESDB_DSN": settings.dsn},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "oldest lease" in out and f":{w.proc.pid}" in out and "HTTP 503: overloaded" in out
    finally:
        w.close()


# --- failover (last: the old primary is gone afterwards) ------------------------------------------


def test_worker_follows_a_failover_to_a_promoted_replica(cluster, private_conn, fake_ollama):
    """libpq multi-host DSN with target_session_attrs=read-write: the worker reconnects to
    whichever server is the primary. Runs last: the old primary is gone afterwards."""
    cluster.make_replica()
    ids = _remember_many(private_conn, 80, "failover")
    texts = [f"failover {i}" for i in range(80)]
    fake_ollama.delay = 0.2
    dsn = f"postgresql://memoriesdb_runner@127.0.0.1:{PRIMARY},127.0.0.1:{REPLICA}/memoriesdb?target_session_attrs=read-write"
    new_admin = f"postgresql://postgres@127.0.0.1:{REPLICA}/memoriesdb"
    w = Worker(dsn, fake_ollama.url)
    try:
        w.wait_status("/readyz", 200, 30)
        _wait_embedded(lambda: psycopg.connect(cluster.admin, row_factory=dict_row), ids, 16, 60, w)
        lsn = private_conn.execute("SELECT pg_current_wal_lsn() AS l").fetchone()["l"]
        with psycopg.connect(new_admin, autocommit=True) as r:
            while not r.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                time.sleep(0.05)
        as_pg(str(BIN / "pg_ctl"), "-D", str(cluster.primary), "-m", "immediate", "stop")
        cluster.ctl("promote", data=cluster.replica)
        done = _wait_embedded(lambda: psycopg.connect(new_admin, row_factory=dict_row), ids, 80, 120, w)
        with psycopg.connect(new_admin, row_factory=dict_row) as conn:
            assert _embedded(conn, ids) == 80
            left = conn.execute("SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s)", (ids,))
            assert left.fetchone()["n"] == 0
        # an immediate stop loses what the replica had not replayed: a batch stored on the old
        # primary after the last replayed LSN is embedded again on the new one (stored once there)
        again = sum(c - 1 for t, c in Counter(fake_ollama.embedded_texts()).items() if t in set(texts))
        _report("failover to a promoted replica", finished_after_promote_s=done, re_embedded=again, faults=len(_faults(w)))
        assert w.get("/readyz") == 200
        assert w.terminate() < STOP_LIMIT
    finally:
        w.close()
