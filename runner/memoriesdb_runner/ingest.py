"""Ingest (`memoriesdb ingest`): remember every line of a file through the API, as one user."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import db
from .errors import LedgerError, ledger_error
from .settings import Settings


def _records(path: Path):
    """(line number, content, metadata, error) per line: JSONL objects with content/metadata, else plain text lines."""
    jsonl = path.suffix in (".jsonl", ".ndjson")
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if not jsonl:
                yield n, line.rstrip("\n"), {}, None
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict) or "content" not in obj:
                    raise ValueError('each line must be an object with "content" (and optional "metadata")')
                yield n, obj["content"], obj.get("metadata", {}), None
            except ValueError as exc:
                yield n, None, None, f"invalid JSON line: {exc}"


async def ingest_file(
    settings: Settings,
    path: Path,
    api_key: str | None,
    user_id: uuid.UUID | None,
    batch: int = 500,
    console: Console | None = None,
) -> tuple[int, list[tuple[int, str]]]:
    """Remember every line through the API, a transaction per batch; bad lines are reported, not lost silently.
    Returns (memories stored, [(line number, why rejected)]); a progress bar on console if given."""
    records = list(_records(path))
    rejected = [(n, err) for n, _, _, err in records if err]
    good = [(n, c, m) for n, c, m, err in records if not err]
    stored = 0
    conn = await db.connect(db.user_dsn(settings, api_key), autocommit=False)
    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
    ) as bar:
        task = bar.add_task("ingest", total=len(good))
        async with conn:
            for i in range(0, len(good), batch):
                chunk = good[i : i + batch]
                async with conn.transaction():
                    await db.become(conn, api_key, user_id)
                    for n, content, metadata in chunk:
                        try:
                            async with conn.transaction():  # a savepoint: one bad line spoils nothing else
                                await db.row(conn, "remember", content=content, metadata=json.dumps(metadata))
                            stored += 1
                        except psycopg.Error as exc:
                            err = ledger_error(exc)
                            if not isinstance(err, LedgerError) or err.sqlstate in ("MDB01", "MDB02", "MDB10"):
                                raise err from exc
                            rejected.append((n, str(err)))
                bar.advance(task, len(chunk))
    return stored, sorted(rejected)
