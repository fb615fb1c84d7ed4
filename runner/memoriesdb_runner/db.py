"""Connections and the named queries of queries.sql (a procrastinate-style loader)."""

from __future__ import annotations

import asyncio
import re
import uuid
from functools import cache
from importlib.resources import files

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


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


def make_pool(dsn: str, *, min_size: int = 1, max_size: int = 4) -> AsyncConnectionPool:
    """A pool safe behind PgBouncer in transaction mode: no server-side prepared
    statements, no session state; every call runs in its own transaction."""
    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"prepare_threshold": None, "autocommit": True, "row_factory": dict_row},
        configure=_configure,
        check=AsyncConnectionPool.check_connection,
    )


async def connect(dsn: str, *, autocommit: bool = True) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit, prepare_threshold=None, row_factory=dict_row)
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
        await row(conn, "act_as", user_id=str(user_id))
    else:
        raise ValueError("no user: pass an API key or a user id")


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
            log.warning("listen connection lost", channel=channel, error=str(exc))
            await asyncio.sleep(retry_seconds)
