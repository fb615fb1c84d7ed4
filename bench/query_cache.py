"""Query-vector cache benchmark (issue 15): what a cache hit costs against embedding the query.

All in one run, on the same machine and database:
  1. embedding one query with the local model (LocalProvider.embed, all-MiniLM-L6-v2 on CPU): what a
     miss pays before it can search;
  2. a hit: memoriesdb.cached_query_vector() alone, and the whole transaction a client pays for it
     (authenticate() with an API key + the lookup), over the app login;
  3. a miss's database work: the lookup that misses + cache_query_vector() with the user's cache full
     (every store evicts the least recently used entry);
  4. `memoriesdb search` end to end (search.search_text, connection included): a miss (embed, store,
     search) against a hit (no provider call);
  5. concurrency: 8 clients of one user hitting the same entries (the LRU touch never waits) and
     storing distinct queries at the bound (the count ends at the bound).
Usage: PYTHONPATH=runner .venv/bin/python bench/query_cache.py [--queries 200] [--bound 1000] [--db NAME] [--fresh] [--smoke]
Writes bench/results/query_cache.md. --smoke: a quick check that writes no file, with the tests' fake
Ollama server in place of the local model (importing torch alone costs 10 s of CPU): under 20 s once the
database is deployed (the first run deploys it: about half a minute more); --smoke --local keeps the model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from memoriesdb_runner import admin
from memoriesdb_runner.providers import LocalProvider, OllamaProvider, model_label
from memoriesdb_runner.search import normalise_query, search_text
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "coffee tea lantern harbour passport dentist invoice garden bicycle piano recipe meeting sister "
    "train flight password birthday library mortgage vaccine keyboard umbrella concert tax holiday"
).split()


def queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    forms = [
        "what did I note about the {} and the {}?",
        "when is the {} {} due",
        "where did I put my {} near the {}",
        "{} {} plans for next week",
        "who recommended the {} for the {}?",
    ]
    return [f"{rng.choice(forms).format(rng.choice(WORDS), rng.choice(WORDS))} #{i}" for i in range(n)]


def pct(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


def row(what: str, xs: list[float], note: str = "") -> str:
    p50, p99 = pct(xs)
    return f"| {what} | {p50:.3f} | {p99:.3f} | {len(xs)} | {note} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--memories", type=int, default=500)
    ap.add_argument("--bound", type=int, default=1000, help="query_cache_max_entries in the bench database")
    ap.add_argument("--db", default="memoriesdb_bench_query_cache")
    ap.add_argument("--fresh", action="store_true", help="drop and redeploy the database first")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="a quick check (< 20 s on a deployed database): the fake Ollama server, not the local model; no file",
    )
    ap.add_argument("--local", action="store_true", help="with --smoke: the local model all the same")
    args = ap.parse_args()
    if args.smoke:
        args.queries, args.memories, args.bound = 10, 0, 100
    t_start = time.perf_counter()
    host = os.environ.get("PGHOST", "127.0.0.1")
    admin_dsn = f"postgresql://postgres@{host}/{args.db}"
    if args.fresh:
        with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    t0 = time.perf_counter()
    admin.deploy(admin_dsn)
    admin.ensure_local_logins(admin_dsn)
    deploy_s = time.perf_counter() - t0
    settings = Settings(
        _env_file=None,
        dsn=f"postgresql://memoriesdb_runner@{host}/{args.db}",
        app_dsn=f"postgresql://memoriesdb_client@{host}/{args.db}",
        backend_dsn=f"postgresql://memoriesdb_server@{host}/{args.db}",
        admin_dsn=admin_dsn,
        provider="local",
        batch_size=64,
        poll_seconds=0.5,
        listen_port=5432,
    )
    # the model loads (seconds: torch, sentence-transformers) while the database steps run
    loaded: dict = {}

    def load_model() -> None:
        t0 = time.perf_counter()
        loaded["provider"] = LocalProvider(settings)
        loaded["s"] = time.perf_counter() - t0

    fake = None
    if args.smoke and not args.local:
        # the fake Ollama server of the tests in place of the local model: importing torch and
        # sentence-transformers alone takes 10 s of CPU, more than a smoke run may
        sys.path.insert(0, str(ROOT / "runner"))
        from tests.fake_ollama import FakeOllama

        fake = FakeOllama()
        settings = settings.model_copy(update={"provider": "ollama", "ollama_url": fake.url})

        def load_model() -> None:  # noqa: F811
            loaded["provider"], loaded["s"] = OllamaProvider(settings), 0.0

    loader = threading.Thread(target=load_model)
    loader.start()
    model = model_label(settings)

    with psycopg.connect(admin_dsn, autocommit=True) as c:
        uid = c.execute("SELECT memoriesdb.create_user(%s)", (f"qcbench{time.time_ns()}",)).fetchone()[0]
        key = c.execute("SELECT memoriesdb.create_api_key(%s)", (uid,)).fetchone()[0]
        c.execute("UPDATE memoriesdb.config SET value = to_jsonb(%s::int) WHERE key = 'query_cache_max_entries'", (args.bound,))
        bound = args.bound
        with c.transaction():
            c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            c.execute(
                "SELECT memoriesdb.remember(t) FROM unnest(%s::text[]) AS t",
                ([f"note {i}: {' '.join(random.Random(i).sample(WORDS, 6))}" for i in range(args.memories)],),
            )
    qs = [normalise_query(q) for q in queries(args.queries, 1)]
    # steps 2, 3 and 5 store unit vectors of the model's dimension (a lookup's cost does not depend on the values)
    rnd = np.random.default_rng(7).standard_normal((len(qs), 384)).astype(np.float32)
    vectors = {q: v / np.linalg.norm(v) for q, v in zip(qs, rnd, strict=True)}

    app = psycopg.connect(settings.app_dsn, autocommit=False, prepare_threshold=None)
    register_vector(app)

    def in_tx(fn):
        with app.transaction():
            app.execute("SELECT memoriesdb.authenticate(%s)", (key,))
            return fn()

    # fill the user's cache to its bound with other queries, so every store below evicts
    with app.transaction():
        app.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        app.execute(
            "SELECT count(memoriesdb.cache_query_vector(%s, 'filler query ' || i,"
            " (SELECT array_agg(random())::real[]::vector FROM generate_series(1, 384) WHERE i > 0)))"
            " FROM generate_series(1, %s) AS i",
            (model, bound),
        )

    # 3. a miss's database work: lookup (miss) + store at the bound
    miss_lookup_ms, store_ms = [], []
    for q in qs:

        def miss(q=q):
            t0 = time.perf_counter()
            v = app.execute("SELECT memoriesdb.cached_query_vector(%s, %s)", (model, q)).fetchone()[0]
            t1 = time.perf_counter()
            app.execute("SELECT memoriesdb.cache_query_vector(%s, %s, %s)", (model, q, vectors[q]))
            t2 = time.perf_counter()
            assert v is None
            miss_lookup_ms.append((t1 - t0) * 1000)
            store_ms.append((t2 - t1) * 1000)

        in_tx(miss)
    with psycopg.connect(admin_dsn) as c:
        held = c.execute("SELECT count(*) FROM memoriesdb_internal.query_cache WHERE owner_id = %s", (uid,)).fetchone()[0]
    assert held == bound, (held, bound)

    # 2. hits
    hit_stmt_ms, hit_tx_ms = [], []
    for q in qs:
        t0 = time.perf_counter()
        with app.transaction():
            app.execute("SELECT memoriesdb.authenticate(%s)", (key,))
            t1 = time.perf_counter()
            v = app.execute("SELECT memoriesdb.cached_query_vector(%s, %s)", (model, q)).fetchone()[0]
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        assert v is not None and np.allclose(v.to_numpy(), vectors[q], atol=1e-6)
        hit_stmt_ms.append((t2 - t1) * 1000)
        hit_tx_ms.append((t3 - t0) * 1000)
    app.close()

    loader.join()
    provider, load_s = loaded["provider"], loaded["s"]
    if args.memories:
        asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False, provider=provider))
    # 1. embedding one query with the local model
    for q in qs[:3]:
        asyncio.run(provider.embed([q]))
    embed_ms = []
    for q in qs:
        t0 = time.perf_counter()
        asyncio.run(provider.embed([q]))
        embed_ms.append((time.perf_counter() - t0) * 1000)

    # 4. memoriesdb search end to end: miss (a fresh user's cache) then hit
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        uid2 = c.execute("SELECT memoriesdb.create_user(%s)", (f"qcbench2{time.time_ns()}",)).fetchone()[0]
        key2 = c.execute("SELECT memoriesdb.create_api_key(%s)", (uid2,)).fetchone()[0]

    async def searches() -> tuple[list[float], list[float], list[float]]:
        miss, hit, nocache = [], [], []
        for q in qs[: 3 if args.smoke else 50]:
            for out, kw in ((miss, {}), (hit, {}), (nocache, {"use_cache": False})):
                t0 = time.perf_counter()
                await search_text(settings, q, key2, None, k=10, provider=provider, **kw)
                out.append((time.perf_counter() - t0) * 1000)
        return miss, hit, nocache

    search_miss_ms, search_hit_ms, search_nocache_ms = asyncio.run(searches())

    # 5. concurrency (after the model's work: the clients compete for the CPU with nothing else): 8 clients of one user
    async def concurrent(seconds: float) -> tuple[int, int, int]:
        import psycopg as pg

        hot = qs[:10]
        stop = time.perf_counter() + seconds
        counts = {"hits": 0, "stores": 0}

        async def client(i: int) -> None:
            conn = await pg.AsyncConnection.connect(settings.app_dsn, prepare_threshold=None)
            from pgvector.psycopg import register_vector_async

            await register_vector_async(conn)
            n = 0
            async with conn:
                while time.perf_counter() < stop:
                    async with conn.transaction():
                        await conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
                        if n % 4 == 3:  # one in four: a new query stored at the bound
                            await conn.execute(
                                "SELECT memoriesdb.cache_query_vector(%s, %s, %s)",
                                (model, f"client {i} query {n}", vectors[hot[n % 10]]),
                            )
                            counts["stores"] += 1
                        else:
                            v = await (
                                await conn.execute("SELECT memoriesdb.cached_query_vector(%s, %s)", (model, hot[n % 10]))
                            ).fetchone()
                            counts["hits"] += v[0] is not None
                    n += 1

        await asyncio.gather(*(client(i) for i in range(8)))
        with psycopg.connect(admin_dsn) as c:
            held = c.execute("SELECT count(*) FROM memoriesdb_internal.query_cache WHERE owner_id = %s", (uid,)).fetchone()[0]
        return counts["hits"], counts["stores"], held

    conc_s = 1.0 if args.smoke else 5.0
    hits, stores, held_after = asyncio.run(concurrent(conc_s))

    p_embed, p_hit = pct(embed_ms)[0], pct(hit_stmt_ms)[0]
    lines = [
        "# Query-vector cache benchmark",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}; {len(qs)} distinct queries, model {model} (dim 384, {os.cpu_count()} cores), "
        f"cache bound query_cache_max_entries = {bound} per user (full: every store evicts), {args.memories} memories searched; "
        "latencies in ms, client side (psycopg over TCP to localhost); "
        f"load average {os.getloadavg()[0]:.1f} at the end (other sessions share the machine).",
        "",
        f"- deploy ({'fresh' if args.fresh else 'incremental'}) {deploy_s:.1f} s, "
        f"model load {load_s:.1f} s (in parallel with the database steps)",
        f"- a hit's lookup vs embedding the query: p50 {p_hit:.3f} ms vs {p_embed:.3f} ms ({p_embed / p_hit:.0f}x)",
        "",
        "| what | p50 ms | p99 ms | n | note |",
        "|---|---|---|---|---|",
        row(f"embed the query: {type(provider).__name__}.embed([query]) (what a miss pays first)", embed_ms),
        row("hit: cached_query_vector() statement (lookup + LRU touch)", hit_stmt_ms),
        row("hit: transaction a client pays (authenticate() + lookup + COMMIT)", hit_tx_ms),
        row("miss: cached_query_vector() statement (lookup, nothing found)", miss_lookup_ms),
        row("miss: cache_query_vector() statement at the bound (insert + evict the LRU entry)", store_ms),
        row("`memoriesdb search` (search_text) miss: connect, lookup, embed, store + search", search_miss_ms),
        row("`memoriesdb search` (search_text) hit: connect, lookup + search, no provider", search_hit_ms),
        row("`memoriesdb search` --no-cache: connect, embed, search", search_nocache_ms),
        "",
        "The end-to-end rows (the first 50 queries, in turn: miss, hit, --no-cache) open a new session per search, as "
        "the CLI does: connection, authenticate(), the search and its access log entry cost the same on every path and "
        "dominate a hit there; the cache saves the embedding.",
        "",
        f"Concurrency: 8 clients of one user for {conc_s:.0f} s (3 hits on 10 hot entries to 1 store of a new query): "
        f"{hits / conc_s:.0f} hits/s and {stores / conc_s:.0f} stores/s; entries held afterwards {held_after} (bound {bound}).",
        "",
        f"Total run {time.perf_counter() - t_start:.1f} s. `.venv/bin/python bench/query_cache.py` "
        "(`--smoke`: 10 queries, 3 searches, a bound of 100, 1 s of concurrency, no file).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    assert held_after <= bound + 8, f"the bound drifted under concurrency: {held_after} > {bound} + 8"
    if fake is not None:
        fake.close()
    if not args.smoke:
        (ROOT / "bench" / "results" / "query_cache.md").write_text(text)


if __name__ == "__main__":
    main()
