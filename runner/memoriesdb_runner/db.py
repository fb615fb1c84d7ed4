"""Connections and the named queries of queries.sql (a procrastinate-style loader)."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from functools import cache
from importlib.resources import files

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from . import metrics

# Faults of the database side that pass: the connection dropped (server restart, PgBouncer restart,
# pg_terminate_backend: 57P01, class 08), the server is starting or shutting down (57P03), no
# connection within the pool's timeout (PoolTimeout), too many connections (53300), a read-only
# server (a standby, or a primary demoted by a failover). The ledger's own errors (MDBxx) are not.
DB_FAULTS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.ReadOnlySqlTransaction)
# Backoff between tries of one database call: 0.5 s doubling to 10 s, with jitter (±25 %): a server
# that is back is found within about 12 s, and a long outage costs a connection attempt every 10 s.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0


class DatabaseUnavailable(Exception):
    """A database call given up on: the worker is stopping (SIGTERM) or its deadline passed."""


@cache
def queries() -> dict[str, str]:
    """{name: statement}; whole-line comments (section headers, notes) are not sent."""
    text = files(__package__).joinpath("queries.sql").read_text()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.M)
    return {
        name: "\n".join(line for line in body.splitlines() if not line.startswith("--")).strip()
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def q(name: str) -> str:
    return queries()[name]


async def row(conn: psycopg.AsyncConnection, name: str, /, **params) -> dict | None:
    """The first row of the statement called name, sent with these parameters."""
    return await (await conn.execute(q(name), params or None)).fetchone()


async def rows(conn: psycopg.AsyncConnection, name: str, /, **params) -> list[dict]:
    """All rows of the statement called name, sent with these parameters."""
    return await (await conn.execute(q(name), params or None)).fetchall()


def composed(name: str, **identifiers: str) -> sql.Composed:
    """A statement of queries.sql whose {placeholders} are identifiers (CREATE ROLE {login}, LISTEN {channel})."""
    return sql.SQL(q(name)).format(**{k: sql.Identifier(v) for k, v in identifiers.items()})


async def _configure(conn: psycopg.AsyncConnection) -> None:
    await register_vector_async(conn)


# Dead peers are found by TCP keepalives (about 25 s) rather than the kernel's two hours.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def make_pool(dsn: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 30.0) -> AsyncConnectionPool:
    """A pool safe behind PgBouncer in transaction mode: no server-side prepared
    statements, no session state; every call runs in its own transaction. timeout: how long a
    caller waits for a connection (PoolTimeout after), and the connect timeout of each attempt."""
    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=timeout,
        kwargs={
            "prepare_threshold": None,
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": max(2, int(timeout)),
            **KEEPALIVES,
        },
        configure=_configure,
        check=AsyncConnectionPool.check_connection,
    )


async def connect(dsn: str, *, autocommit: bool = True) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(
        dsn, autocommit=autocommit, prepare_threshold=None, row_factory=dict_row, connect_timeout=10, **KEEPALIVES
    )
    await register_vector_async(conn)
    return conn


def user_dsn(settings, api_key: str | None) -> str:
    """Where a user-facing command connects: as the untrusted app with an API key, else as the backend."""
    return settings.app_dsn if api_key else settings.backend_dsn


async def become(conn: psycopg.AsyncConnection, api_key: str | None = None, user_id: uuid.UUID | None = None) -> None:
    """Set the user context for the current transaction only: by API key (proven), else by a user id, which
    the ledger believes only from a memoriesdb_backend login (settings.backend_dsn)."""
    if api_key:
        await row(conn, "authenticate", api_key=api_key)
    elif user_id:
        # on Citus a set_config() context would not reach the workers: the ledger's vouch() does
        citus = (await row(conn, "can_vouch"))["present"]
        await row(conn, "vouch" if citus else "act_as", user_id=str(user_id))
    else:
        raise ValueError("no user: pass an API key or a user id")


async def uninterrupted(aw):
    """Await aw to its end even if the caller is cancelled meanwhile (Ctrl-C under asyncio.run), then
    let the cancel go on: a COMMIT (or a call in autocommit) already on the wire finishes and what it
    stored is counted, instead of being stored and left out of the counts printed on interrupt."""
    step = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(step)
    except asyncio.CancelledError:
        if not step.cancelled():
            await step
        raise


async def sleep_or_stop(stop: asyncio.Event | None, seconds: float, beat: str | None = None) -> bool:
    """Sleep, beating the loop's heartbeat every second; True (at once) when stop is set."""
    end = time.monotonic() + seconds
    while True:
        if beat:
            metrics.HEALTH.beat(beat)
        left = end - time.monotonic()
        if stop is not None and stop.is_set():
            return True
        if left <= 0:
            return False
        if stop is None:
            await asyncio.sleep(min(left, 1.0))
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(left, 1.0))
            return True
        except TimeoutError:
            pass


async def _until_stop(aw, stop: asyncio.Event | None, grace: float, beat: str | None):
    """Await aw; once stop is set it has grace seconds more, then it is cancelled (DatabaseUnavailable)."""
    task = asyncio.ensure_future(aw)
    deadline = None
    while True:
        if beat:
            metrics.HEALTH.beat(beat)
        if stop is not None and stop.is_set() and deadline is None:
            deadline = time.monotonic() + grace
        wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        done, _ = await asyncio.wait([task], timeout=wait)
        if done:
            return task.result()
        if deadline is not None and time.monotonic() >= deadline:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
            raise DatabaseUnavailable("stopping")


async def retry_db(
    operation: str,
    call,
    *,
    stop: asyncio.Event | None,
    log,
    beat: str | None = None,
    give_up_after: float | None = None,
    grace: float = 1.0,
):
    """await call() until it succeeds. A database fault (DB_FAULTS) is logged, counted
    (memoriesdb_db_faults_total{operation}), marks the database unready and is tried again after a
    backoff (0.5 s doubling to 10 s, jitter); any other error is raised. Once stop is set, a call in
    flight gets grace seconds and nothing is retried: DatabaseUnavailable, as after give_up_after s."""
    started = time.monotonic()
    tries = 0
    while True:
        try:
            result = await _until_stop(call(), stop, grace, beat)
        except DB_FAULTS as exc:
            tries += 1
            metrics.DB_FAULTS.labels(operation).inc()
            error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            metrics.HEALTH.db(False, error)
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (tries - 1)) * random.uniform(0.75, 1.25)
            over = give_up_after is not None and time.monotonic() - started + delay > give_up_after
            log.warning(
                "database fault", operation=operation, tries=tries, error=error, retry_in=None if over else round(delay, 1)
            )
            if over:
                raise DatabaseUnavailable(f"{operation}: gave up after {tries} tries: {error}") from exc
            if await sleep_or_stop(stop, delay, beat):
                raise DatabaseUnavailable(f"{operation}: stopping during a database outage") from exc
            continue
        metrics.HEALTH.db(True)
        if tries:
            log.info("database back", operation=operation, tries=tries, outage_s=round(time.monotonic() - started, 1))
        return result


async def listen(dsn: str, channel: str, wake: asyncio.Event, stop: asyncio.Event, retry_seconds: float, log) -> None:
    """LISTEN on a direct connection (never through PgBouncer) and set wake on every
    NOTIFY, reconnecting after errors until stop; the callers also poll, so a lost
    connection only delays work."""
    while not stop.is_set():
        try:
            conn = await connect(dsn)
            async with conn:
                await conn.execute(composed("listen", channel=channel))
                async for _ in conn.notifies():
                    wake.set()
                    if stop.is_set():
                        return
        except Exception as exc:
            metrics.DB_FAULTS.labels("listen").inc()
            log.warning("listen connection lost", channel=channel, error=str(exc).strip()[:300])
            await sleep_or_stop(stop, retry_seconds)
