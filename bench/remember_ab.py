"""Before/after: remember() on ledgers deployed from different checkouts (and optionally this checkout with extra SQL
applied, e.g. a proposal), measured interleaved in short runs so that the load of a shared machine hits all alike.

  python bench/remember_ab.py --ledger before=/tmp/old-checkout --ledger after=. [--ledger r1=.:bench/x.sql]
         [--seconds 1] [--rounds 8] [--prefix mdb_ab] [--out FILE]
  python bench/remember_ab.py --smoke [--prefix P]   (this checkout alone, one round of 1 s runs: checks that the
         benchmark still runs)

Each round runs, for every ledger in turn (rotating order): plain INSERT, vouched and proven remember() at 1 client
(p50 of pgbench's per-transaction log) and at 8 clients for 8 owners (tps). Reported: medians over rounds, and
medians of per-round ratios (remember / plain of the same ledger and round; each ledger / the first ledger).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

import psycopg

from audit_chain import LOGIN, OWNERS, SCRIPTS, SETUP, drop_db

MODES = ["plain", "vouched", "proven"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ledger", action="append", help="name=checkout[:extra.sql]")
    ap.add_argument("--seconds", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--prefix", default="mdb_ab")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--out", default="")
    ap.add_argument(
        "--cpu",
        type=int,
        default=0,
        metavar="N",
        help="instead of pgbench: the server process's CPU time per transaction (/proc/<pid>/schedstat), "
        "N transactions per ledger and mode per round, one client (steadier on a busy machine)",
    )
    ap.add_argument("--smoke", action="store_true", help="one round of 1 s runs (default ledger: this checkout)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.cpu = 1, 1, min(args.cpu, 20)
        args.ledger = args.ledger or [f"head={Path(__file__).resolve().parents[1]}"]
    if not args.ledger:
        ap.error("--ledger is required (or --smoke)")
    ledgers = {}
    for spec in args.ledger:
        name, rest = spec.split("=", 1)
        checkout, _, extra = rest.partition(":")
        ledgers[name] = (Path(checkout).resolve(), extra)
    admin = f"postgresql://postgres@{args.host}/postgres"
    logins = {"app": (f"{args.prefix}_app", "memoriesdb_app"), "be": (f"{args.prefix}_be", "memoriesdb_backend")}
    with psycopg.connect(admin, autocommit=True) as su:
        for login, role in logins.values():
            su.execute(f"DROP ROLE IF EXISTS {login}")
            su.execute(f"CREATE ROLE {login} LOGIN IN ROLE {role}")
    for name, (checkout, extra) in ledgers.items():
        db = f"{args.prefix}_{name}"
        with psycopg.connect(admin, autocommit=True) as su:
            drop_db(su, db)
            su.execute(f"CREATE DATABASE {db}")
        subprocess.run(["sqitch", "--quiet", "deploy", f"db:pg://postgres@{args.host}/{db}"], cwd=checkout, check=True)
        with psycopg.connect(f"postgresql://postgres@{args.host}/{db}", autocommit=True) as c:
            if extra:
                c.execute((checkout / extra).read_text())
            c.execute(SETUP)
            for login, _ in logins.values():  # the bounds every ledger login gets
                c.execute("SELECT memoriesdb.configure_login(%s)", (login,))
            for login, _ in logins.values():
                c.execute(f"GRANT USAGE ON SCHEMA bench TO {login}")
                c.execute(f"GRANT SELECT ON bench.owners TO {login}")
                c.execute(f"GRANT INSERT ON bench.plain, bench.indexed TO {login}")
    if args.cpu:
        return cpu_ab(args, ledgers, logins)
    tmpd = Path(tempfile.mkdtemp())
    for m in MODES:
        (tmpd / f"{m}.sql").write_text(SCRIPTS[m])
    p50 = {(lg, m): [] for lg in ledgers for m in MODES}
    tps = {(lg, m): [] for lg in ledgers for m in MODES}
    names = list(ledgers)
    for r in range(args.rounds):
        for lg in names[r % len(names) :] + names[: r % len(names)]:
            db = f"{args.prefix}_{lg}"
            for m in MODES:
                for n in (1, OWNERS):
                    logdir = Path(tempfile.mkdtemp(dir=tmpd))
                    cmd = [
                        "pgbench",
                        "-n",
                        "-M",
                        "prepared",
                        "-h",
                        args.host,
                        "-U",
                        logins[LOGIN[m]][0],
                        "-c",
                        str(n),
                        "-j",
                        str(min(n, 2)),
                        "-T",
                        str(args.seconds),
                        "-f",
                        str(tmpd / f"{m}.sql"),
                        db,
                    ]
                    if n == 1:
                        cmd[-1:-1] = ["-l", "--log-prefix", str(logdir / "tx")]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    if n == 1:
                        lat = [int(x.split()[2]) / 1000 for f in logdir.iterdir() for x in f.read_text().splitlines()]
                        p50[(lg, m)].append(statistics.median(lat))
                    else:
                        tps[(lg, m)].append(float(out.split("tps = ")[1].split()[0]))
    with psycopg.connect(admin, autocommit=True) as su:
        for lg in ledgers:
            drop_db(su, f"{args.prefix}_{lg}")
        for login, _ in logins.values():
            su.execute(f"DROP ROLE IF EXISTS {login}")
    med = statistics.median
    first = names[0]
    out = [
        f"{args.rounds} rounds of {args.seconds} s runs, interleaved; medians over rounds. Ledgers: "
        + ", ".join(f"{k} = {v[0]}{' + ' + v[1] if v[1] else ''}" for k, v in ledgers.items()),
        "",
        "| ledger | mode | p50 ms | tps 8 writers | p50 / plain p50 | tps 8 / plain tps 8 "
        f"| p50 / {first}'s | tps 8 / {first}'s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lg in names:
        for m in MODES:
            rp = med([a / b for a, b in zip(p50[(lg, m)], p50[(lg, "plain")], strict=False)])
            rt = med([a / b for a, b in zip(tps[(lg, m)], tps[(lg, "plain")], strict=False)])
            fp = med([a / b for a, b in zip(p50[(lg, m)], p50[(first, m)], strict=False)])
            ft = med([a / b for a, b in zip(tps[(lg, m)], tps[(first, m)], strict=False)])
            out.append(
                f"| {lg} | {m} | {med(p50[(lg, m)]):.3f} | {med(tps[(lg, m)]):.0f} | {rp:.2f} | {rt:.2f} | {fp:.2f} | {ft:.2f} |"
            )
    text = "\n".join(out) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


def cpu_ab(args, ledgers, logins) -> None:
    statements = {  # mode: (login, context statement or None, the write)
        "plain": (
            "app",
            None,
            "INSERT INTO bench.plain (owner_id, content, metadata, content_hash, created_at, created_by, "
            "updated_at, updated_by) SELECT o.id, x.c, '{\"src\": \"bench\"}', sha256(convert_to(x.c, 'UTF8')), now(), "
            "o.id, now(), o.id FROM bench.owners AS o, (SELECT 'benchmark memory ' || random() AS c) AS x WHERE o.n = 1",
        ),
        "vouched": (
            "be",
            "SELECT set_config('app.current_user', o.id::text, true) FROM bench.owners AS o WHERE o.n = 1",
            "SELECT memoriesdb.remember('benchmark memory ' || random(), '{\"src\": \"bench\"}')",
        ),
        "proven": (
            "app",
            "SELECT memoriesdb.authenticate(o.api_key) FROM bench.owners AS o WHERE o.n = 1",
            "SELECT memoriesdb.remember('benchmark memory ' || random(), '{\"src\": \"bench\"}')",
        ),
    }
    conns, pids = {}, {}
    for lg in ledgers:
        for m, (login, _, _) in statements.items():
            dsn = f"postgresql://{logins[login][0]}@{args.host}/{args.prefix}_{lg}"
            conns[(lg, m)] = psycopg.connect(dsn, autocommit=True)
            pids[(lg, m)] = conns[(lg, m)].execute("SELECT pg_backend_pid()").fetchone()[0]

    def run(lg: str, m: str, k: int) -> float:
        cn = conns[(lg, m)]
        _, ctx, write = statements[m]
        stat = Path(f"/proc/{pids[(lg, m)]}/schedstat")
        t0 = int(stat.read_text().split()[0])
        for _ in range(k):
            with cn.transaction():
                if ctx:
                    cn.execute(ctx)
                cn.execute(write)
        return (int(stat.read_text().split()[0]) - t0) / 1000 / k

    for key in conns:
        run(*key, 20)  # plans, caches
    us = {key: [] for key in conns}
    names = list(ledgers)
    for r in range(args.rounds):
        for lg in names[r % len(names) :] + names[: r % len(names)]:
            for m in statements:
                us[(lg, m)].append(run(lg, m, args.cpu))
    for cn in conns.values():
        cn.close()
    with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
        for lg in ledgers:
            drop_db(su, f"{args.prefix}_{lg}")
        for login, _ in logins.values():
            su.execute(f"DROP ROLE IF EXISTS {login}")
    med = statistics.median
    first = names[0]
    out = [
        f"Server CPU time per transaction (BEGIN, context, call, COMMIT), one client, {args.rounds} rounds of "
        f"{args.cpu} transactions per ledger and mode, interleaved; medians over rounds. Ledgers: "
        + ", ".join(f"{k} = {v[0]}{' + ' + v[1] if v[1] else ''}" for k, v in ledgers.items()),
        "",
        f"| ledger | mode | CPU µs per transaction | / plain INSERT | / {first}'s |",
        "|---|---|---|---|---|",
    ]
    for lg in names:
        for m in statements:
            rp = med([a / b for a, b in zip(us[(lg, m)], us[(lg, "plain")], strict=False)])
            fp = med([a / b for a, b in zip(us[(lg, m)], us[(first, m)], strict=False)])
            out.append(f"| {lg} | {m} | {med(us[(lg, m)]):.0f} | {rp:.2f} | {fp:.2f} |")
    text = "\n".join(out) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
