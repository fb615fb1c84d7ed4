"""The README's main job on the local defaults (local PostgreSQL, local model): `memoriesdb demo`."""

from __future__ import annotations

import secrets
import time
from importlib.resources import files
from pathlib import Path

import psycopg
from rich.console import Console

from . import admin, db
from .ingest import ingest_file
from .providers import make_provider
from .safety import safe_text
from .search import print_results, search_text
from .service import run_embed_workers
from .settings import Settings


async def run_demo(settings: Settings, console: Console) -> None:
    console.rule("[bold]MemoriesDB demo")
    console.print("1. deploy the ledger (sqitch, idempotent)")
    out = admin.deploy(settings.admin_dsn)
    deployed = out.count(" ok")
    console.print(f"   {deployed} changes deployed" if deployed else "   already up to date")
    admin.ensure_local_logins(settings.admin_dsn)

    suffix = secrets.token_hex(3)
    # provisioning is the trusted backend's: it creates each user, then vouches for it to mint its first key;
    # from then on the clients (untrusted, memoriesdb_app) act only by those keys
    conn = await db.connect(settings.backend_dsn, autocommit=False)
    async with conn:
        ids, keys = {}, {}
        for who in ("alice", "bob"):
            async with conn.transaction():
                ids[who] = (await db.row(conn, "create_user", handle=f"{who}-{suffix}", display_name=who.title()))["id"]
                await db.become(conn, user_id=ids[who])
                keys[who] = (await db.row(conn, "create_api_key", user_id=ids[who]))["api_key"]
    console.print(f"2. the backend created users alice-{suffix} and bob-{suffix}, each with an API key")

    data = Path(str(files(__package__).joinpath("data")))
    for who in ("alice", "bob"):
        done = await ingest_file(settings, data / f"{who}.jsonl", keys[who], None)
        console.print(f"3. {who} remembered {done.stored} memories ({len(done.bad)} rejected)")

    console.print("4. embedding worker (local all-MiniLM-L6-v2) until the queue is empty")
    t = time.perf_counter()
    provider = make_provider(settings)
    console.print(f"   model loaded in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    done = await run_embed_workers(settings, until_empty=True, install_signals=False, provider=provider)
    console.print(f"   embedded {done} memories in {time.perf_counter() - t:.2f} s")

    query = "what does the user like to drink in the morning?"
    console.print(f"5. search as alice and as bob: {query!r}")
    print_results(console, await search_text(settings, query, keys["alice"], None, k=3, provider=provider), "alice's results")
    print_results(
        console, await search_text(settings, query, keys["bob"], None, k=3, provider=provider), "bob's results: none of alice's"
    )

    [top] = await search_text(settings, query, keys["alice"], None, k=1, provider=provider)
    conn = await db.connect(settings.app_dsn, autocommit=False)
    async with conn:
        async with conn.transaction():
            await db.become(conn, keys["alice"])
            offer_id = (await db.row(conn, "share", memory_id=top["id"], grantee=ids["bob"]))["grant_id"]
        async with conn.transaction():  # nothing appears in bob's account unasked: the share waits as an offer
            await db.become(conn, keys["bob"])
            pending = await db.rows(conn, "offers")
            await db.row(conn, "accept_offer", offer_id=offer_id)
    console.print(
        f"6. alice offers her best match to bob; bob sees {len(pending)} pending offer (who and which memory, not its content),"
        " accepts it, and searches again"
    )
    print_results(
        console, await search_text(settings, query, keys["bob"], None, k=3, provider=provider), "bob's results with the share"
    )
    await provider.aclose()

    conn = await db.connect(settings.app_dsn, autocommit=False)
    async with conn:
        async with conn.transaction():  # alice's memories that bob cannot see
            await db.become(conn, keys["alice"])
            hidden = (await db.row(conn, "another_memory", memory_id=top["id"]))["id"]
        refused = "not refused!"
        try:
            async with conn.transaction():
                await db.become(conn, keys["bob"])
                await db.rows(conn, "recall", memory_id=hidden)
        except psycopg.Error as exc:
            refused = exc.diag.sqlstate
        await db.row(conn, "flush_access_log")
        await conn.commit()
        async with conn.transaction():
            await db.become(conn, keys["alice"])
            history = []
            for m in (top["id"], hidden):
                history += await db.rows(conn, "access_history", memory_id=m)
    console.print(
        f"7. bob tries to recall a memory of alice's he was not given: refused ({refused}), and his transaction "
        "rolled back; alice's access history of her two memories:"
    )
    who = {ids["alice"]: "alice", ids["bob"]: "bob"}
    for h in history:
        console.print(
            f"   {safe_text(h['outcome']):8} {safe_text(h['function']):14} by {safe_text(who.get(h['actor'], h['actor']))}"
            + (f" ({safe_text(h['sqlstate'])})" if h["sqlstate"] else "")
        )

    conn = await db.connect(settings.admin_dsn)
    async with conn:
        await conn.execute(db.q("as_auditor"))
        chain = await db.row(conn, "verify_audit_chain")
    console.print(
        f"8. audit chain: {'intact' if chain['ok'] else 'BROKEN: ' + safe_text(chain['problem'])} "
        f"({chain['rows_checked']} audit rows, {chain['seals_checked']} seals)"
    )
