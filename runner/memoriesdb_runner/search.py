"""Search (`memoriesdb search`): the query's vector from the ledger's query cache, else embedded with the
configured provider (and cached); search as one user."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid

import psycopg
from rich.console import Console
from rich.table import Table

from . import db
from .errors import LedgerError
from .providers import Provider, make_provider, model_label
from .safety import safe_text
from .settings import Settings

# The ledger's normalise_query() (query_cache.sql), character for character: NFC, every run of these
# white space characters one space, none at either end; case kept (cased models embed case).
_WHITE_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def normalise_query(text: str) -> str:
    """The query as the cache keys it and as it is embedded on a miss, so a hit returns exactly
    the vector a miss would have made."""
    return _WHITE_SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip(" ")


async def search_text(
    settings: Settings,
    text: str,
    api_key: str | None,
    user_id: uuid.UUID | None,
    k: int = 10,
    filter_: dict | None = None,
    provider: Provider | None = None,
    use_cache: bool = True,
    model: str | None = None,
) -> list[dict]:
    """The k memories most similar to text that the user may see (the ledger's search()). The query
    vector comes from the ledger's query cache (the user's own entries) when it holds one: then no
    provider is built and none is called, and the search runs in the lookup's transaction (on Citus in
    the next one: docs/citus.md, section 8). On a miss that transaction ends (none stays open while the
    provider embeds), the provider embeds the normalised text, and a second transaction searches, then
    caches the vector. A query the cache refuses (MDB26: too long for it) is embedded and searched
    without the cache.

    model names a registered embedding model (search(query, model, ...)): the query is embedded by
    that model's provider (its registry kind with the model's name; the configured provider for a
    model registered as 'configured') and cached under that model's label, so no two models ever
    share a cached vector. MDB16 for no such model, MDB31 for a retired one (before any provider call)."""
    query = normalise_query(text) or text
    filter_json = json.dumps(filter_ or {})
    cacheable = use_cache and bool(query.strip())
    conn = await db.connect(db.user_dsn(settings, api_key), autocommit=False)
    async with conn:
        if model is not None:
            async with conn.transaction():
                info = await db.row(conn, "search_model_info", model=model)
            if info["state"] == "retired":
                raise LedgerError("MDB31", f"model {model!r} is retired: it has no vectors to search")
            if provider is None and info["provider"] != "configured":
                settings = settings.model_copy(update={"provider": info["provider"], "model": info["model"]})
        label = model_label(settings, provider)

        async def run_search(vector) -> list[dict]:
            if model is None:
                return await db.rows(conn, "search", query=vector, k=k, filter=filter_json)
            return await db.rows(conn, "search_model", query=vector, model=model, k=k, filter=filter_json)

        if cacheable:
            vector = None
            try:
                async with conn.transaction():
                    await db.become(conn, api_key, user_id)
                    vector = (await db.row(conn, "cached_query_vector", model=label, query=query))["v"]
                    # on Citus the search gets a transaction of its own: the lookup's LRU touch wrote the cache as the
                    # ledger's owner, and Citus reads no placement that another role wrote in the same transaction
                    # (docs/citus.md, section 8)
                    if vector is not None and not (await db.row(conn, "can_vouch"))["present"]:
                        return await run_search(vector)
            except psycopg.Error as exc:
                if exc.sqlstate != "MDB26":
                    raise
                cacheable = False
            if vector is not None:
                async with conn.transaction():
                    await db.become(conn, api_key, user_id)
                    return await run_search(vector)
        own_provider = provider is None
        provider = provider or make_provider(settings)
        try:
            vector = (await provider.embed([query]))[0]
        finally:
            if own_provider:
                await provider.aclose()
        async with conn.transaction():
            await db.become(conn, api_key, user_id)
            # the search before the cache's write: a read after it fails on Citus (another role's write, section 8)
            rows = await run_search(vector)
            if cacheable:
                try:
                    async with conn.transaction():  # a savepoint: a vector the cache refuses is searched all the same
                        await db.row(conn, "cache_query_vector", model=label, query=query, v=vector)
                except psycopg.Error as exc:
                    if exc.sqlstate != "MDB26":
                        raise
            return rows


def print_results(console: Console, rows: list[dict], title: str) -> None:
    """Rows of search() as a table; every value is escaped (stored text is data, never Rich markup)."""
    t = Table("similarity", "content", "owner", title=safe_text(title))
    for r in rows:
        t.add_row(f"{r['similarity']:.3f}", safe_text(r["content"]), safe_text(str(r["owner_id"])[:8]))
    console.print(t)
