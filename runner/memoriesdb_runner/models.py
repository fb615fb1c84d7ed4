"""The model registry (`memoriesdb models ...`, `memoriesdb reembed`): several embedding models side by
side. Registering, switching, pausing and retiring are the ledger's functions (models_api.sql); this
module calls them, and follows a re-embedding to its end with a progress bar."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import db
from .safety import safe_text
from .settings import Settings


async def call(settings: Settings, name: str, /, many: bool = False, **params):
    """One statement of queries.sql as the worker login (the operator's role for the registry)."""
    conn = await db.connect(settings.dsn)
    async with conn:
        return await (db.rows if many else db.row)(conn, name, **params)


async def progress(settings: Settings) -> list[dict]:
    """model_progress(): every model with its state and done/total."""
    return await call(settings, "model_progress", many=True)


def filling(rows: list[dict], names: list[str] | None = None) -> list[dict]:
    """The models a re-embedding waits for: those named, else every model that is filling."""
    return [r for r in rows if (r["model"] in names if names else r["state"] == "filling")]


async def wait_filled(
    settings: Settings,
    names: list[str] | None = None,
    *,
    poll_seconds: float = 0.5,
    timeout: float | None = None,
    on_progress=None,
) -> list[dict]:
    """Until every model waited for has done = total (a vector of every memory's current content) or
    has no live job left (only dead ones: `memoriesdb requeue` puts them back). on_progress(rows) is
    called at each poll. Returns the last rows of the models waited for; TimeoutError past timeout."""
    started = time.monotonic()
    while True:
        rows = filling(await progress(settings), names)
        if on_progress is not None:
            on_progress(rows)
        if all(r["done"] >= r["total"] or (r["pending"] + r["leased"] == 0) for r in rows):
            return rows
        if timeout is not None and time.monotonic() - started > timeout:
            raise TimeoutError(f"models still filling after {timeout:g} s")
        await asyncio.sleep(poll_seconds)


def reembed_with_bar(settings: Settings, names: list[str] | None, console: Console, timeout: float | None = None) -> list[dict]:
    """`memoriesdb reembed --wait`: one rich progress bar per model until it is filled."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        tasks: dict[str, int] = {}

        def update(rows: list[dict]) -> None:
            for r in rows:
                if r["model"] not in tasks:
                    tasks[r["model"]] = bar.add_task(safe_text(r["model"]), total=r["total"])
                bar.update(tasks[r["model"]], completed=r["done"], total=r["total"])

        return asyncio.run(wait_filled(settings, names, timeout=timeout, on_progress=update))


def show(rows: list[dict], console: Console) -> None:
    """The registry as a table (model names are data: escaped)."""
    t = Table("model", "provider", "dim", "state", "done", "total", "pending", "leased", "dead", title="embedding models")
    for r in rows:
        t.add_row(
            safe_text(r["model"]),
            safe_text(r["provider"]),
            str(r["dimension"]),
            r["state"],
            str(r["done"]),
            str(r["total"]),
            str(r["pending"]),
            str(r["leased"]),
            str(r["dead"]),
        )
    console.print(t)


def show_calibration(rows: list[dict], target: float, applied: bool, console: Console) -> None:
    """calibrate_search()'s rows: recall@10 and time per query at each ef_search tried, the one chosen."""
    t = Table("ef_search", "recall@10", "index ms/query", "exact ms/query", "", title="HNSW calibration (active model)")
    for r in rows:
        t.add_row(
            str(r["ef_search"]),
            f"{r['recall']:.3f}",
            f"{r['index_ms']:.2f}",
            f"{r['exact_ms']:.2f}",
            ("set" if applied else "would set") if r["chosen"] else "",
        )
    console.print(t)
    chosen = next(r for r in rows if r["chosen"])
    if chosen["recall"] < target:
        console.print(f"[bold]recall@10 {chosen['recall']:.3f} at the largest ef_search: below the target {target:g}[/]")


def show_fraction_calibration(rows: list[dict], target: float, applied: bool, console: Console) -> None:
    """calibrate_search_fraction()'s rows: recall@10 of the index plan at each share of the table tried, the one chosen."""
    title = "search_hnsw_min_fraction (index plan vs share)"
    t = Table("share of the table", "rows", "recall@10", "index ms/query", "", title=title)
    for r in rows:
        t.add_row(
            f"{r['share']:g}",
            str(r["rows_in_share"]),
            "" if r["recall"] is None else f"{r['recall']:.3f}",
            "" if r["index_ms"] is None else f"{r['index_ms']:.2f}",
            ("set" if applied else "would set") if r["chosen"] else "",
        )
    if not rows:
        console.print("search_hnsw_min_fraction: too few memories to measure (kept); such small callers are exact anyway")
        return
    console.print(t)
    if next(r for r in rows if r["chosen"])["recall"] is None:
        console.print(f"[bold]no share reached recall@10 {target:g}: the index plan only for a caller who sees every row[/]")
