"""Lease benchmark (issue 13, worker scope): what the caps and the heartbeat cost, in one run.

  1. SQL, as the worker login, interleaved round by round on the same jobs: claim_embedding_jobs()
     of a batch (the baseline), renew_embedding_leases() of that batch, release_embedding_jobs();
     the ratio renew / claim is the price of one heartbeat.
  2. The runner draining N jobs with a zero-cost provider, with its LeaseKeeper (one task per
     batch, renewing every lease/3) against the same runner with the keeper replaced by a no-op
     (the baseline), alternated; with the default lease a batch shorter than lease/3 sends no
     renewal at all, so this measures the keeper's bookkeeping.
Usage: PYTHONPATH=runner .venv/bin/python bench/leases.py [--db memoriesdb_bench_leases] [--rounds 200] [--n 5000]
       [--drains 8] [--out FILE] [--keep] [--smoke (5 rounds, 64 jobs, 2 drains; results to a temporary file unless --out)]
Writes bench/results/leases.md (and prints it). Drops and recreates the database given; drops it (and its logger role)
at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from audit_chain import drop_db  # noqa: E402
from memoriesdb_runner import admin, worker
from memoriesdb_runner.logs import configure
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.settings import Settings
from runner import ZeroCostProvider, load  # bench/runner.py (this script's directory is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


class NoKeeper:
    """The baseline: the runner as it was before the heartbeat."""

    def __init__(self, worker, jobs):
        pass

    def drop(self, jobs) -> None:  # LeaseKeeper's interface: stop renewing these (there is nothing to stop)
        pass

    async def stop(self) -> None:
        pass


def sql_costs(dsn: str, batch: int, rounds: int) -> dict[str, float]:
    """Median milliseconds per call of claim, renew and release of one batch."""
    times: dict[str, list[float]] = {"claim": [], "renew": [], "release": []}
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as c:
        for _ in range(rounds):
            t = time.perf_counter()
            rows = c.execute(
                "SELECT memory_id, lease_id FROM memoriesdb.claim_embedding_jobs(%s, '300 seconds', 'bench')", (batch,)
            ).fetchall()
            times["claim"].append(time.perf_counter() - t)
            assert len(rows) == batch, len(rows)
            ids, leases = [r[0] for r in rows], [r[1] for r in rows]
            t = time.perf_counter()
            renewed = c.execute(
                "SELECT memoriesdb.renew_embedding_leases(%s::uuid[], %s::uuid[], '300 seconds')", (ids, leases)
            ).fetchone()[0]
            times["renew"].append(time.perf_counter() - t)
            assert renewed == batch, renewed
            t = time.perf_counter()
            c.execute("SELECT memoriesdb.release_embedding_jobs(%s::uuid[], %s::uuid[])", (ids, leases))
            times["release"].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def drain_seconds(settings: Settings, admin_dsn: str, n: int, keeper) -> float:
    worker.LeaseKeeper = keeper
    load(admin_dsn, [f"lease bench job {i} {time.time_ns()}" for i in range(n)])
    t = time.perf_counter()
    done = asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False, provider=ZeroCostProvider(384)))
    assert done == n, done
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="memoriesdb_bench_leases")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--drains", type=int, default=8)
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.n, args.drains = 5, 64, 2
    out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/leases.md"))
    admin_dsn = f"postgresql://postgres@127.0.0.1/{args.db}"
    with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
    admin.deploy(admin_dsn)
    admin.ensure_local_logins(admin_dsn)
    worker_dsn = f"postgresql://memoriesdb_runner@127.0.0.1/{args.db}"
    configure("WARNING")

    load(admin_dsn, [f"lease bench memory {i}" for i in range(300)])
    sql = {b: sql_costs(worker_dsn, b, args.rounds) for b in (32, 256)}
    with psycopg.connect(admin_dsn, autocommit=True) as c:  # out of the way of the drains
        c.execute("UPDATE memoriesdb.embedding_schedule SET dead_at = now()")

    settings = Settings(_env_file=None, dsn=worker_dsn, admin_dsn=admin_dsn, batch_size=32, poll_seconds=0.5, listen_port=5432)
    real = worker.LeaseKeeper
    with_keeper, without = [], []
    for i in range(args.drains):  # alternated ABBA, so that the growing tables slow both alike
        for keeper in (NoKeeper, real) if i % 2 == 0 else (real, NoKeeper):
            (without if keeper is NoKeeper else with_keeper).append(drain_seconds(settings, admin_dsn, args.n, keeper))
    worker.LeaseKeeper = real
    base, keep = statistics.median(without), statistics.median(with_keeper)
    # each drain runs on tables the previous ones grew: the ratio is taken pair by pair
    ratio = statistics.median(w / b for w, b in zip(with_keeper, without, strict=True))

    lines = [
        "# Lease benchmark\n",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}; {os.cpu_count()} cores; SQL: median of {args.rounds} rounds, "
        f"as the worker login; runner: {args.n} zero-cost jobs, batch 32, median of {args.drains} drains each, alternated.\n",
        "| batch | claim ms (baseline) | renew ms | release ms | renew / claim |",
        "|---|---|---|---|---|",
    ]
    for b, r in sql.items():
        lines.append(f"| {b} | {r['claim']:.2f} | {r['renew']:.2f} | {r['release']:.2f} | **{r['renew'] / r['claim']:.2f}** |")
    lines += [
        "",
        "| runner | seconds | jobs/s |",
        "|---|---|---|",
        f"| without the lease keeper (baseline) | {base:.2f} | {args.n / base:.0f} |",
        f"| with the lease keeper | {keep:.2f} | {args.n / keep:.0f} |",
        f"\nwith / without, median of the {args.drains} adjacent pairs = **{ratio:.3f}**",
    ]
    if not args.keep:
        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
            drop_db(c, args.db)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    print(f"(written to {out})")


if __name__ == "__main__":
    main()
