"""What failing closed costs a granted read (issue 12): recall() of one's own memory on a
ledger at a baseline (the entry pipelined: sent, not waited for) and on HEAD (the entry's
asynchronous commit waited for before the content is returned), interleaved call by call.

Usage: .venv/bin/python bench/fail_closed_recall.py --db mdb_base --db mdb_head [--calls 500] [--smoke (20 calls,
5 warm-up; one --db will do)]
(each database deployed; the local logins must exist: memoriesdb_runner.admin.ensure_local_logins). Prints p50/p99.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg


def caller_login(admin: psycopg.Connection) -> str:
    """The login whose calls are timed, vouching for the user with set_config: on a ledger where identity is
    proven (memoriesdb.authenticate exists) app logins may not, so the backend's local login memoriesdb_server;
    on older ledgers the app's memoriesdb_client, as these benchmarks first ran."""
    proven = admin.execute("SELECT to_regprocedure('memoriesdb.authenticate(text)') IS NOT NULL").fetchone()[0]
    return "memoriesdb_server" if proven else "memoriesdb_client"


def setup(db: str, host: str):
    admin = psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=True)
    uid = admin.execute("SELECT memoriesdb.create_user('i' || substr(md5(random()::text), 1, 6))").fetchone()[0]
    with admin.transaction():
        admin.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        m = admin.execute("SELECT memoriesdb.remember('timed')").fetchone()[0]
    return psycopg.connect(f"postgresql://{caller_login(admin)}@{host}/{db}"), uid, m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", action="append", required=True)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--host", default="127.0.0.1:5432")
    ap.add_argument("--smoke", action="store_true", help="20 calls: checks that the benchmark still runs")
    a = ap.parse_args()
    warm = 5 if a.smoke else 100
    if a.smoke:
        a.calls = 20
    sessions = {db: setup(db, a.host) for db in a.db}
    times: dict[str, list[float]] = {db: [] for db in sessions}
    for i in range(a.calls + warm):  # the first ones warm up
        for db, (app, uid, m) in sessions.items():
            t = time.perf_counter()
            app.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            app.execute("SELECT content FROM memoriesdb.recall(%s)", (m,)).fetchall()
            app.commit()
            if i >= warm:
                times[db].append((time.perf_counter() - t) * 1000)
    for db, ts in times.items():
        ts.sort()
        print(f"| {db} | {statistics.median(ts):.2f} | {ts[int(len(ts) * 0.99)]:.2f} |")


if __name__ == "__main__":
    main()
