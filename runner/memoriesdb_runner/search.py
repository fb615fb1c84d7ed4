"""Search (`memoriesdb search`): embed a text with the configured provider, search as one user."""

from __future__ import annotations

import json
import uuid

from rich.console import Console
from rich.table import Table

from . import db
from .providers import Provider, make_provider
from .safety import safe_text
from .settings import Settings


async def search_text(
    settings: Settings,
    text: str,
    api_key: str | None,
    user_id: uuid.UUID | None,
    k: int = 10,
    filter_: dict | None = None,
    provider: Provider | None = None,
) -> list[dict]:
    """The k memories most similar to text that the user may see (the ledger's search())."""
    own_provider = provider is None
    provider = provider or make_provider(settings)
    try:
        vector = (await provider.embed([text]))[0]
    finally:
        if own_provider:
            await provider.aclose()
    conn = await db.connect(db.user_dsn(settings, api_key), autocommit=False)
    async with conn:
        async with conn.transaction():
            await db.become(conn, api_key, user_id)
            return await db.rows(conn, "search", query=vector, k=k, filter=json.dumps(filter_ or {}))


def print_results(console: Console, rows: list[dict], title: str) -> None:
    """Rows of search() as a table; every value is escaped (stored text is data, never Rich markup)."""
    t = Table("similarity", "content", "owner", title=safe_text(title))
    for r in rows:
        t.add_row(f"{r['similarity']:.3f}", safe_text(r["content"]), safe_text(str(r["owner_id"])[:8]))
    console.print(t)
