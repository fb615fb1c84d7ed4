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

    async def pending(self) -> int:
        async with self.pool.connection() as conn:
            return (await db.row(conn, "vindexing_status"))["pending"]

    async def refresh(self) -> dict:
        async with self.pool.connection() as conn:
            row = await db.row(conn, "run_vindexing", worker=self.name)
        if row["refreshed"]:
            self.refreshes += 1
            self.last_refresh = time.time()
            log.info("memory_graph refreshed", rows_coalesced=row["rows_coalesced"], ms=round(row["duration_ms"], 1))
        return row

    async def run(self, stop: asyncio.Event, *, until_empty: bool = False) -> None:
        listener = asyncio.create_task(
            db.listen(self.settings.listen, "memoriesdb_vindexing", self.wake, stop, self.settings.poll_seconds, log)
        )
        try:
            while not stop.is_set():
                if self.last_refresh:
                    metrics.LAST_REFRESH_AGE.set(time.time() - self.last_refresh)
                if await self.pending():
                    # debounce: let a burst of changes land, then refresh once for all of them
                    await _sleep_or_stop(stop, self.settings.vindex_debounce_seconds)
                    await self.refresh()
                    continue
                if until_empty:
                    return
                self.wake.clear()
                await _wait_any(self.wake, stop, self.settings.poll_seconds)
        finally:
            listener.cancel()


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
