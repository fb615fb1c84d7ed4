"""The README's main job on the local defaults (local PostgreSQL, local model)."""

from __future__ import annotations

import secrets
import time
from importlib.resources import files
from pathlib import Path

import psycopg
from rich.console import Console

from . import admin, db
from .cli import ingest_file, print_results, run_embed_workers, search_text
from .providers import make_provider
from .settings import Settings


async def run_demo(settings: Settings, console: Console) -> None:
    console.rule("[bold]MemoriesDB demo")
    console.print("1. deploy the ledger (sqitch, idempotent)")
    out = admin.deploy(settings.admin_dsn)
    deployed = out.count(" ok")
    console.print(f"   {deployed} changes deployed" if deployed else "   already up to date")
    admin.ensure_local_logins(settings.admin_dsn)

    suffix = secrets.token_hex(3)
    conn = await db.connect(settings.app_dsn)
    async with conn:
        ids, keys = {}, {}
        for who in ("alice", "bob"):
            ids[who] = (await (await conn.execute(db.q("create_user"), {"handle": f"{who}-{suffix}", "display_name": who.title()})).fetchone())["id"]
            keys[who] = (await (await conn.execute(db.q("create_api_key"), {"user_id": ids[who]})).fetchone())["api_key"]
    console.print(f"2. created users alice-{suffix} and bob-{suffix}, each with an API key")

    data = Path(str(files(__package__).joinpath("data")))
    for who in ("alice", "bob"):
        stored, rejected = await ingest_file(settings, data / f"{who}.jsonl", keys[who], None, progress=False)
        console.print(f"3. {who} remembered {stored} memories ({len(rejected)} rejected)")

    console.print("4. embedding worker (local all-MiniLM-L6-v2) until the queue is empty")
    t = time.perf_counter()
    provider = make_provider(settings)
    console.print(f"   model loaded in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    done = await run_embed_workers(settings, until_empty=True, install_signals=False, provider=provider)
    console.print(f"   embedded {done} memories in {time.perf_counter() - t:.2f} s")

    query = "what does the user like to drink in the morning?"
    console.print(f"5. search as alice and as bob: {query!r}")
    print_results(await search_text(settings, query, keys["alice"], None, k=3, provider=provider), "alice's results")
    print_results(await search_text(settings, query, keys["bob"], None, k=3, provider=provider), "bob's results: none of alice's")

    conn = await db.connect(settings.app_dsn, autocommit=False)
    async with conn:
        async with conn.transaction():
            await conn.execute(db.q("authenticate"), {"api_key": keys["alice"]})
            top = await (await conn.execute("SELECT id FROM memoriesdb.search(%s, 1)", ((await provider.embed([query]))[0],))).fetchone()
            await conn.execute("SELECT memoriesdb.share(%s, %s)", (top["id"], ids["bob"]))
    console.print("6. alice shares her best match with bob; bob searches again")
    print_results(await search_text(settings, query, keys["bob"], None, k=3, provider=provider), "bob's results with the share")
    await provider.aclose()

    conn = await db.connect(settings.app_dsn, autocommit=False)
    async with conn:
        async with conn.transaction():   # alice's memories that bob cannot see
            await conn.execute(db.q("authenticate"), {"api_key": keys["alice"]})
            hidden = await (await conn.execute("SELECT id FROM memoriesdb.memories WHERE id <> %s LIMIT 1", (top["id"],))).fetchone()
        refused = "not refused!"
        try:
            async with conn.transaction():
                await conn.execute(db.q("authenticate"), {"api_key": keys["bob"]})
                await conn.execute("SELECT * FROM memoriesdb.recall(%s)", (hidden["id"],))
        except psycopg.Error as exc:
            refused = exc.diag.sqlstate
        await conn.execute("SELECT memoriesdb.flush_access_log()")
        await conn.commit()
        async with conn.transaction():
            await conn.execute(db.q("authenticate"), {"api_key": keys["alice"]})
            history = []
            for m in (top["id"], hidden["id"]):
                history += await (await conn.execute(
                    "SELECT outcome, function, actor, sqlstate FROM memoriesdb.access_history(%s)", (m,))).fetchall()
    console.print(f"7. bob tries to recall a memory of alice's he was not given: refused ({refused}), and his transaction "
                  "rolled back; alice's access history of her two memories:")
    who = {ids["alice"]: "alice", ids["bob"]: "bob"}
    for h in history:
        console.print(f"   {h['outcome']:8} {h['function']:14} by {who.get(h['actor'], h['actor'])}"
                      + (f" ({h['sqlstate']})" if h["sqlstate"] else ""))

    with psycopg.connect(settings.admin_dsn) as admin_conn:
        admin_conn.execute("SET ROLE memoriesdb_auditor")
        ok, rows, seals, _, problem = admin_conn.execute("SELECT * FROM memoriesdb.verify_audit_chain()").fetchone()
    console.print(f"8. audit chain: {'intact' if ok else 'BROKEN: ' + problem} ({rows} audit rows, {seals} seals)")
