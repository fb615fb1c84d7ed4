"""The workers as a service: their pools, signals, readiness and the queue metrics (`memoriesdb worker`)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from . import db, metrics
from .anchor import Anchor, run_anchor_loop
from .citus_stats import run_search_statistics
from .errors import TransientProviderError
from .providers import make_provider
from .settings import Settings
from .vindex import VindexWorker
from .worker import EmbedWorker, check_bounds, check_dimension

log = structlog.get_logger("memoriesdb")


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_workers(settings: Settings, kinds: set[str], *, until_empty: bool = False) -> None:
    """The embed and/or vindex workers and the anchor in one process until SIGTERM (or an empty queue),
    with /metrics if configured. The anchor runs when asked for and a signing key is configured; a
    missing or unsafe key or a bad store stops the start before any worker claims anything."""
    anchor = None
    if "anchor" in kinds:
        if settings.anchor_key_file or kinds == {"anchor"}:
            anchor = Anchor(settings)
        else:
            log.info("anchoring off: no MEMORIESDB_ANCHOR_KEY_FILE")
    stop = asyncio.Event()
    _stop_on_signals(stop)
    metrics.HEALTH.stale_after = settings.health_stale_seconds
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    jobs = []
    if "embed" in kinds:
        jobs.append(run_embed_workers(settings, until_empty=until_empty, stop=stop))
        jobs.append(run_search_statistics(settings, stop, until_empty=until_empty))  # Citus only; else returns at once
    if "vindex" in kinds:
        jobs.append(run_vindex_worker(settings, stop, until_empty=until_empty))
    if anchor is not None:
        if kinds == {"anchor"}:
            metrics.HEALTH.started()  # nothing else to start; a database fault still marks it unready
        jobs.append(run_anchor_loop(settings, stop, until_empty=until_empty, anchor=anchor))
    await asyncio.gather(*jobs)


def _pool(settings: Settings, max_size: int):
    return db.make_pool(settings.dsn, max_size=max_size, timeout=settings.db_timeout_seconds)


async def _until_stopped(aw, stop: asyncio.Event):
    """aw's result, or None at once when stop is set first (aw is cancelled: nothing is claimed yet)."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    return None


async def run_vindex_worker(settings: Settings, stop: asyncio.Event, *, until_empty: bool = False) -> int:
    pool = _pool(settings, 2)
    await pool.open(wait=False)  # a database that is down at start-up is waited for, not fatal
    try:
        worker = VindexWorker(settings, pool)
        metrics.HEALTH.started()
        log.info("vindex worker ready", debounce_seconds=settings.vindex_debounce_seconds)
        await worker.run(stop, until_empty=until_empty)
        return worker.refreshes
    finally:
        await pool.close(timeout=1)


async def _start_embedding(settings: Settings, pool, provider, stop: asyncio.Event) -> int:
    """The start-up checks; database faults and an unreachable provider are waited out (with
    backoff, /readyz 503), a misconfiguration (ConfigurationError, PermanentProviderError) is raised."""
    await db.retry_db("startup", lambda: check_bounds(pool, settings), stop=stop, log=log, beat="startup")
    tries = 0
    while True:
        try:
            return await db.retry_db(
                "startup", lambda: check_dimension(pool, provider, settings.max_retries), stop=stop, log=log, beat="startup"
            )
        except TransientProviderError as exc:
            tries += 1
            metrics.HEALTH.provider(False, str(exc)[:300])
            delay = min(30.0, 2.0 * tries)
            log.warning("provider not answering at start-up; waiting", tries=tries, retry_in=delay, error=str(exc)[:300])
            if await db.sleep_or_stop(stop, delay, "startup"):
                raise db.DatabaseUnavailable("stopping during start-up") from exc


async def run_embed_workers(
    settings: Settings,
    *,
    until_empty: bool = False,
    install_signals: bool = True,
    provider=None,
    stop: asyncio.Event | None = None,
) -> int:
    """settings.concurrency embedding loops on one pool; returns the number of memories embedded."""
    if stop is None:
        stop = asyncio.Event()
        if install_signals:
            _stop_on_signals(stop)
    own_provider = provider is None
    if provider is None:  # the local model takes seconds to load: off the event loop, so SIGTERM is heard
        provider = await _until_stopped(asyncio.to_thread(make_provider, settings), stop)
        if provider is None:
            return 0
    pool = _pool(settings, settings.concurrency + 2)
    await pool.open(wait=False)  # a database that is down at start-up is waited for, not fatal
    try:
        try:
            dim = await _until_stopped(_start_embedding(settings, pool, provider, stop), stop)
        except db.DatabaseUnavailable:
            dim = None
        if dim is None:
            log.info("embedding worker stopped during start-up")
            return 0
        metrics.HEALTH.started()
        metrics.HEALTH.forget("startup")
        log.info(
            "embedding worker ready",
            provider=settings.provider,
            model=provider.model,
            dim=dim,
            concurrency=settings.concurrency,
            batch_size=settings.batch_size,
        )
        workers = [
            EmbedWorker(settings, pool, provider, name=None if settings.concurrency == 1 else f"w{i}")
            for i in range(settings.concurrency)
        ]
        tasks = [asyncio.create_task(w.run(stop, until_empty=until_empty)) for w in workers]
        tasks.append(asyncio.create_task(_watch_queue(pool, stop)))
        await asyncio.gather(*tasks[:-1])
        tasks[-1].cancel()
        done = sum(w.done for w in workers)
        log.info("embedding worker stopped", embedded=done, failed=sum(w.failed for w in workers))
        return done
    finally:
        metrics.HEALTH.forget("startup")
        await pool.close(timeout=1)
        if own_provider:
            await provider.aclose()


async def _watch_queue(pool, stop: asyncio.Event) -> None:
    """Every 15 s: the queue depths and the last hour's refused attempts, as gauges."""
    while not stop.is_set():
        try:
            async with pool.connection() as conn:
                s = await db.row(conn, "embedding_queue_status")
                refused = await db.rows(conn, "access_refusals", since="1 hour")
            for state in ("pending", "leased", "dead"):
                metrics.QUEUE_DEPTH.labels(state).set(s[state])
            metrics.REFUSALS_LAST_HOUR.clear()  # a (function, sqlstate) with none in the hour disappears
            for r in refused:
                metrics.REFUSALS_LAST_HOUR.labels(r["function"], r["sqlstate"]).set(r["attempts"])
        except Exception as exc:
            log.warning("queue status failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=15)
        except TimeoutError:
            pass
