"""The vindexing worker: folds pending vindexing_schedule rows into one
REFRESH MATERIALIZED VIEW CONCURRENTLY memory_graph (the ledger's run_vindexing(),
which also takes the advisory lock that keeps to one refresher across runners)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import structlog
from psycopg_pool import AsyncConnectionPool

from . import db, metrics
from .settings import Settings

log = structlog.get_logger("memoriesdb.vindex")


class VindexWorker:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool, name: str | None = None):
        self.settings = settings
        self.pool = pool
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.wake = asyncio.Event()
        self.refreshes = 0
        self.last_refresh: float | None = None

    async def _call(self, operation: str, name: str, stop: asyncio.Event | None, **params) -> dict:
        """One statement, database faults retried with backoff (db.retry_db) until it answers or stop."""

        async def call():
            async with self.pool.connection() as conn:
                return await db.row(conn, name, **params)

        return await db.retry_db(operation, call, stop=stop, log=log, beat="vindex")

    async def pending(self, stop: asyncio.Event | None = None) -> int:
        return (await self._call("vindex_status", "vindexing_status", stop))["pending"]

    async def refresh(self, stop: asyncio.Event | None = None) -> dict:
        row = await self._call("vindex_refresh", "run_vindexing", stop, worker=self.name)
        if row["refreshed"]:
            self.refreshes += 1
            self.last_refresh = time.time()
            log.info("memory_graph refreshed", rows_coalesced=row["rows_coalesced"], ms=round(row["duration_ms"], 1))
        return row

    async def run(self, stop: asyncio.Event, *, until_empty: bool = False) -> None:
        """Until stop: refresh memory_graph when rows are pending. A database fault never ends the
        loop; the refresh is one transaction, so one cut by a fault is simply run again."""
        listener = asyncio.create_task(
            db.listen(self.settings.listen, "memoriesdb_vindexing", self.wake, stop, self.settings.poll_seconds, log)
        )
        try:
            while not stop.is_set():
                metrics.HEALTH.beat("vindex")
                if self.last_refresh:
                    metrics.LAST_REFRESH_AGE.set(time.time() - self.last_refresh)
                try:
                    if await self.pending(stop):
                        # debounce: let a burst of changes land, then refresh once for all of them
                        await _sleep_or_stop(stop, self.settings.vindex_debounce_seconds)
                        await self.refresh(stop)
                        continue
                except db.DatabaseUnavailable:
                    continue  # stopping during an outage
                if until_empty:
                    return
                self.wake.clear()
                await _wait_any(self.wake, stop, self.settings.poll_seconds)
        finally:
            listener.cancel()
            metrics.HEALTH.forget("vindex")


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _wait_any(event: asyncio.Event, stop: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.create_task(event.wait()), asyncio.create_task(stop.wait())]
    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
