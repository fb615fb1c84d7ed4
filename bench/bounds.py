"""What do the bounds cost on the normal path (issue 13)? remember(), search() and search_text()
p50/p99 on a ledger deployed at a baseline tag (default @v0.2.0) and one at HEAD, with the same
data, measured in the same run, interleaved call by call (so both see the same machine load).

Usage: .venv/bin/python bench/bounds.py [--base @v0.2.0] [--memories 5000] [--calls 400] [--db memoriesdb_bench_bounds]
       [--out FILE] [--keep] [--smoke (50 memories, 10 calls; results to a temporary file unless --out)]
Writes bench/results/bounds.md (and prints it). Uses databases <db>_{base,head}, dropped (with their logger roles) at
the end unless --keep. The calls run as memoriesdb_backend (set_config) on a ledger where identity is proven
(app logins must authenticate()), as memoriesdb_app on older ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
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


def build(host: str, db: str, to: str | None, memories: int, dim: int) -> tuple[str, str]:
    """A fresh ledger with one tenant of `memories` embedded memories; returns (dsn, user id)."""
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")
    cmd = ["sqitch", "--quiet", "deploy", f"db:pg://postgres@{host}/{db}"] + (["--to", to] if to else [])
    subprocess.run(cmd, cwd=ROOT, check=True)
    dsn = f"postgresql://postgres@{host}/{db}"
    rng = np.random.default_rng(5)
    with psycopg.connect(dsn, autocommit=True) as c:
        register_vector(c)
        uid = c.execute("SELECT memoriesdb.create_user('bench')").fetchone()[0]
        with c.transaction():
            c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            for _ in range(memories):
                c.execute("SELECT memoriesdb.remember(%s)", (text(rng),))
        while True:  # in claims of 256, the ledger's cap on one claim
            with c.transaction():
                c.execute("SET LOCAL ROLE memoriesdb_worker")
                jobs = c.execute(
                    "SELECT memory_id, lease_id FROM memoriesdb.claim_embedding_jobs(256, '5 minutes', 'bench')"
                ).fetchall()
                if not jobs:
                    break
                vecs = rng.standard_normal((len(jobs), dim)).astype(np.float32)
                c.execute(
                    "SELECT memoriesdb.complete_embedding_jobs(%s, %s, %s, 'bench')",
                    ([j[0] for j in jobs], [j[1] for j in jobs], [v / np.linalg.norm(v) for v in vecs]),
                )
        c.execute("ANALYZE")
    return dsn, str(uid)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="@v0.2.0")
    ap.add_argument("--memories", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--db", default="memoriesdb_bench_bounds")
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the two databases")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.memories, args.calls = 50, 10
    out_file = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/bounds.md"))
    ledgers = {
        "base": build(args.host, f"{args.db}_base", args.base, args.memories, args.dim),
        "head": build(args.host, f"{args.db}_head", None, args.memories, args.dim),
    }
    calls = {
        "remember": lambda c, rng: c.execute("SELECT memoriesdb.remember(%s)", (text(rng),)),
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
    if not args.keep:
        from audit_chain import drop_db  # this script's directory is on sys.path

        with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
            for k in ledgers:
                drop_db(su, f"{args.db}_{k}")
    out = [
        "# The bounds on the normal path",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, `bench/bounds.py`: one tenant of {args.memories} embedded memories, "
        f"{args.calls} calls of each function per ledger, interleaved call by call; base = `{args.base}`, head = this checkout. "
        "Each call timed as its whole transaction: context, call, COMMIT (where remember() seals its audit rows).",
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
    text_out = "\n".join(out) + "\n"
    out_file.write_text(text_out)
    print(text_out)
    print(f"(written to {out_file})")


if __name__ == "__main__":
    main()
