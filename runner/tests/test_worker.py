"""The embedding worker against a real PostgreSQL and a server speaking Ollama's API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from memoriesdb_runner import db
from memoriesdb_runner.errors import ConfigurationError
from memoriesdb_runner.providers import OllamaProvider
from memoriesdb_runner.search import search_text
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.worker import EmbedWorker

from .conftest import remember
from .fake_ollama import vector_for


def embedding_of(admin_conn, memory_id):
    row = admin_conn.execute(
        "SELECT embedding::text AS e, embedding_model, embedded_hash = content_hash AS fresh "
        "FROM memoriesdb.memories WHERE id = %s",
        (memory_id,),
    ).fetchone()
    return row


def job_of(admin_conn, memory_id):
    return admin_conn.execute("SELECT * FROM memoriesdb.embedding_schedule WHERE memory_id = %s", (memory_id,)).fetchone()


async def drain(settings, **kw):
    return await run_embed_workers(settings, until_empty=True, install_signals=False, **kw)


def test_remembered_memory_is_embedded_and_found(settings, admin_conn, user, fake_ollama):
    uid, key = user
    [m] = remember(admin_conn, uid, "the cat sat on the mat")
    assert asyncio.run(drain(settings)) == 1
    row = embedding_of(admin_conn, m)
    assert row["embedding_model"] == "all-minilm" and row["fresh"]
    stored = np.array(eval(row["e"]))
    expected = np.array(vector_for("the cat sat on the mat", 384))
    assert np.allclose(stored, expected / np.linalg.norm(expected), atol=1e-6), "stored L2-normalised"
    assert job_of(admin_conn, m) is None
    # the same text as a query finds it first, with similarity 1
    rows = asyncio.run(search_text(settings, "the cat sat on the mat", key, None, k=1))
    assert rows[0]["id"] == m and rows[0]["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_worker_wakes_on_notify(settings, admin_conn, user):
    uid, _ = user
    settings.poll_seconds = 30  # only NOTIFY can wake it in time

    async def scenario():
        stop = asyncio.Event()
        pool = db.make_pool(settings.dsn)
        await pool.open()
        provider = OllamaProvider(settings)
        worker = EmbedWorker(settings, pool, provider)
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(1.0)  # idle, listening
        t0 = time.perf_counter()
        [m] = await asyncio.to_thread(remember, admin_conn, uid, "wake up")
        while job_of(admin_conn, m) is not None and time.perf_counter() - t0 < 10:
            await asyncio.sleep(0.05)
        latency = time.perf_counter() - t0
        stop.set()
        await task
        await pool.close()
        await provider.aclose()
        return m, latency

    m, latency = asyncio.run(scenario())
    assert embedding_of(admin_conn, m)["e"] is not None
    assert latency < 5, f"embedded {latency:.1f}s after remember with a 30 s poll: NOTIFY did not wake the worker"


def test_revision_reembeds_and_stale_vector_is_never_stored(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    [m] = remember(admin_conn, uid, "version one")
    fake_ollama.delay = 1.0

    async def scenario():
        task = asyncio.create_task(drain(settings))
        # revise while the provider is embedding "version one"
        while not fake_ollama.embedded_texts():
            await asyncio.sleep(0.02)
        with admin_conn.transaction():
            admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            admin_conn.execute("SELECT memoriesdb.revise(%s, 'version two')", (m,))
        await task

    asyncio.run(scenario())
    assert fake_ollama.embedded_texts() == ["version one", "version two"]
    row = embedding_of(admin_conn, m)
    assert row["fresh"], "the stored vector belongs to the current content"
    assert np.allclose(
        np.array(eval(row["e"])) * np.linalg.norm(vector_for("version two", 384)), vector_for("version two", 384), atol=1e-4
    )


def test_two_workers_never_do_the_same_job(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    texts = [f"memory number {i}" for i in range(300)]
    ids = remember(admin_conn, uid, *texts)
    fake_ollama.delay = 0.01
    settings.batch_size = 7

    async def scenario():
        return await asyncio.gather(drain(settings), drain(settings), drain(settings))

    counts = asyncio.run(scenario())
    assert sum(counts) == 300 and all(c > 0 for c in counts), counts
    embedded = fake_ollama.embedded_texts()
    assert sorted(embedded) == sorted(texts), "every job embedded exactly once"
    assert (
        admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb.memories WHERE id = ANY(%s) AND embedding IS NULL", (ids,)
        ).fetchone()["n"]
        == 0
    )


def test_transient_errors_are_retried(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    [m] = remember(admin_conn, uid, "flaky")

    async def scenario():
        provider = OllamaProvider(settings)
        await provider.dimension()
        fake_ollama.fail_next = [(503, {}), (429, {"Retry-After": "0.3"})]
        t0 = time.perf_counter()
        try:
            await drain(settings, provider=provider)
        finally:
            await provider.aclose()
        return time.perf_counter() - t0

    elapsed = asyncio.run(scenario())
    assert embedding_of(admin_conn, m)["e"] is not None
    assert [c for c in fake_ollama.calls if c == ["flaky"]] == [["flaky"]] * 3, "503, 429, then success"
    assert elapsed >= 0.3, "Retry-After was honoured"


def test_startup_probe_is_retried(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    [m] = remember(admin_conn, uid, "after a slow start")
    fake_ollama.fail_next = [(502, {}), (503, {})]  # the provider is still starting
    assert asyncio.run(drain(settings)) == 1
    assert embedding_of(admin_conn, m)["e"] is not None


def test_transient_errors_past_the_retries_back_off_in_the_queue(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    [m] = remember(admin_conn, uid, "down for a while")

    async def scenario():
        provider = OllamaProvider(settings)
        await provider.dimension()
        fake_ollama.fail_next = [(500, {})] * settings.max_retries
        try:
            await drain(settings, provider=provider)
        finally:
            await provider.aclose()

    asyncio.run(scenario())
    job = job_of(admin_conn, m)
    assert job["dead_at"] is None and job["run_after"] > job["updated_at"] and "HTTP 500" in job["last_error"]


def test_permanent_error_dead_letters_with_its_text(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    [m] = remember(admin_conn, uid, "unlucky")

    async def scenario():
        provider = OllamaProvider(settings)
        await provider.dimension()  # the start-up probe succeeds...
        fake_ollama.model = "something-else"  # ...then the model disappears from the server
        try:
            return await drain(settings, provider=provider)
        finally:
            await provider.aclose()

    assert asyncio.run(scenario()) == 0
    job = job_of(admin_conn, m)
    assert job["dead_at"] is not None and "not found" in job["last_error"] and job["attempts"] == 1


def test_wrong_dimension_model_refuses_to_start(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    [m] = remember(admin_conn, uid, "never claimed")
    fake_ollama.dim = 768
    with pytest.raises(ConfigurationError, match="768-dimensional"):
        asyncio.run(drain(settings))
    job = job_of(admin_conn, m)
    assert job["attempts"] == 0 and job["lease_id"] is None, "no job was claimed"


def _spawn_worker(settings, *extra):
    env = {
        **os.environ,
        "MEMORIESDB_DSN": settings.dsn,
        "MEMORIESDB_LISTEN_DSN": settings.listen,
        "MEMORIESDB_PROVIDER": "ollama",
        "MEMORIESDB_OLLAMA_URL": settings.ollama_url,
        "MEMORIESDB_LEASE_SECONDS": str(settings.lease_seconds),
        "MEMORIESDB_BATCH_SIZE": str(settings.batch_size),
        "MEMORIESDB_POLL_SECONDS": "0.2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "memoriesdb_runner.cli", "worker", "embed", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_leased(admin_conn, ids, timeout=20):
    t0 = time.time()
    while time.time() - t0 < timeout:
        n = admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s) AND lease_id IS NOT NULL", (ids,)
        ).fetchone()["n"]
        if n:
            return n
        time.sleep(0.05)
    raise AssertionError("the worker never claimed a job")


def test_the_next_batch_is_claimed_while_one_is_embedded_and_given_back_on_stop(settings, admin_conn, user, fake_ollama):
    """A pipeline: while a batch is embedded the worker already holds the next one (its claim overlapped the
    provider's work). Stopped mid-batch, it hands both back at once, the one claimed ahead included (never
    sent to the provider, not left to expire with its lease), attempts uncounted."""
    uid, _ = user
    ids = remember(admin_conn, uid, *[f"pipelined {i}" for i in range(6)])
    settings.batch_size = 3
    fake_ollama.delay = 30  # the first batch is still with the provider when the worker stops

    def leased():
        return admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s) AND lease_until > now()",
            (ids,),
        ).fetchone()["n"]

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(drain(settings, stop=stop))
        held, t0 = 0, time.time()
        while held < 6 and time.time() - t0 < 20:
            await asyncio.sleep(0.05)
            held = await asyncio.to_thread(leased)
        sent = len(fake_ollama.embedded_texts())
        stop.set()
        await task
        return held, sent

    held, sent = asyncio.run(scenario())
    assert held == 6, "both batches leased while the first one is embedded"
    assert sent == 3, "only the first batch went to the provider"
    jobs = admin_conn.execute(
        "SELECT lease_id, attempts FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s)", (ids,)
    ).fetchall()
    assert len(jobs) == 6 and all(j["lease_id"] is None and j["attempts"] == 0 for j in jobs), jobs


def test_sigkill_mid_batch_loses_nothing(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    ids = remember(admin_conn, uid, *[f"killed batch {i}" for i in range(10)])
    fake_ollama.delay = 30  # the worker hangs inside the provider call
    settings.lease_seconds = 2
    proc = _spawn_worker(settings)
    try:
        assert _wait_leased(admin_conn, ids) == 10
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    assert (
        admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s)", (ids,)
        ).fetchone()["n"]
        == 10
    ), "the killed worker's jobs are still queued"
    time.sleep(2.2)  # the lease expires
    fake_ollama.delay = 0
    assert asyncio.run(drain(settings)) == 10
    assert (
        admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb.memories WHERE id = ANY(%s) AND embedding IS NOT NULL", (ids,)
        ).fetchone()["n"]
        == 10
    )


def test_sigterm_releases_the_batch_and_exits_cleanly(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    ids = remember(admin_conn, uid, *[f"terminated batch {i}" for i in range(5)])
    fake_ollama.delay = 30
    proc = _spawn_worker(settings)
    try:
        _wait_leased(admin_conn, ids)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=25)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "released batch on shutdown" in out
    jobs = admin_conn.execute(
        "SELECT lease_id, attempts FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s)", (ids,)
    ).fetchall()
    assert len(jobs) == 5 and all(j["lease_id"] is None and j["attempts"] == 0 for j in jobs), jobs


def test_a_batch_that_outlasts_its_lease_stays_with_its_live_worker(settings, admin_conn, user, fake_ollama):
    """A live worker renews its leases while the provider works: a batch taking longer than the
    lease is not handed to another worker, and is stored by the worker that claimed it."""
    uid, _ = user
    texts = [f"slow batch {i}" for i in range(5)]
    ids = remember(admin_conn, uid, *texts)
    fake_ollama.delay = 5  # the provider takes the lease's length twice over
    settings.lease_seconds = 2

    def leases():
        return {
            r["memory_id"]: (r["lease_id"], r["live"])
            for r in admin_conn.execute(
                "SELECT memory_id, lease_id, lease_until > now() AS live FROM memoriesdb.embedding_schedule"
                " WHERE memory_id = ANY(%s)",
                (ids,),
            ).fetchall()
        }

    async def scenario():
        stop_first = asyncio.Event()
        first = asyncio.create_task(drain(settings, stop=stop_first))
        await asyncio.to_thread(_wait_leased, admin_conn, ids)
        claimed = await asyncio.to_thread(leases)
        # a second worker, looking for ready jobs the whole time the first one embeds
        stop = asyncio.Event()
        pool = db.make_pool(settings.dsn)
        await pool.open()
        provider = OllamaProvider(settings)
        second = EmbedWorker(settings, pool, provider, name="second")
        task = asyncio.create_task(second.run(stop))
        await asyncio.sleep(3)  # past the lease the batch was claimed with
        held = await asyncio.to_thread(leases)
        if held != claimed:
            # lost: without renewal the two workers take the batch from each other forever
            stop_first.set()
        done = await first
        stop.set()
        await task
        await pool.close()
        await provider.aclose()
        return claimed, held, done, second.done

    claimed, held, done, stolen = asyncio.run(scenario())
    assert len(claimed) == 5 and all(live for _, live in claimed.values())
    assert held == claimed, "past the first lease, the same leases are still held, and live"
    assert stolen == 0, "the second worker got none of the batch"
    assert done == 5, "the worker that claimed the batch stored it"
    assert sorted(fake_ollama.embedded_texts()) == sorted(texts), "each text embedded once"


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [("lease_seconds", 3600, "embedding_max_lease_seconds"), ("batch_size", 10000, "embedding_max_batch_size")],
)
def test_a_worker_configured_beyond_the_caps_refuses_to_start(settings, admin_conn, user, fake_ollama, field, value, key):
    uid, _ = user
    [m] = remember(admin_conn, uid, "not for a greedy worker")
    setattr(settings, field, value)
    with pytest.raises(ConfigurationError, match=key):
        asyncio.run(drain(settings))
    job = job_of(admin_conn, m)
    assert job["attempts"] == 0 and job["lease_id"] is None, "no job was claimed"


def test_the_citus_statistics_loop_ends_at_once_on_a_single_node(settings):
    """`memoriesdb worker` starts the Citus shard-statistics loop beside the embedders: on a single node (no
    citus_refresh_search_statistics()) it returns at once, measuring nothing, and never keeps the worker up."""
    from memoriesdb_runner.citus_stats import run_search_statistics

    started = time.monotonic()
    assert asyncio.run(run_search_statistics(settings, asyncio.Event())) == 0
    assert time.monotonic() - started < 5
