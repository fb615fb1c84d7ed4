"""What do offers cost on the read path (issue 12)? search() and search_text() p50/p99 for a tenant with shared
memories, on a ledger deployed at the baseline tag (default @v0.3.0, before offers) and one at HEAD, with the same
data, measured in the same run, interleaved call by call.

The tenant owns --memories memories and sees --shared more that another tenant shared with it: on the base ledger
by share() alone, on HEAD half through offers it accepted and half from a sender it accepted once for all. A third
tenant has --pending memories on both ledgers; on HEAD they are offered to the tenant and never accepted: they must
cost the reads nothing.

Usage: .venv/bin/python bench/offers.py [--base @v0.3.0] [--memories 3000] [--shared 2000] [--pending 1000] [--calls 400]
       [--db mdb_of_bench] [--out FILE] [--smoke (30 memories, 20 shared, 10 pending, 10 calls; results to a
       temporary file unless --out)]
Writes bench/results/offers.md (and prints it). Uses databases <db>_{base,head} (dropped at the end). The calls run
as memoriesdb_backend (set_config) on a ledger where identity is proven (app logins must authenticate()), as
memoriesdb_app on older ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from hashlib import md5
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

ROOT = Path(__file__).resolve().parents[1]
WORDS = "amber basalt cobalt dune ember fjord garnet harbor iris jade kelp lagoon marble nectar onyx pearl".split()


def p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]


def text(rng: np.random.Generator, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS, n))


def act(c: psycopg.Connection, uid) -> None:
    c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))


def remember(c: psycopg.Connection, uid, n: int, rng: np.random.Generator) -> list:
    with c.transaction():
        act(c, uid)
        return [c.execute("SELECT memoriesdb.remember(%s)", (text(rng),)).fetchone()[0] for _ in range(n)]


def build(host: str, db: str, to: str | None, args: argparse.Namespace) -> tuple[str, str]:
    """A fresh ledger: the bench tenant's own and shared memories (and, with offers, pending ones); (dsn, user id)."""
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")
    cmd = ["sqitch", "--quiet", "deploy", f"db:pg://postgres@{host}/{db}"] + (["--to", to] if to else [])
    subprocess.run(cmd, cwd=ROOT, check=True)
    dsn = f"postgresql://postgres@{host}/{db}"
    rng = np.random.default_rng(5)
    with psycopg.connect(dsn, autocommit=True) as c:
        register_vector(c)
        offers = c.execute("SELECT to_regprocedure('memoriesdb.accept_offer(uuid)') IS NOT NULL").fetchone()[0]
        new_user = "SELECT memoriesdb.create_user(%s)"
        uid, sharer, spammer = (c.execute(new_user, (h,)).fetchone()[0] for h in ("bench", "sharer", "spam"))
        remember(c, uid, args.memories, rng)
        shared = remember(c, sharer, args.shared, rng)
        half = len(shared) // 2
        with c.transaction():
            act(c, sharer)
            ids = [c.execute("SELECT memoriesdb.share(%s, %s)", (m, uid)).fetchone()[0] for m in shared[:half]]
        if offers:
            with c.transaction():  # the first half through offers the tenant accepts, the second from an accepted sender
                act(c, uid)
                for i in ids:
                    c.execute("SELECT memoriesdb.accept_offer(%s)", (i,))
                c.execute("SELECT memoriesdb.accept_sender(%s)", (sharer,))
        with c.transaction():
            act(c, sharer)
            for m in shared[half:]:
                c.execute("SELECT memoriesdb.share(%s, %s)", (m, uid))
        pending = remember(c, spammer, args.pending, rng)  # on both ledgers: the same rows in memories
        if offers:
            with c.transaction():
                act(c, spammer)
                for m in pending:
                    c.execute("SELECT memoriesdb.share(%s, %s)", (m, uid))
        while True:  # in claims of 256, the ledger's cap on one claim
            with c.transaction():
                c.execute("SET LOCAL ROLE memoriesdb_worker")
                jobs = c.execute(
                    "SELECT memory_id, lease_id FROM memoriesdb.claim_embedding_jobs(256, '5 minutes', 'bench')"
                ).fetchall()
                if not jobs:
                    break
                vecs = rng.standard_normal((len(jobs), args.dim)).astype(np.float32)
                c.execute(
                    "SELECT memoriesdb.complete_embedding_jobs(%s, %s, %s, 'bench')",
                    ([j[0] for j in jobs], [j[1] for j in jobs], [v / np.linalg.norm(v) for v in vecs]),
                )
        # what the tenant sees, under row-level security: as the app on ledgers where it could read the table; on
        # later ones as memoriesdb_reader (which the same policies bind) under a backend's vouched context
        app_reads = c.execute("SELECT has_table_privilege('memoriesdb_app', 'memoriesdb.memories', 'SELECT')").fetchone()[0]
        with c.transaction():
            c.execute("SET LOCAL ROLE memoriesdb_app" if app_reads else "SET LOCAL ROLE memoriesdb_backend")
            act(c, uid)
            if not app_reads:
                c.execute("SET LOCAL ROLE memoriesdb_reader")
            visible = c.execute("SELECT count(*) FROM memoriesdb.memories").fetchone()[0]
        assert visible == args.memories + args.shared, (db, visible)
        c.execute("ANALYZE")
    return dsn, str(uid)


def drop(host: str, db: str) -> None:
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"DROP ROLE IF EXISTS memoriesdb_log_{md5(db.encode()).hexdigest()[:12]}")  # its logger


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="@v0.3.0")
    ap.add_argument("--memories", type=int, default=3000)
    ap.add_argument("--shared", type=int, default=2000)
    ap.add_argument("--pending", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--db", default="mdb_of_bench")
    ap.add_argument("--out", default="")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.memories, args.shared, args.pending, args.calls = 30, 20, 10, 10
    out_file = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/offers.md"))
    names = {"base": f"{args.db}_base", "head": f"{args.db}_head"}
    ledgers = {"base": build(args.host, names["base"], args.base, args), "head": build(args.host, names["head"], None, args)}
    calls = {
        "search": lambda c, rng: c.execute(
            "SELECT id FROM memoriesdb.search(%s, 10)", (rng.standard_normal(args.dim).astype(np.float32),)
        ).fetchall(),
        "search_text": lambda c, rng: c.execute("SELECT id FROM memoriesdb.search_text(%s, 10)", (text(rng, 3),)).fetchall(),
    }
    times = {(k, name): [] for k in ledgers for name in calls}
    conns = {}
    for k, (dsn, _uid) in ledgers.items():
        conns[k] = psycopg.connect(dsn, autocommit=True)
        register_vector(conns[k])
        proven = conns[k].execute("SELECT to_regprocedure('memoriesdb.authenticate(text)') IS NOT NULL").fetchone()[0]
        conns[k].execute("SET ROLE memoriesdb_backend" if proven else "SET ROLE memoriesdb_app")
    rng = np.random.default_rng(9)
    for i in range(args.calls):
        for name, call in calls.items():
            order = list(ledgers) if i % 2 == 0 else list(reversed(list(ledgers)))
            for k in order:
                c, uid = conns[k], ledgers[k][1]
                t = time.perf_counter()
                with c.transaction():
                    c.execute("SELECT set_config('app.current_user', %s, true)", (uid,))
                    call(c, rng)
                times[(k, name)].append((time.perf_counter() - t) * 1000)
    for c in conns.values():
        c.close()
    for db in names.values():
        drop(args.host, db)
    out = [
        "# Offers on the read path",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, `bench/offers.py`: one tenant owning {args.memories} embedded memories "
        f"and seeing {args.shared} more shared with it by another tenant (on head: half through accepted offers, half from "
        f"an accepted sender); a third tenant's {args.pending} memories, on head offered to the tenant and never accepted; "
        f"{args.calls} calls of "
        f"each function per ledger, interleaved call by call; base = `{args.base}` (before offers), head = this checkout. "
        "Each call timed as its whole transaction: context, call, COMMIT.",
        "",
        "| call | base p50 ms | head p50 ms | head / base (p50) | base p99 ms | head p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name in calls:
        b, h = times[("base", name)], times[("head", name)]
        out.append(
            f"| {name} | {statistics.median(b):.2f} | {statistics.median(h):.2f} | "
            f"{statistics.median(h) / statistics.median(b):.2f} | {p99(b):.2f} | {p99(h):.2f} |"
        )
    out += [
        "",
        "Offers add no condition to visibility: a pending offer lives in `memory_offers`, which no read path consults; a "
        "grant or an owner change is written only when the recipient accepts. So the memories_visible policy, "
        "`access_level()`, the search helpers and `memory_graph` are the @v0.3.0 ones, and the ratio is the noise of two "
        "identical read paths.",
    ]
    text_out = "\n".join(out) + "\n"
    out_file.write_text(text_out)
    print(text_out)
    print(f"(written to {out_file})")


if __name__ == "__main__":
    main()
