"""What failing closed costs a granted read (issue 12): recall() of one's own memory on a
ledger at a baseline (the entry pipelined: sent, not waited for) and on HEAD (the entry's
asynchronous commit waited for before the content is returned), interleaved call by call.

Usage: .venv/bin/python bench/fail_closed_recall.py --db mdb_base --db mdb_head [--calls 500]
(each database deployed; the app login memoriesdb_client must exist). Prints p50/p99.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg


def setup(db: str, host: str):
    admin = psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=True)
    uid = admin.execute("SELECT memoriesdb.create_user('i' || substr(md5(random()::text), 1, 6))").fetchone()[0]
    with admin.transaction():
        admin.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        m = admin.execute("SELECT memoriesdb.remember('timed')").fetchone()[0]
    return psycopg.connect(f"postgresql://memoriesdb_client@{host}/{db}"), uid, m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", action="append", required=True)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--host", default="127.0.0.1:5432")
    a = ap.parse_args()
    sessions = {db: setup(db, a.host) for db in a.db}
    times: dict[str, list[float]] = {db: [] for db in sessions}
    for i in range(a.calls + 100):  # the first 100 warm up
        for db, (app, uid, m) in sessions.items():
            t = time.perf_counter()
            app.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            app.execute("SELECT content FROM memoriesdb.recall(%s)", (m,)).fetchall()
            app.commit()
            if i >= 100:
                times[db].append((time.perf_counter() - t) * 1000)
    for db, ts in times.items():
        ts.sort()
        print(f"| {db} | {statistics.median(ts):.2f} | {ts[int(len(ts) * 0.99)]:.2f} |")


if __name__ == "__main__":
    main()
