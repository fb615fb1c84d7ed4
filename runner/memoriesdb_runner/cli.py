"""memoriesdb: the runner's command line."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path

import click
import psycopg
import psycopg.rows
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import admin, db, metrics
from .errors import LedgerError, RunnerError, ledger_error
from .logs import configure
from .providers import make_provider
from .settings import Settings
from .vindex import VindexWorker
from .worker import EmbedWorker, check_dimension

console = Console()
log = structlog.get_logger("memoriesdb")


@click.group(context_settings={"auto_envvar_prefix": "MEMORIESDB", "show_default": True})
@click.option("--json", "json_logs", is_flag=True, default=None, help="JSON log lines (for containers).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR.")
@click.pass_context
def main(ctx: click.Context, json_logs: bool | None, log_level: str | None) -> None:
    """MemoriesDB runner: embedding worker, status, ingest, search, demo.

    Configuration comes from MEMORIESDB_* environment variables and .env (see README)."""
    overrides = {k: v for k, v in {"json_logs": json_logs, "log_level": log_level}.items() if v is not None}
    settings = Settings(**overrides)
    configure(settings.log_level, settings.json_logs)
    ctx.obj = settings


# --- workers --------------------------------------------------------------------

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


async def run_workers(settings: Settings, kinds: set[str], *, until_empty: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    jobs = []
    if "embed" in kinds:
        jobs.append(run_embed_workers(settings, until_empty=until_empty, stop=stop))
    if "vindex" in kinds:
        jobs.append(run_vindex_worker(settings, stop, until_empty=until_empty))
    await asyncio.gather(*jobs)


async def run_embed_workers(settings: Settings, *, until_empty: bool = False, install_signals: bool = True,
                            provider=None, stop: asyncio.Event | None = None) -> int:
    if stop is None:
        stop = asyncio.Event()
    elif install_signals:
        install_signals = False  # the caller owns the signals
    if install_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    own_provider = provider is None
    provider = provider or make_provider(settings)
    pool = db.make_pool(settings.dsn, max_size=settings.concurrency + 2)
    await pool.open(wait=True)
    try:
        dim = await check_dimension(pool, provider, settings.max_retries)   # before any job is claimed
        metrics.READY.set()
        log.info("embedding worker ready", provider=settings.provider, model=provider.model, dim=dim,
                 concurrency=settings.concurrency, batch_size=settings.batch_size)
        workers = [EmbedWorker(settings, pool, provider, name=None if settings.concurrency == 1 else f"w{i}")
                   for i in range(settings.concurrency)]
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
    while not stop.is_set():
        try:
            async with pool.connection() as conn:
                s = await (await conn.execute(db.q("embedding_queue_status"))).fetchone()
                refused = await (await conn.execute(db.q("access_refusals"), {"since": "1 hour"})).fetchall()
            for state in ("pending", "leased", "dead"):
                metrics.QUEUE_DEPTH.labels(state).set(s[state])
            metrics.REFUSALS_LAST_HOUR.clear()   # a (function, sqlstate) with none in the hour disappears
            for r in refused:
                metrics.REFUSALS_LAST_HOUR.labels(r["function"], r["sqlstate"]).set(r["attempts"])
        except Exception as exc:
            log.warning("queue status failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=15)
        except TimeoutError:
            pass


@main.command()
@click.argument("kind", type=click.Choice(["embed", "vindex", "all"]))
@click.option("--until-empty", is_flag=True, help="Exit once the queue has no ready job.")
@click.pass_obj
def worker(settings: Settings, kind: str, until_empty: bool) -> None:
    """Run queue workers until SIGTERM: embed (embedding queue), vindex (memory_graph refreshes), or all."""
    _run(run_workers(settings, {"embed", "vindex"} if kind == "all" else {kind}, until_empty=until_empty))


# --- status -----------------------------------------------------------------------

@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Queue depths, dead jobs with their errors, embeddings per model, last refresh, refused attempts."""
    async def collect() -> dict:
        conn = await db.connect(settings.dsn)
        async with conn:
            async def rows(name, **params):
                return await (await conn.execute(db.q(name), params)).fetchall()
            return {"queue": (await rows("embedding_queue_status"))[0],
                    "dead": await rows("dead_embedding_jobs", max_rows=20),
                    "models": await rows("embedding_models"),
                    "vindexing": (await rows("vindexing_status"))[0],
                    "refusals_last_hour": await rows("access_refusals", since="1 hour")}
    data = _run(collect())
    data["pools"] = pgbouncer_pools(settings)
    if as_json:
        click.echo(json.dumps(data, default=str, indent=2))
        return
    q = data["queue"]
    console.print(f"[bold]embedding queue[/]: {q['pending']} pending, {q['leased']} leased, {q['dead']} dead"
                  + (f"; oldest since {q['oldest_pending']:%Y-%m-%d %H:%M:%S}" if q["oldest_pending"] else ""))
    if data["dead"]:
        t = Table("memory", "attempts", "dead since", "error", title="dead jobs (newest first)")
        for d in data["dead"]:
            t.add_row(str(d["memory_id"]), str(d["attempts"]), _when(d["dead_at"]), d["last_error"])
        console.print(t)
    t = Table("model", "memories", "newest", title="embeddings per model")
    for m in data["models"]:
        t.add_row(m["model"], str(m["memories"]), _when(m["newest"]))
    console.print(t)
    if data["pools"] is None:
        console.print("[bold]pgbouncer[/]: admin console not reachable (MEMORIESDB_PGBOUNCER_ADMIN_DSN)")
    else:
        t = Table("database", "user", "clients active", "clients waiting", "servers active", "servers idle", "max wait s",
                  title="pgbouncer pools")
        for p in data["pools"]:
            t.add_row(p["database"], p["user"], str(p["cl_active"]), str(p["cl_waiting"]), str(p["sv_active"]),
                      str(p["sv_idle"]), str(p["maxwait"]))
        console.print(t)
    refused = data["refusals_last_hour"]
    console.print(f"[bold]refused attempts, last hour[/]: {sum(r['attempts'] for r in refused)}")
    if refused:
        t = Table("function", "sqlstate", "attempts", "actors", "no context", "latest", title="refused attempts (access log)")
        for r in refused:
            t.add_row(r["function"], r["sqlstate"], str(r["attempts"]), str(r["actors"]), str(r["no_context"]), _when(r["last_at"]))
        console.print(t)
    v = data["vindexing"]
    console.print(f"[bold]vindexing[/]: {v['pending']} pending; last refresh "
                  + (f"{v['last_refresh_at']:%Y-%m-%d %H:%M:%S} ({v['last_refresh_ms']:.0f} ms)" if v["last_refresh_at"] else "never"))


def _when(ts) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S}" if ts else "-"


def pgbouncer_pools(settings: Settings) -> list[dict] | None:
    """SHOW POOLS on PgBouncer's admin console (simple query protocol), or None if unreachable."""
    try:
        with psycopg.connect(settings.pgbouncer_admin_dsn, autocommit=True, connect_timeout=2,
                             cursor_factory=psycopg.ClientCursor, row_factory=psycopg.rows.dict_row) as conn:
            return [r for r in conn.execute("SHOW POOLS").fetchall() if r["database"] != "pgbouncer"]
    except psycopg.Error:
        return None


# --- user-facing commands: ingest, search ------------------------------------------

user_options = [
    click.option("--api-key", envvar="MEMORIESDB_API_KEY", help="Act as the user this key belongs to."),
    click.option("--user", "user_id", type=click.UUID, help="Act as this user id (the application is trusted to set it)."),
]


def with_user(f):
    for option in reversed(user_options):
        f = option(f)
    return f


async def _become(conn: psycopg.AsyncConnection, api_key: str | None, user_id: uuid.UUID | None) -> None:
    """Set the user context for the current transaction only."""
    if api_key:
        await conn.execute(db.q("authenticate"), {"api_key": api_key})
    elif user_id:
        await conn.execute(db.q("act_as"), {"user_id": str(user_id)})
    else:
        raise click.UsageError("say who you are: --api-key (or MEMORIESDB_API_KEY) or --user")


def _records(path: Path):
    """(line number, content, metadata) per line: JSONL objects with content/metadata, else plain text lines."""
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


async def ingest_file(settings: Settings, path: Path, api_key: str | None, user_id: uuid.UUID | None,
                      batch: int = 500, progress: bool = True) -> tuple[int, list[tuple[int, str]]]:
    """Remember every line through the API, a transaction per batch; bad lines are reported, not lost silently."""
    records = list(_records(path))
    rejected = [(n, err) for n, _, _, err in records if err]
    good = [(n, c, m) for n, c, m, err in records if not err]
    stored = 0
    conn = await db.connect(settings.app_dsn, autocommit=False)
    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=not progress) as bar:
        task = bar.add_task("ingest", total=len(good))
        async with conn:
            for i in range(0, len(good), batch):
                chunk = good[i:i + batch]
                async with conn.transaction():
                    await _become(conn, api_key, user_id)
                    for n, content, metadata in chunk:
                        try:
                            async with conn.transaction():   # a savepoint: one bad line spoils nothing else
                                await conn.execute(db.q("remember"), {"content": content, "metadata": json.dumps(metadata)})
                            stored += 1
                        except psycopg.Error as exc:
                            err = ledger_error(exc)
                            if not isinstance(err, LedgerError) or err.sqlstate in ("MDB01", "MDB02", "MDB10"):
                                raise err from exc
                            rejected.append((n, str(err)))
                bar.advance(task, len(chunk))
    return stored, sorted(rejected)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_user
@click.option("--batch", default=500, help="Lines per transaction.")
@click.pass_obj
def ingest(settings: Settings, file: Path, api_key: str | None, user_id: uuid.UUID | None, batch: int) -> None:
    """Remember every line of FILE (JSONL with content/metadata, or plain text) as the user."""
    stored, rejected = _run(ingest_file(settings, file, api_key, user_id, batch))
    click.echo(f"remembered {stored} memories from {file}; {len(rejected)} lines rejected")
    for n, err in rejected[:50]:
        click.echo(f"  line {n}: {err}")
    if len(rejected) > 50:
        click.echo(f"  ... and {len(rejected) - 50} more")
    if rejected:
        sys.exit(2)


async def search_text(settings: Settings, text: str, api_key: str | None, user_id: uuid.UUID | None,
                      k: int = 10, filter_: dict | None = None, provider=None) -> list[dict]:
    own_provider = provider is None
    provider = provider or make_provider(settings)
    try:
        vector = (await provider.embed([text]))[0]
    finally:
        if own_provider:
            await provider.aclose()
    conn = await db.connect(settings.app_dsn, autocommit=False)
    async with conn:
        async with conn.transaction():
            await _become(conn, api_key, user_id)
            cur = await conn.execute(db.q("search"), {"query": vector, "k": k, "filter": json.dumps(filter_ or {})})
            return await cur.fetchall()


def print_results(rows: list[dict], title: str) -> None:
    t = Table("similarity", "content", "owner", title=title)
    for r in rows:
        t.add_row(f"{r['similarity']:.3f}", r["content"], str(r["owner_id"])[:8])
    console.print(t)


@main.command()
@click.argument("text")
@with_user
@click.option("-k", default=10, help="How many results.")
@click.option("--filter", "filter_", default="{}", help='JSON filter, e.g. \'{"metadata": {"topic": "x"}}\'.')
@click.pass_obj
def search(settings: Settings, text: str, api_key: str | None, user_id: uuid.UUID | None, k: int, filter_: str) -> None:
    """Embed TEXT with the configured provider and search the user's visible memories."""
    rows = _run(search_text(settings, text, api_key, user_id, k, json.loads(filter_)))
    print_results(rows, f"search: {text!r}")


# --- deploy and demo ------------------------------------------------------------------

@main.command()
@click.option("--logins/--no-logins", default=True, help="Create the local login roles memoriesdb_runner and memoriesdb_client.")
@click.pass_obj
def deploy(settings: Settings, logins: bool) -> None:
    """sqitch deploy the ledger over the direct admin connection (idempotent)."""
    click.echo(admin.deploy(settings.admin_dsn).strip())
    if logins:
        admin.ensure_local_logins(settings.admin_dsn)


@main.command()
@click.pass_obj
def demo(settings: Settings) -> None:
    """The main job on the local defaults: deploy, two users, ingest, embed, search, isolation."""
    from .demo import run_demo
    _run(run_demo(settings, console))


def _run(coro):
    try:
        return asyncio.run(coro)
    except (RunnerError, psycopg.Error) as exc:
        err = ledger_error(exc) if isinstance(exc, psycopg.Error) else exc
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
