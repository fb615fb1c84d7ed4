"""`memoriesdb import-embeddings FILE --model NAME`: stores vectors a user already has (issue 15).

The file is JSONL (one object a line) or Parquet (the same columns): memory_id, content_hash (hex SHA-256
of the content, as memories.content_hash holds it) or text (the content itself, hashed here the way the
ledger hashes it: SHA-256 of its UTF-8 bytes), and embedding (a list of numbers). It is streamed in batches;
each batch is one call of the ledger's import_embeddings(), which stores a row only where the memory's
CURRENT content hash matches and says why it refused the others. Rows this side cannot even send (bad JSON,
missing fields, non-numeric or non-finite vectors, the wrong length) are rejected here, with their line."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from . import db
from .errors import RunnerError
from .settings import Settings

MAX_BATCH = 5000  # import_embeddings() refuses more rows per call (MDB12)
EXAMPLES = 10  # rejected rows shown with their line number
FLOAT32_MAX = 3.4028234663852886e38
# what the ledger's outcomes mean, shown with the first rejected rows
EXPLAIN = {
    "hash_mismatch": "the memory's current content is not the one hashed (changed since: the vector is stale)",
    "no_memory": "no such memory (or forgotten)",
    "invalid_hash": "content_hash is not 64 hex digits",
    "wrong_dimension": "not the model's dimension",
    "invalid_vector": "zero, NaN or infinite",
    "duplicate": "the same memory earlier in the batch (the first row counts)",
}


@dataclass
class ImportResult:
    read: int = 0
    stored: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> rows
    examples: list[tuple[int, str]] = field(default_factory=list)  # (line or row number, reason), the first few

    def reject(self, line: int, reason: str, detail: str | None = None) -> None:
        self.rejected[reason] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((line, f"{reason}: {detail}" if detail else reason))

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class Malformed(ValueError):
    """A row that cannot be sent: the reason is its message."""


def _hex_hash(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if not isinstance(value, str):
        raise Malformed("content_hash is not a string")
    text = value.strip()
    if text[:2] in ("\\x", "0x"):  # as psql prints a bytea, or as a hex literal
        text = text[2:]
    return text.lower()  # 64 hex digits are checked by the ledger (invalid_hash)


def parse_row(obj: object, dimension: int) -> tuple[str, str, np.ndarray]:
    """(memory id, hex content hash, float32 vector) of one input row; Malformed otherwise. A vector of the
    wrong length, or with NaN, infinite or out-of-range numbers, raises ValueError with the outcome's name
    (wrong_dimension, invalid_vector) as the ledger would have said it."""
    if not isinstance(obj, dict):
        raise Malformed("not a JSON object")
    mid = obj.get("memory_id")
    if isinstance(mid, bytes | bytearray) and len(mid) == 16:
        mid = str(uuid.UUID(bytes=bytes(mid)))
    try:
        mid = str(uuid.UUID(str(mid))) if mid is not None else None
    except ValueError:
        mid = None
    if mid is None:
        raise Malformed("memory_id missing or not a UUID")
    if obj.get("content_hash") is not None:
        h = _hex_hash(obj["content_hash"])
    elif isinstance(obj.get("text"), str):
        h = hashlib.sha256(obj["text"].encode("utf-8")).hexdigest()
    else:
        raise Malformed("neither content_hash nor text")
    vec = obj.get("embedding")
    if not isinstance(vec, list | tuple) or not vec:
        raise Malformed("embedding missing or not a list of numbers")
    try:
        a = np.asarray(vec)
    except (TypeError, ValueError):  # ragged nesting
        raise Malformed("embedding holds something other than numbers") from None
    if a.ndim != 1 or a.dtype.kind not in "fiu":  # strings, null, booleans, nested lists: not numbers
        raise Malformed("embedding holds something other than numbers")
    if len(a) != dimension:
        raise _Outcome("wrong_dimension", f"{len(a)} numbers, the model has {dimension}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all() or np.abs(a).max() > FLOAT32_MAX:
        raise _Outcome("invalid_vector", "NaN, infinite or out of range")
    return mid, h, a.astype(np.float32)  # sent in binary (pgvector's adapter): the ledger stores real


class _Outcome(ValueError):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome


def is_parquet(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PAR1"


def jsonl_rows(path: Path) -> Iterator[tuple[int, object, int]]:
    """(line number, parsed object or Malformed, bytes read so far); blank lines are skipped."""
    done = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            done += len(raw)
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw.decode("utf-8")), done
            except UnicodeDecodeError:
                yield n, Malformed("not UTF-8"), done
            except json.JSONDecodeError as exc:
                yield n, Malformed(f"invalid JSON ({exc.msg}, column {exc.colno})"), done


def parquet_rows(path: Path, batch: int) -> Iterator[tuple[int, object, int]]:
    """(row number, row as a dict, rows read so far) of a Parquet file, a record batch at a time."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # the optional extra
        raise RunnerError("reading Parquet needs pyarrow: pip install 'memoriesdb-runner[parquet]'") from exc
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors are many
        raise RunnerError(f"{path}: not a readable Parquet file ({exc})") from exc
    n = 0
    batches = pf.iter_batches(batch_size=batch)
    while True:
        try:
            record_batch = next(batches, None)
        except Exception as exc:  # a damaged row group
            raise RunnerError(f"{path}: unreadable Parquet after row {n} ({exc})") from exc
        if record_batch is None:
            return
        for r in record_batch.to_pylist():
            n += 1
            yield n, r, n


def total_of(path: Path, parquet: bool) -> int:
    if not parquet:
        return path.stat().st_size
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # pyarrow's errors are many
        raise RunnerError(f"{path}: not a readable Parquet file ({exc})") from exc


async def import_file(
    settings: Settings,
    path: Path,
    model: str,
    batch: int = 500,
    console: Console | None = None,
    result: ImportResult | None = None,
) -> ImportResult:
    """Streams FILE into import_embeddings() in batches; returns the counts. RunnerError (exit 1) for a
    file that cannot be read; the ledger's MDB16/MDB31 for an unknown or retired model before any row."""
    if not 1 <= batch <= MAX_BATCH:
        raise RunnerError(f"--batch must be 1 to {MAX_BATCH} (import_embeddings() takes at most {MAX_BATCH} rows a call)")
    result = result if result is not None else ImportResult()
    parquet = is_parquet(path)
    conn = await db.connect(settings.dsn)
    async with conn:
        # the model is checked first (MDB16, MDB31), by the function itself with no row
        await db.rows(conn, "import_embeddings", model=model, memory_ids=[], content_hashes=[], embeddings=[])
        dimension = (await db.row(conn, "model_dimension", model=model))["dimension"]
        rows = parquet_rows(path, batch) if parquet else jsonl_rows(path)
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            TextColumn("{task.fields[read]} read, {task.fields[stored]} stored, {task.fields[rejected]} rejected"),
            TimeElapsedColumn(),
            console=console,
            disable=console is None,
        ) as bar:
            task = bar.add_task("import", total=total_of(path, parquet), read=0, stored=0, rejected=0)
            pending: list[tuple[int, str, str, np.ndarray]] = []
            position = 0

            async def flush() -> None:
                if pending:  # a call stores its rows in its own transaction: Ctrl-C waits for it and its counts
                    await db.uninterrupted(store_pending())

            async def store_pending() -> None:
                out = await db.rows(
                    conn,
                    "import_embeddings",
                    model=model,
                    memory_ids=[p[1] for p in pending],
                    content_hashes=[p[2] for p in pending],
                    embeddings=[p[3] for p in pending],
                )
                for (line, *_), r in zip(pending, out, strict=True):
                    if r["outcome"] == "stored":
                        result.stored += 1
                    else:
                        result.reject(line, r["outcome"], EXPLAIN.get(r["outcome"]))
                pending.clear()

            for line, obj, position in rows:
                result.read += 1
                try:
                    if isinstance(obj, Malformed):
                        raise obj
                    pending.append((line, *parse_row(obj, dimension)))
                except Malformed as exc:
                    result.reject(line, "malformed", str(exc))
                except _Outcome as exc:
                    result.reject(line, exc.outcome, str(exc))
                if len(pending) >= batch:
                    await flush()
                if result.read % 100 == 0:
                    bar.update(task, completed=position, read=result.read, stored=result.stored, rejected=result.rejected_total)
            await flush()
            bar.update(task, completed=position, read=result.read, stored=result.stored, rejected=result.rejected_total)
    return result
