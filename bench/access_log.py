"""Access log benchmark (issue 7): what logging costs on the granted path and on
the refused path, on the search benchmark's data.

Granted path: search() (which writes one access log entry) against
vector_ranking() (the same search without the entry) for the search benchmark's
large and small tenant, the two interleaved query by query in the same
connection so that the machine's noise hits both alike; with config
access_log_reads = 'autonomous' (the default) and 'transactional'. Refused path: recall() of another
tenant's memory (an autonomous write through dblink) against a granted recall()
of one's own, both in fresh and in warm sessions.

Usage: .venv/bin/python bench/search.py --keep   # once: builds memoriesdb_bench_search
       .venv/bin/python bench/access_log.py [--queries 400] [--db NAME] [--out FILE] [--smoke (20 queries, results to
       a temporary file unless --out; on a --smoke --keep database of bench/search.py)]
Writes bench/results/access_log.md (and prints it). The calls run as memoriesdb_backend (identity vouched with
set_config, as a backend does; app logins must authenticate()).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import psycopg.types.json
from pgvector.psycopg import register_vector

ROOT = Path(__file__).resolve().parents[1]


def p(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def timed(conn, owner, sql, params) -> float:
    t = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('app.current_user', %s, true)", (str(owner),))
            conn.execute(sql, params).fetchall()
    except psycopg.Error as exc:
        if exc.diag.sqlstate != "MDB03":
            raise
    return (time.perf_counter() - t) * 1000


def interleaved(dsn, owner, a_sql, b_sql, params_list, rounds=2) -> tuple[list[float], list[float]]:
    """Times a and b on the same queries, in random order per query."""
    a, b = [], []
    rnd = random.Random(1)
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        conn.execute("SET ROLE memoriesdb_backend")
        conn.commit()
        for _ in range(3):  # warm-up: plans, caches, the logger's connection
            timed(conn, owner, a_sql, params_list[0])
            timed(conn, owner, b_sql, params_list[0])
        for _ in range(rounds):
            for params in params_list:
                first = rnd.random() < 0.5
                for which in ((a_sql, a), (b_sql, b)) if first else ((b_sql, b), (a_sql, a)):
                    which[1].append(timed(conn, owner, which[0], params))
    return a, b


def cpu_ms(pid: int) -> float:
    """User + system CPU time of a local process, in ms (clock ticks of /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def cpu_per_call(dsn, owner, sql, params_list) -> tuple[float, float]:
    """CPU ms per call of the caller's backend and of its access logger's backend
    (a session of its own, so the logger is this session's), run back to back."""
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        me = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute("SET ROLE memoriesdb_backend")
        conn.commit()
        timed(conn, owner, sql, params_list[0])  # warm-up; opens the logger's connection if sql logs
        with psycopg.connect(dsn, autocommit=True) as su:
            logger = su.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'memoriesdb_access_log' "
                "AND backend_start >= (SELECT backend_start FROM pg_stat_activity WHERE pid = %s) "
                "ORDER BY backend_start DESC LIMIT 1",
                (me,),
            ).fetchone()
        c0, l0 = cpu_ms(me), (cpu_ms(logger[0]) if logger else 0.0)
        for params in params_list:
            timed(conn, owner, sql, params)
        c1, l1 = cpu_ms(me), (cpu_ms(logger[0]) if logger else 0.0)
    return (c1 - c0) / len(params_list), (l1 - l0) / len(params_list)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--db", default="memoriesdb_bench_search")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default="")
    ap.add_argument("--smoke", action="store_true", help="20 queries: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.queries = 20
    args.out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/access_log.md"))
    dsn = f"postgresql://postgres@{args.host}/{args.db}"
    try:
        psycopg.connect(dsn).close()
    except psycopg.OperationalError:
        raise SystemExit(f"database {args.db} not found: run .venv/bin/python bench/search.py first") from None
    # bring the search benchmark's database up to this plan (adds the access log if it predates it)
    subprocess.run(["sqitch", "--quiet", "deploy", f"db:pg://postgres@{args.host}/{args.db}"], cwd=ROOT, check=True)

    with psycopg.connect(dsn, autocommit=True) as su:
        register_vector(su)
        dim = int(su.execute("SELECT memoriesdb.setting('embedding_dim')").fetchone()[0])
        tenants = su.execute("SELECT owner_id, count(*) FROM memoriesdb.memories GROUP BY 1 ORDER BY 2 DESC").fetchall()
        large, small = tenants[0], tenants[-1]
        # the small tenant of search.py is its second-created user; any small one serves here
        centers = su.execute(
            "SELECT embedding FROM memoriesdb.memories TABLESAMPLE SYSTEM (1) LIMIT %s", (args.queries,)
        ).fetchall()
        other = su.execute("SELECT id FROM memoriesdb.memories WHERE owner_id = %s LIMIT 1", (large[0],)).fetchone()[0]
        own = su.execute("SELECT id FROM memoriesdb.memories WHERE owner_id = %s LIMIT 1", (small[0],)).fetchone()[0]
    rng = np.random.default_rng(11)
    qs = [
        {"q": np.asarray(c[0].to_list(), dtype=np.float32) + 0.05 * rng.standard_normal(dim).astype(np.float32)} for c in centers
    ]

    # the baseline is the unlogged ranking behind search(), which the application role may not
    # call: granted for the length of the benchmark only
    unlogged_fn = "memoriesdb_internal.vector_ranking(public.vector, integer, jsonb, real)"
    with psycopg.connect(dsn, autocommit=True) as su:
        su.execute("GRANT USAGE ON SCHEMA memoriesdb_internal TO memoriesdb_app")
        su.execute(f"GRANT EXECUTE ON FUNCTION {unlogged_fn} TO memoriesdb_app")
    try:
        run(dsn, args, large, small, own, other, qs)
    finally:
        with psycopg.connect(dsn, autocommit=True) as su:
            su.execute(f"REVOKE EXECUTE ON FUNCTION {unlogged_fn} FROM memoriesdb_app")
            su.execute("REVOKE USAGE ON SCHEMA memoriesdb_internal FROM memoriesdb_app")


def run(dsn, args, large, small, own, other, qs) -> None:
    with psycopg.connect(dsn, autocommit=True) as su:
        before = su.execute("SELECT count(*) FROM memoriesdb.access_log").fetchone()[0]
    logged = "SELECT id FROM memoriesdb.search(%(q)s, 10)"
    unlogged = "SELECT id FROM memoriesdb_internal.vector_ranking(%(q)s, 10)"
    rows = []

    def ratio_row(label, a, b):
        rows.append(
            (label, statistics.median(a), p(a, 99), statistics.median(b), p(b, 99), statistics.median(a) / statistics.median(b))
        )

    set_mode = "UPDATE memoriesdb.config SET value = %s::jsonb WHERE key = 'access_log_reads'"
    with psycopg.connect(dsn, autocommit=True) as su:
        mode_before = su.execute("SELECT value FROM memoriesdb.config WHERE key = 'access_log_reads'").fetchone()[0]
    try:
        for mode, part in (("autonomous", qs), ("transactional", qs[: args.queries // 2])):
            with psycopg.connect(dsn, autocommit=True) as su:
                su.execute(set_mode, (f'"{mode}"',))
            for name, (owner, n) in (("large", large), ("small", small)):
                a, b = interleaved(dsn, owner, logged, unlogged, part, rounds=2 if mode == "autonomous" else 1)
                ratio_row(f"search() vs vector_ranking(), {name} tenant ({n} memories), access_log_reads = {mode}", a, b)
    finally:
        with psycopg.connect(dsn, autocommit=True) as su:
            su.execute(set_mode, (psycopg.types.json.Jsonb(mode_before),))

    # CPU rather than wall time: what the log costs the caller's backend, and what the
    # logger's backend spends per entry (on a server with idle cores the latter runs in parallel)
    cpu_rows = []
    for name, (owner, n) in (("large", large), ("small", small)):
        for _ in range(2):  # the second round counts: the first warms caches for both
            b_caller, _ = cpu_per_call(dsn, owner, unlogged, qs)
            a_caller, a_logger = cpu_per_call(dsn, owner, logged, qs)
        cpu_rows.append((f"{name} tenant ({n} memories)", a_caller, a_logger, b_caller))

    # the refused path: another tenant's memory (autonomous write) vs one's own (granted, transactional)
    recall = "SELECT * FROM memoriesdb.recall(%(m)s)"
    refused_warm, granted_warm = interleaved(
        dsn, small[0], recall, recall.replace("%(m)s", f"'{own}'"), [{"m": other}] * 200, rounds=1
    )
    ratio_row("refused recall() (autonomous entry, warm session) vs granted recall()", refused_warm, granted_warm)
    cold_refused, cold_granted = [], []
    for _ in range(40):  # a fresh session each time: the first refusal opens the logger's connection
        for m, out in ((other, cold_refused), (own, cold_granted)):
            with psycopg.connect(dsn) as conn:
                conn.execute("SET ROLE memoriesdb_backend")
                conn.commit()
                out.append(timed(conn, small[0], recall, {"m": m}))
    ratio_row(
        "refused recall(), first in a new session (opens the logger's connection) vs granted recall(), new session",
        cold_refused,
        cold_granted,
    )

    with psycopg.connect(dsn, autocommit=True) as su:
        after = su.execute("SELECT count(*) FROM memoriesdb.access_log").fetchone()[0]
        size = su.execute("SELECT pg_total_relation_size('memoriesdb.access_log') / 1024.0 / 1024").fetchone()[0]
        per_row = su.execute(
            "SELECT avg(pg_column_size(l.*)) FROM (SELECT * FROM memoriesdb.access_log "
            "ORDER BY id DESC LIMIT 1000) AS l WHERE l.function = 'search'"
        ).fetchone()[0]

    out = args.out
    lines = [
        "# Access log benchmark\n",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}; database {args.db} (bench/search.py's data), "
        f"{args.queries} queries, k = 10; client-side latency of one transaction (context + call); "
        "A and B interleaved query by query in one connection.\n",
        "| A vs B | A p50 ms | A p99 ms | B p50 ms | B p99 ms | A/B (p50) |",
        "|---|---|---|---|---|---|",
    ]
    for label, a50, a99, b50, b99, r in rows:
        lines.append(f"| {label} | {a50:.2f} | {a99:.2f} | {b50:.2f} | {b99:.2f} | {r:.3f} |")
    lines += [
        "\nCPU per call (/proc, backends' user + system time, 10 ms ticks; access_log_reads = autonomous; "
        "on this shared VM the same run varies by ±25%, read it for the logger's share):\n",
        "| search | caller backend, search() ms | logger backend per entry ms | caller backend, vector_ranking() ms "
        "| caller-side ratio | total CPU ratio |",
        "|---|---|---|---|---|---|",
    ]
    for label, a_c, a_l, b_c in cpu_rows:
        # a smoke run's few calls can stay under one 10 ms tick: no ratio then
        r1, r2 = (f"{a_c / b_c:.3f}", f"{(a_c + a_l) / b_c:.3f}") if b_c > 0 else ("n/a", "n/a")
        lines.append(f"| {label} | {a_c:.3f} | {a_l:.3f} | {b_c:.3f} | {r1} | {r2} |")
    lines.append(
        f"\n- entries written: {after - before}; access_log now {after} rows, {size:.1f} MB with indexes; "
        f"a search entry (10 ids) is {per_row or 0:.0f} bytes"
    )
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    print(f"(written to {out})")


if __name__ == "__main__":
    main()
