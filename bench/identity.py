"""What does the proven context cost (issue 12)? remember() and search() p50/p99, each timed as its whole
transaction (context, call, COMMIT), over real non-superuser logins, in the same run, interleaved call by call:

  base     a ledger at @v0.3.0 (default): an app login sets a bare uuid with set_config (what anyone could)
  base_key the same ledger: an app login calls its authenticate(api_key) (what clients did)
  vouched  this checkout: a memoriesdb_backend login sets the uuid with set_config (trusted, recorded)
  proven   this checkout: a memoriesdb_app login calls authenticate(api_key) (throttle check, key lookup,
           the proof minted), then every policy and trigger verifies the proof (HMAC-SHA-256)

Usage: .venv/bin/python bench/identity.py [--base @v0.3.0] [--memories 3000] [--calls 300]
Writes bench/results/identity.md (and prints it). Uses databases mdb_id_bench_{base,head} and the logins
mdb_id_bench_app, mdb_id_bench_be (created and dropped here).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bounds import ROOT, build, p99, text

LOGINS = {"mdb_id_bench_app": "memoriesdb_app", "mdb_id_bench_be": "memoriesdb_backend"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="@v0.3.0")
    ap.add_argument("--memories", type=int, default=3000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--keep", action="store_true", help="keep the two databases")
    args = ap.parse_args()
    base_dsn, base_uid = build(args.host, "mdb_id_bench_base", args.base, args.memories, args.dim)
    head_dsn, head_uid = build(args.host, "mdb_id_bench_head", None, args.memories, args.dim)
    with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
        for login, role in LOGINS.items():
            su.execute(f"DROP ROLE IF EXISTS {login}")
            su.execute(f"CREATE ROLE {login} LOGIN IN ROLE {role}")
    with psycopg.connect(head_dsn, autocommit=True) as su:
        key = su.execute("SELECT memoriesdb.create_api_key(%s, 'infinity')", (head_uid,)).fetchone()[0]
    with psycopg.connect(base_dsn, autocommit=True) as su:
        base_key = su.execute("SELECT memoriesdb.create_api_key(%s)", (base_uid,)).fetchone()[0]

    def connect(dsn: str, login: str) -> psycopg.Connection:
        c = psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=login), autocommit=True)
        register_vector(c)
        return c

    modes = {  # name: (connection, how the transaction gets its context)
        "base": (connect(base_dsn, "mdb_id_bench_app"), "SELECT set_config('app.current_user', %s, true)", base_uid),
        "base_key": (connect(base_dsn, "mdb_id_bench_app"), "SELECT memoriesdb.authenticate(%s)", base_key),
        "vouched": (connect(head_dsn, "mdb_id_bench_be"), "SELECT set_config('app.current_user', %s, true)", head_uid),
        "proven": (connect(head_dsn, "mdb_id_bench_app"), "SELECT memoriesdb.authenticate(%s)", key),
    }
    calls = {
        "remember": lambda c, rng: c.execute("SELECT memoriesdb.remember(%s)", (text(rng),)),
        "search": lambda c, rng: c.execute(
            "SELECT id FROM memoriesdb.search(%s, 10)", (rng.standard_normal(args.dim).astype(np.float32),)
        ).fetchall(),
        "context only": lambda c, rng: c.execute("SELECT memoriesdb.current_user_id()"),
    }
    times = {(m, name): [] for m in modes for name in calls}
    rng = np.random.default_rng(9)
    for i in range(args.calls):
        for name, call in calls.items():
            order = list(modes) if i % 2 == 0 else list(reversed(list(modes)))
            for m in order:
                c, ctx, arg = modes[m]
                t = time.perf_counter()
                with c.transaction():
                    c.execute(ctx, (arg,))
                    call(c, rng)
                times[(m, name)].append((time.perf_counter() - t) * 1000)
    for c, _, _ in modes.values():
        c.close()
    with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
        for login in LOGINS:
            su.execute(f"DROP ROLE IF EXISTS {login}")
        if not args.keep:
            for db in ("mdb_id_bench_base", "mdb_id_bench_head"):
                su.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
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
    text_out = "\n".join(out) + "\n"
    (ROOT / "bench/results/identity.md").write_text(text_out)
    print(text_out)


if __name__ == "__main__":
    main()
