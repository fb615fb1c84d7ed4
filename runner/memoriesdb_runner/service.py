"""The workers as a service: their pools, signals, readiness and the queue metrics (`memoriesdb worker`)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from . import db, metrics
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
    """The embed and/or vindex workers in one process until SIGTERM (or an empty queue), with /metrics if configured."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    jobs = []
    if "embed" in kinds:
        jobs.append(run_embed_workers(settings, until_empty=until_empty, stop=stop))
    if "vindex" in kinds:
        jobs.append(run_vindex_worker(settings, stop, until_empty=until_empty))
    await asyncio.gather(*jobs)


async def run_vindex_worker(settings: Settings, stop: asyncio.Event, *, until_empty: bool = False) -> int:
    pool = db.make_pool(settings.dsn, max_size=2)
    await pool.open(wait=True)
    try:
        worker = VindexWorker(settings, pool)
        metrics.READY.set()
        log.info("vindex worker ready", debounce_seconds=settings.vindex_debounce_seconds)
        await worker.run(stop, until_empty=until_empty)
        return worker.refreshes
    finally:
        await pool.close()


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
    provider = provider or make_provider(settings)
    pool = db.make_pool(settings.dsn, max_size=settings.concurrency + 2)
    await pool.open(wait=True)
    try:
        await check_bounds(pool, settings)  # before any job is claimed
        dim = await check_dimension(pool, provider, settings.max_retries)
        metrics.READY.set()
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
        await pool.close()
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
