"""Ingest (`memoriesdb ingest`): remember every line of a file through the API, as one user.

The file is streamed (one batch of lines in memory at a time, a transaction per batch), a bad line is
reported with its number and the reason and the run goes on, and every line is stored through
remember_once() under an idempotency key, so running the same file again, or again after Ctrl-C,
stores nothing twice.

The key of a line is the SHA-256 (hex) of the source, the line number and the line's bytes:
  source: --source if given, else the file's absolute path (resolved: the same file named from any
          directory or through a symlink is the same source; a copy or a moved file is a new source,
          unless --source names it);
  line number: a file that repeats a line on purpose stores it each time;
  line bytes: a line edited in place is a new memory (the old one stays; revise or forget it).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from . import db
from .errors import LedgerError, ledger_error
from .settings import Settings

# Errors of one line's data: reported for that line, the run goes on. Anything else (no context,
# bad key, connection lost) stops the run: a re-run resumes where it stopped.
LINE_SQLSTATES = {"MDB05", "MDB06"}


@dataclass
class IngestResult:
    stored: int = 0
    skipped: int = 0  # already stored by an earlier run (same key)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


@dataclass
class Line:
    number: int
    key: str
    content: str | None = None
    metadata: str | None = None  # JSON text
    error: str | None = None


def line_key(source: str, number: int, raw: bytes) -> str:
    """The idempotency key of a line: unambiguous field boundaries (lengths), versioned."""
    src = source.encode("utf-8", "surrogateescape")
    h = hashlib.sha256(b"memoriesdb-ingest-v1\0%d:" % len(src) + src + b"\0%d\0" % number)
    h.update(raw)
    return h.hexdigest()


def _parse(raw: bytes, jsonl: bool) -> tuple[str | None, str | None, str | None]:
    """(content, metadata JSON, error) of one line without its line break."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, None, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    if not jsonl:
        if "\x00" in text:
            return None, None, "contains a NUL character (PostgreSQL text cannot hold it)"
        return text, "{}", None
    try:
        obj = json.loads(text)
    except RecursionError:
        return None, None, "JSON nested too deeply"
    except ValueError as exc:
        return None, None, f"invalid JSON line: {exc}"
    if not isinstance(obj, dict) or "content" not in obj:
        return None, None, 'invalid JSON line: each line must be an object with "content" (and optional "metadata")'
    content, metadata = obj["content"], obj.get("metadata", {})
    if not isinstance(content, str):
        return None, None, f"content must be a string, not {type(content).__name__}"
    if "\x00" in content:
        return None, None, "content contains a NUL character (PostgreSQL text cannot hold it)"
    try:
        meta = json.dumps(metadata)
    except (RecursionError, ValueError):
        return None, None, "metadata nested too deeply"
    if "\\u0000" in meta:
        return None, None, "metadata contains a NUL character (PostgreSQL jsonb cannot hold it)"
    return content, meta, None


def read_lines(path: Path, source: str) -> Iterator[tuple[Line, int]]:
    """(Line, bytes read) for every non-blank line, streamed: JSONL (.jsonl, .ndjson) objects with
    content and metadata, else plain text lines."""
    jsonl = path.suffix in (".jsonl", ".ndjson")
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            size = len(raw)
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                yield Line(n, "", error=None), size  # blank: counts for the progress bar only
                continue
            content, metadata, error = _parse(raw, jsonl)
            yield Line(n, line_key(source, n, raw), content, metadata, error), size


def _batches(lines: Iterator[tuple[Line, int]], size: int) -> Iterator[tuple[list[Line], int]]:
    batch, nbytes = [], 0
    for line, n in lines:
        nbytes += n
        if line.key:
            batch.append(line)
        if len(batch) >= size:
            yield batch, nbytes
            batch, nbytes = [], 0
    if batch or nbytes:
        yield batch, nbytes


async def ingest_file(
    settings: Settings,
    path: Path,
    api_key: str | None,
    user_id: uuid.UUID | None,
    batch: int = 500,
    console: Console | None = None,
    source: str | None = None,
    result: IngestResult | None = None,
) -> IngestResult:
    """Remember every line of path as the user, a transaction per batch of lines; pass result to
    keep the counts when the run is interrupted. A progress bar (bytes) on console if given."""
    result = result if result is not None else IngestResult()
    source = source or str(path.resolve())
    conn = await db.connect(db.user_dsn(settings, api_key), autocommit=False)
    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        disable=console is None,
        transient=False,
    ) as bar:
        task = bar.add_task("ingest", total=path.stat().st_size, counts="")
        async with conn:
            for lines, nbytes in _batches(read_lines(path, source), batch):
                done = IngestResult()  # counted into result once the batch is committed
                # The batch's transaction begins with the first statement (autocommit off); an
                # exception or Ctrl-C before the COMMIT leaves `async with conn` to roll it back.
                await db.become(conn, api_key, user_id)
                for line in lines:
                    await _store(conn, line, done)  # a savepoint per line
                await db.uninterrupted(_commit_and_count(conn, done, result))
                bar.update(
                    task, advance=nbytes, counts=f"{result.stored} stored, {result.skipped} already, {len(result.bad)} bad"
                )
    return result


async def _commit_and_count(conn: psycopg.AsyncConnection, done: IngestResult, result: IngestResult) -> None:
    """COMMIT the batch, then add its counts to result. Run under db.uninterrupted(): Ctrl-C cannot
    split the two, so the counts printed on interrupt are those of the committed lines."""
    await conn.commit()
    result.stored += done.stored
    result.skipped += done.skipped
    result.bad += done.bad


async def _store(conn: psycopg.AsyncConnection, line: Line, result: IngestResult) -> None:
    if line.error:
        result.bad.append((line.number, line.error))
        return
    for _attempt in range(2):
        try:
            async with conn.transaction():  # a savepoint: one bad line spoils nothing else
                row = await db.row(conn, "remember_once", content=line.content, metadata=line.metadata, key=line.key)
        except psycopg.Error as exc:
            err = ledger_error(exc)
            if isinstance(err, LedgerError) and err.sqlstate == "MDB28":
                continue  # a concurrent run stored this line first: asking again returns its memory
            if isinstance(err, LedgerError) and err.sqlstate in LINE_SQLSTATES:
                result.bad.append((line.number, str(err)))
                return
            if exc.diag.sqlstate and exc.diag.sqlstate.startswith("22"):  # data exception (e.g. bad escape in JSON)
                result.bad.append((line.number, f"{exc.diag.message_primary} [{exc.diag.sqlstate}]"))
                return
            raise err from exc
        if row["created"]:
            result.stored += 1
        else:
            result.skipped += 1
        return
    raise LedgerError("MDB28", f"line {line.number}: idempotency key used by a concurrent call twice")
