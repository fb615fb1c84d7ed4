"""What does the proven context cost (issue 12)? remember() and search() p50/p99, each timed as its whole
transaction (context, call, COMMIT), over real non-superuser logins, in the same run, interleaved call by call:

  base     a ledger at @v0.3.0 (default): an app login sets a bare uuid with set_config (what anyone could)
  base_key the same ledger: an app login calls its authenticate(api_key) (what clients did)
  vouched  this checkout: a memoriesdb_backend login sets the uuid with set_config (trusted, recorded)
  proven   this checkout: a memoriesdb_app login calls authenticate(api_key) (throttle check, key lookup,
           the proof minted), then every policy and trigger verifies the proof (HMAC-SHA-256)

Usage: .venv/bin/python bench/identity.py [--base @v0.3.0] [--memories 3000] [--calls 300] [--db mdb_id_bench]
       [--out FILE] [--keep] [--smoke (50 memories, 10 calls; results to a temporary file unless --out)]
Writes bench/results/identity.md (and prints it). Uses databases <db>_{base,head} (dropped with their logger roles
at the end unless --keep) and the logins <db>_app, <db>_be (created, bounded with configure_login, and dropped here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from audit_chain import drop_db
from bounds import ROOT, build, p99, text


def server_cpu_ns(pid: int) -> int | None:
    """CPU time a server process has used (ns, /proc/<pid>/schedstat), when the server runs on this machine."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="@v0.3.0")
    ap.add_argument("--memories", type=int, default=3000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--db", default="mdb_id_bench")
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the two databases")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.memories, args.calls = 50, 10
    out_file = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/identity.md"))
    app_login, be_login = f"{args.db}_app", f"{args.db}_be"
    logins = {app_login: "memoriesdb_app", be_login: "memoriesdb_backend"}
    base_dsn, base_uid = build(args.host, f"{args.db}_base", args.base, args.memories, args.dim)
    head_dsn, head_uid = build(args.host, f"{args.db}_head", None, args.memories, args.dim)
    with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
        for login, role in logins.items():
            su.execute(f"DROP ROLE IF EXISTS {login}")
            su.execute(f"CREATE ROLE {login} LOGIN IN ROLE {role}")
    with psycopg.connect(head_dsn, autocommit=True) as su:
        for login in logins:  # the bounds every ledger login gets (see memoriesdb.unbounded_logins())
            su.execute("SELECT memoriesdb.configure_login(%s)", (login,))
        key = su.execute("SELECT memoriesdb.create_api_key(%s, 'infinity')", (head_uid,)).fetchone()[0]
    with psycopg.connect(base_dsn, autocommit=True) as su:
        base_key = su.execute("SELECT memoriesdb.create_api_key(%s)", (base_uid,)).fetchone()[0]

    def connect(dsn: str, login: str) -> psycopg.Connection:
        c = psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=login), autocommit=True)
        register_vector(c)
        return c

    modes = {  # name: (connection, how the transaction gets its context)
        "base": (connect(base_dsn, app_login), "SELECT set_config('app.current_user', %s, true)", base_uid),
        "base_key": (connect(base_dsn, app_login), "SELECT memoriesdb.authenticate(%s)", base_key),
        "vouched": (connect(head_dsn, be_login), "SELECT set_config('app.current_user', %s, true)", head_uid),
        "proven": (connect(head_dsn, app_login), "SELECT memoriesdb.authenticate(%s)", key),
    }
    calls = {
        "remember": lambda c, rng: c.execute("SELECT memoriesdb.remember(%s)", (text(rng),)),
        "search": lambda c, rng: c.execute(
            "SELECT id FROM memoriesdb.search(%s, 10)", (rng.standard_normal(args.dim).astype(np.float32),)
        ).fetchall(),
        "context only": lambda c, rng: c.execute("SELECT memoriesdb.current_user_id()"),
    }
    times = {(m, name): [] for m in modes for name in calls}
    cpu = {(m, name): [] for m in modes for name in calls}  # the server process's CPU per transaction, µs
    pids = {m: c.execute("SELECT pg_backend_pid()").fetchone()[0] for m, (c, _, _) in modes.items()}
    rng = np.random.default_rng(9)
    for i in range(args.calls):
        for name, call in calls.items():
            order = list(modes) if i % 2 == 0 else list(reversed(list(modes)))
            for m in order:
                c, ctx, arg = modes[m]
                c0 = server_cpu_ns(pids[m])
                t = time.perf_counter()
                with c.transaction():
                    c.execute(ctx, (arg,))
                    call(c, rng)
                times[(m, name)].append((time.perf_counter() - t) * 1000)
                c1 = server_cpu_ns(pids[m])
                if c0 is not None and c1 is not None:
                    cpu[(m, name)].append((c1 - c0) / 1000)
    for c, _, _ in modes.values():
        c.close()
    with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
        if not args.keep:
            for db in (f"{args.db}_base", f"{args.db}_head"):
                drop_db(su, db)
        for login in logins:
            su.execute(f"DROP ROLE IF EXISTS {login}")
    out = [
        "# The cost of a proven context",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, `bench/identity.py`: one tenant of {args.memories} embedded memories, "
        f"{args.calls} transactions of each kind per mode, interleaved call by call, over non-superuser logins. "
        f"base = `{args.base}` with a bare uuid (set_config), base_key = `{args.base}` with its authenticate(api_key); "
        "vouched = this checkout, a memoriesdb_backend login's set_config; proven = this checkout, a memoriesdb_app "
        "login's authenticate(api_key). Machine load shifts absolute times; the ratios of interleaved calls are what "
        "count. Each timed as its whole "
        "transaction: context, call, COMMIT (where remember() seals its audit rows). `context only`: the context and "
        "one current_user_id().",
        "",
        "| call | base p50 ms | base_key p50 ms | vouched p50 ms | proven p50 ms | vouched / base | proven / base_key "
        "| proven / vouched | base p99 | base_key p99 | vouched p99 | proven p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in calls:
        b, bk, v, p = (times[(m, name)] for m in ("base", "base_key", "vouched", "proven"))
        mb, mbk, mv, mp = (statistics.median(x) for x in (b, bk, v, p))
        out.append(
            f"| {name} | {mb:.2f} | {mbk:.2f} | {mv:.2f} | {mp:.2f} | {mv / mb:.3f} | {mp / mbk:.3f} | {mp / mv:.3f} "
            f"| {p99(b):.2f} | {p99(bk):.2f} | {p99(v):.2f} | {p99(p):.2f} |"
        )
    if all(cpu.values()):
        out += [
            "",
            "The server process's CPU time per transaction (µs, median; /proc/<pid>/schedstat of each connection's "
            "backend, read around each timed transaction): what the proof costs the server, without the network and "
            "the client.",
            "",
            "| call | base | base_key | vouched | proven | proven − vouched | (proven − vouched) / vouched p50 latency |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in calls:
            cb, cbk, cv, cp = (statistics.median(cpu[(m, name)]) for m in ("base", "base_key", "vouched", "proven"))
            lat_v = statistics.median(times[("vouched", name)]) * 1000
            out.append(f"| {name} | {cb:.0f} | {cbk:.0f} | {cv:.0f} | {cp:.0f} | {cp - cv:.0f} | {(cp - cv) / lat_v:.3f} |")
    text_out = "\n".join(out) + "\n"
    out_file.write_text(text_out)
    print(text_out)
    print(f"(written to {out_file})")


if __name__ == "__main__":
    main()
