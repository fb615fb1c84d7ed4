"""On a Citus cluster: the shards' row counts that search()'s plan choice reads (docs/citus.md, §12b). The
coordinator's tables have no statistics of their own; memoriesdb.citus_refresh_search_statistics() measures
every shard of memories, and this loop runs it in `memoriesdb worker` now and every
citus_statistics_interval_seconds. A single-node ledger has no such function: the loop ends at once."""

from __future__ import annotations

import asyncio

import structlog

from . import db
from .settings import Settings

log = structlog.get_logger("memoriesdb.citus")


async def run_search_statistics(settings: Settings, stop: asyncio.Event, *, until_empty: bool = False) -> int:
    """How many times the shards were measured (0 on a single node). Database faults are retried with
    backoff, never fatal; with until_empty, once."""
    pool = db.make_pool(settings.dsn, max_size=1, timeout=settings.db_timeout_seconds)
    await pool.open(wait=False)

    async def call(name: str) -> dict:
        async with pool.connection() as conn:
            return await db.row(conn, name)

    try:
        # --until-empty gives up with the database (the embedders report the outage), a service waits it out
        give_up = settings.db_timeout_seconds if until_empty else None
        found = await db.retry_db(
            "citus_statistics", lambda: call("citus_has_search_statistics"), stop=stop, log=log, give_up_after=give_up
        )
        if not found["present"]:
            return 0
        runs = 0
        while True:
            row = await db.retry_db(
                "citus_statistics", lambda: call("citus_refresh_search_statistics"), stop=stop, log=log, give_up_after=give_up
            )
            runs += 1
            log.info("citus search statistics measured", shards=row["shards"])
            if until_empty or await db.sleep_or_stop(stop, settings.citus_statistics_interval_seconds):
                return runs
    except db.DatabaseUnavailable:
        return 0
    finally:
        await pool.close(timeout=1)
