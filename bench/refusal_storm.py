"""Refusal storm benchmark (issue 12): one login sends N refused recall()s in one
session; how long they take and how many access log rows they write, on a ledger
deployed at a baseline (every refusal one row) and on HEAD (rows up to the burst
threshold per bucket, the rest counted in access_refusal_bursts). Also the p50 of a
granted recall() (its entry waited for on HEAD, pipelined at the baseline).

Usage: .venv/bin/python bench/refusal_storm.py --db mdb_base --db mdb_head [--n 10000] [--smoke (50 refusals,
20 granted calls; one --db will do)]
(each database already deployed; the local logins must exist: memoriesdb_runner.admin.ensure_local_logins).
Prints a markdown table; --out writes it to a file as well.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg


def caller_login(admin: psycopg.Connection) -> str:
    """The login whose calls are timed, vouching for the user with set_config: on a ledger where identity is
    proven (memoriesdb.authenticate exists) app logins may not, so the backend's local login memoriesdb_server;
    on older ledgers the app's memoriesdb_client, as these benchmarks first ran."""
    proven = admin.execute("SELECT to_regprocedure('memoriesdb.authenticate(text)') IS NOT NULL").fetchone()[0]
    return "memoriesdb_server" if proven else "memoriesdb_client"


def one(db: str, n: int, host: str, granted_calls: int = 500) -> dict:
    admin = psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=True)
    uid = admin.execute("SELECT memoriesdb.create_user(%s)", (f"storm{uuid.uuid4().hex[:8]}",)).fetchone()[0]
    with admin.transaction():
        admin.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        mine = admin.execute("SELECT memoriesdb.remember('a memory of my own')").fetchone()[0]
    rows_before = admin.execute("SELECT count(*) FROM memoriesdb.access_log").fetchone()[0]
    has_bursts = admin.execute("SELECT to_regclass('memoriesdb.access_refusal_bursts') IS NOT NULL").fetchone()[0]
    app = psycopg.connect(f"postgresql://{caller_login(admin)}@{host}/{db}")
    t0 = time.perf_counter()
    for _ in range(n):
        app.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        try:
            app.execute("SELECT * FROM memoriesdb.recall(%s)", (uuid.uuid4(),))
        except psycopg.Error as e:
            assert e.diag.sqlstate == "MDB03", e
        app.rollback()
    storm = time.perf_counter() - t0
    granted = []
    for _ in range(granted_calls):
        t = time.perf_counter()
        app.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        app.execute("SELECT content FROM memoriesdb.recall(%s)", (mine,)).fetchall()
        app.commit()
        granted.append(time.perf_counter() - t)
    app.execute("SELECT memoriesdb.flush_access_log()")
    app.close()
    rows = admin.execute("SELECT count(*) FROM memoriesdb.access_log").fetchone()[0] - rows_before - granted_calls
    aggregated = 0
    if has_bursts:
        aggregated = admin.execute(
            "SELECT coalesce(sum(aggregated), 0) FROM memoriesdb.access_refusal_bursts WHERE actor = %s", (uid,)
        ).fetchone()[0]
    admin.close()
    return {
        "db": db,
        "n": n,
        "seconds": storm,
        "per_refusal_ms": storm / n * 1000,
        "rows": rows,
        "aggregated": aggregated,
        "granted_p50_ms": statistics.median(granted) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", action="append", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--host", default="127.0.0.1:5432")
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true", help="50 refusals: checks that the benchmark still runs")
    a = ap.parse_args()
    if a.smoke:
        a.n = 50
    lines = [
        f"# Refusal storm: {a.n} refused recall()s by one login, one session",
        "",
        "| database | seconds | ms per refusal | access_log rows written | counted in bursts | rows + counted"
        " | granted recall p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for db in a.db:
        r = one(db, a.n, a.host, 20 if a.smoke else 500)
        lines.append(
            f"| {r['db']} | {r['seconds']:.1f} | {r['per_refusal_ms']:.2f} | {r['rows']} | {r['aggregated']} |"
            f" {r['rows'] + r['aggregated']} | {r['granted_p50_ms']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
