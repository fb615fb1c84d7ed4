"""`memoriesdb models reindex`: rebuild a model's HNSW index with the graph settings of today
(search_hnsw_m, search_hnsw_ef_construction), searches and writes going on meanwhile.

An index keeps the parameters it was built with, so a ledger whose index predates a change of those
settings (pgvector's defaults, m 16 / ef_construction 64, before v0.5) keeps its recall until it is
rebuilt. CREATE INDEX CONCURRENTLY runs in no transaction block, so no SQL function can do it: the
ledger's memoriesdb_internal.model_index_rebuild() says which statements to run, in order, and this
runs them as the deployer (MEMORIESDB_ADMIN_DSN), each on its own, with a progress bar from
pg_stat_progress_create_index. Stopped halfway (Ctrl-C, a lost connection), the same command resumes:
the steps depend on what is there.
"""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import db
from .errors import RunnerError
from .settings import Settings


async def _watch(settings: Settings, pid: int, vectors: int, bar: Progress, task, done: asyncio.Event) -> None:
    """Polls the build's progress (another connection) until done; vectors: the total when the build
    reports none (pgvector's HNSW build counts the tuples it has loaded only)."""
    conn = await db.connect(settings.admin_dsn)
    async with conn:
        while not done.is_set():
            row = await db.row(conn, "index_build_progress", pid=pid)
            if row is not None:
                total = row["tuples_total"] or vectors or None
                bar.update(task, description=f"build: {row['phase']}", completed=row["tuples_done"], total=total)
            try:
                await asyncio.wait_for(done.wait(), 0.5)
            except TimeoutError:
                pass


async def rebuild(settings: Settings, model: str, console: Console | None, maintenance_work_mem: str | None = None) -> dict:
    """Runs the rebuild's steps; returns {steps, seconds, bytes, options} of the index as it ends."""
    started = time.monotonic()
    conn = await db.connect(settings.admin_dsn)
    async with conn:
        if not (await db.row(conn, "reindex_lock", name=model))["locked"]:
            # two at once would drop each other's copy, and the old index with it
            raise RunnerError(f"another `memoriesdb models reindex {model}` is running; wait for it (it resumes if stopped)")
        steps = await db.rows(conn, "model_index_rebuild", name=model)  # (MDB16, MDB31) what is there once locked
        vectors = (await db.row(conn, "model_vector_count", name=model))["vectors"]
        if maintenance_work_mem:  # the build's memory: an HNSW graph that does not fit is built far slower
            await conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (maintenance_work_mem,))
        pid = conn.info.backend_pid
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=console is None,
        ) as bar:
            for s in steps:
                if console is not None:
                    console.print(f"step {s['step']}/{len(steps)}: {s['action']}", highlight=False)
                if not s["statement"].startswith("CREATE INDEX"):
                    await conn.execute(s["statement"])
                    continue
                task = bar.add_task("build", total=None)
                done = asyncio.Event()
                watcher = asyncio.create_task(_watch(settings, pid, vectors, bar, task, done))
                try:
                    await conn.execute(s["statement"])
                finally:
                    done.set()
                    await watcher
        info = await db.row(conn, "model_index_info", name=model)
    return {"steps": len(steps), "seconds": time.monotonic() - started, **(info or {"bytes": None, "options": ""})}
