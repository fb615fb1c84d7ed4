"""Runner benchmark (issue 4), all in one run on the same machine:
  1. the local provider alone: raw model.encode of N texts in batches (the baseline);
  2. the same N texts through the full queue: remember() -> worker (claim, embed, complete);
     the ratio 2/1 is the runner's overhead;
  3. queue throughput with a zero-cost provider (constant vectors): jobs/s of claim + complete.
Usage: PYTHONPATH=runner .venv/bin/python bench/runner.py [--n 2000] [--zero-n 20000] [--db memoriesdb_bench_runner]
       [--out FILE] [--keep] [--smoke (64 memories, 200 zero-cost jobs, the zero-cost provider in place of the model;
       results to a temporary file unless --out)]
Writes bench/results/runner.md. Drops and recreates database --db; drops it (and its logger role) at the end
unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

from memoriesdb_runner import admin
from memoriesdb_runner.logs import configure
from memoriesdb_runner.providers import LocalProvider
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


class ZeroCostProvider:
    model = "zero-cost"

    def __init__(self, dim: int):
        v = np.zeros(dim, dtype=np.float32)
        v[0] = 1
        self.v = v

    async def embed(self, texts):
        return np.tile(self.v, (len(texts), 1))

    async def dimension(self):
        return len(self.v)

    async def aclose(self):
        pass

    def encode(self, texts):  # LocalProvider's synchronous call (the raw baseline)
        return np.tile(self.v, (len(texts), 1))


def load(admin_dsn: str, texts: list[str]) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        uid = c.execute("SELECT memoriesdb.create_user(%s)", (f"bench{time.time_ns()}",)).fetchone()[0]
        with c.transaction():
            c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            c.execute("SELECT memoriesdb.remember(t) FROM unnest(%s::text[]) AS t", (texts,))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--zero-n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--db", default="memoriesdb_bench_runner")
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.zero_n = 64, 200
    out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/runner.md"))
    db = args.db
    admin_dsn = f"postgresql://postgres@127.0.0.1/{db}"
    with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    admin.deploy(admin_dsn)
    admin.ensure_local_logins(admin_dsn)
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        # the 500-job batches below are past the default cap on one claim (256): raised in this
        # throwaway database only, so the rows stay comparable with earlier runs
        c.execute("UPDATE memoriesdb.config SET value = '500' WHERE key = 'embedding_max_batch_size'")
    settings = Settings(
        _env_file=None,
        dsn=f"postgresql://memoriesdb_runner@127.0.0.1/{db}",
        admin_dsn=admin_dsn,
        batch_size=args.batch,
        poll_seconds=0.5,
        listen_port=5432,
    )
    configure("WARNING")

    # --smoke: the zero-cost provider in place of the model (importing torch alone costs 10 s of CPU)
    provider = ZeroCostProvider(384) if args.smoke else LocalProvider(settings)
    texts = [f"baseline memory number {i} about {i * 7919 % 1000}" for i in range(args.n)]
    provider.encode(texts[:64])  # warm up
    t = time.perf_counter()
    for i in range(0, len(texts), args.batch):
        provider.encode(texts[i : i + args.batch])
    raw_s = time.perf_counter() - t

    load(admin_dsn, texts)  # the very same texts, now through the queue
    t = time.perf_counter()
    done = asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False, provider=provider))
    queue_s = time.perf_counter() - t
    assert done == args.n, done

    zero = ZeroCostProvider(384)
    rows = []
    for batch, conc in ((args.batch, 1), (500, 1), (500, 2)):
        load(admin_dsn, [f"zero-cost job {i}" for i in range(args.zero_n)])
        s2 = settings.model_copy(update={"batch_size": batch, "concurrency": conc})
        t = time.perf_counter()
        done = asyncio.run(run_embed_workers(s2, until_empty=True, install_signals=False, provider=zero))
        rows.append((batch, conc, done, time.perf_counter() - t))

    if not args.keep:
        from audit_chain import drop_db  # this script's directory is on sys.path

        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
            drop_db(c, db)
    lines = [
        "# Runner benchmark\n",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}; {args.n} memories, batch {args.batch}, "
        f"local all-MiniLM-L6-v2 on the CPU ({os.cpu_count()} cores).\n",
        "| what | seconds | memories/s |",
        "|---|---|---|",
        f"| raw model.encode, batches of {args.batch} (baseline) | {raw_s:.2f} | {args.n / raw_s:.0f} |",
        f"| full queue: claim, embed, complete (one worker) | {queue_s:.2f} | {args.n / queue_s:.0f} |",
        f"\nrunner overhead: full queue / raw encode = **{queue_s / raw_s:.3f}**\n",
        "Queue throughput with a zero-cost provider (no model: claim + complete + audit of each stored vector):\n",
        "| batch | workers | jobs | seconds | jobs/s |",
        "|---|---|---|---|---|",
    ]
    for batch, conc, done, secs in rows:
        lines.append(f"| {batch} | {conc} | {done} | {secs:.2f} | {done / secs:.0f} |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    print(f"(written to {out})")


if __name__ == "__main__":
    main()
