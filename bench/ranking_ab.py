"""A/B of the search rankings between two revisions (issue 16), on the search benchmark's data, side by side.

On a 2-core machine shared with other sessions the same query's time moved by 2x from one minute to the next
(bench/results/search.md's notes): two runs of bench/search.py, one per revision, compare the machine's moods more
than the code. This script installs vector_ranking() and text_ranking() (and the helpers of theirs listed in
FUNCTIONS) of both revisions into one database under other names (suffix _base and _head; the helpers they call that
are not listed are the database's own), then calls the two interleaved, query by query, alternating which goes
first, for the search benchmark's tenants, and writes p50 / p95 of each and head / base. It counts the queries whose
ids (in order) differ between the two (a faster ranking that answers otherwise is another ranking: say why) and drops
its functions at the end.

Usage: .venv/bin/python bench/search.py --keep        # once: builds memoriesdb_bench_search
       .venv/bin/python bench/ranking_ab.py --base REV [--head REV] [--queries 40] [--db NAME] [--out FILE]
       [--smoke (8 queries, results to a temporary file unless --out; on a --smoke --keep database of bench/search.py)]
--base/--head: git revisions (--head: the working tree when omitted). Writes bench/results/ranking_ab.md (and prints
it). Calls as the superuser with the tenant vouched by set_config (row-level security applies inside the rankings,
which run as memoriesdb_reader); the time is the server's, one statement each (no transaction or access log entry:
what the rankings cost, not the API's fixed cost).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
# (deploy file, functions taken from it in each revision); the names are renamed wherever these bodies call each other
FUNCTIONS = (
    ("db/deploy/search_fn.sql", ("filter_sample", "filter_matching", "choose_search_plan", "exact_ranking", "vector_ranking")),
    ("db/deploy/search_text_fn.sql", ("fulltext_ranking", "text_ranking")),
)
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
FILTERS = (("no filter", {}), ("metadata filter (1%)", {"metadata": {"topic": "t7"}}))


def source(rev: str | None, path: str) -> str:
    if rev is None:
        return (ROOT / path).read_text()
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def variant_sql(conn, rev: str | None, suffix: str) -> list[str]:
    """CREATE statements for the FUNCTIONS of revision rev, renamed with suffix, each owned and executable as the
    database's own function of that name is."""
    names = [n for _, ns in FUNCTIONS for n in ns]
    stmts = []
    for path, fns in FUNCTIONS:
        text = source(rev, path)
        for name in fns:
            m = re.search(rf"CREATE OR REPLACE FUNCTION memoriesdb_internal\.{name}\(.*?\n\$\$;\n", text, re.S)
            if m is None:
                if name in ("vector_ranking", "text_ranking"):
                    raise SystemExit(f"{rev or 'working tree'}: {path} has no function memoriesdb_internal.{name}")
                continue  # a helper this revision does not have (its rankings do not call it)
            body = m.group(0)
            for other in names:
                body = body.replace(f"memoriesdb_internal.{other}(", f"memoriesdb_internal.{other}{suffix}(")
            deployed = conn.execute(
                "SELECT p.proowner::regrole::text, pg_get_function_identity_arguments(p.oid) FROM pg_proc AS p "
                "WHERE p.pronamespace = 'memoriesdb_internal'::regnamespace AND p.proname = %s",
                (name,),
            ).fetchone()
            if deployed is None:
                raise SystemExit(f"the database has no memoriesdb_internal.{name}: deploy the working tree into it first")
            owner, args = deployed
            stmts += [
                body,
                f"ALTER FUNCTION memoriesdb_internal.{name}{suffix}({args}) OWNER TO {owner}",
                f"GRANT EXECUTE ON FUNCTION memoriesdb_internal.{name}{suffix}({args}) TO memoriesdb_reader",
            ]
    return stmts


def drop_variants(conn) -> None:
    for _, fns in FUNCTIONS:
        for name in fns:
            for suffix in ("_base", "_head"):
                for (sig,) in conn.execute(
                    "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
                    "WHERE p.pronamespace = 'memoriesdb_internal'::regnamespace AND p.proname = %s",
                    (name + suffix,),
                ).fetchall():
                    conn.execute(f"DROP FUNCTION {sig}")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="git revision of the rankings to compare against")
    ap.add_argument("--head", default=None, help="git revision (default: the working tree)")
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--db", default="memoriesdb_bench_search")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default="")
    ap.add_argument("--smoke", action="store_true", help="8 queries: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.queries = 8
    out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/ranking_ab.md"))
    dsn = f"postgresql://postgres@{args.host}/{args.db}"
    revs = {
        "base": subprocess.run(
            ["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip(),
        "head": args.head or "working tree",
    }

    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        users, grantee, sizes = conn.execute("SELECT users, grantee, sizes FROM public.bench_meta").fetchone()
        total = conn.execute("SELECT count(*) FROM memoriesdb.memories").fetchone()[0]
        drop_variants(conn)
        for suffix, rev in (("_base", args.base), ("_head", args.head)):
            for stmt in variant_sql(conn, rev, suffix):
                conn.execute(stmt)
        vectors = [
            r[0]
            for r in conn.execute(
                "SELECT embedding FROM memoriesdb.memories WHERE embedding IS NOT NULL ORDER BY id LIMIT %s", (args.queries,)
            )
        ]
        texts = [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]}" for i in range(args.queries)]
        callers = [(f"{f} tenant ({n} memories)", u) for f, n, u in zip(("30%", "5%", "1%", "0.1%"), sizes, users, strict=True)]
        callers.append(("grantee (shared memories)", grantee))
        load_start = os.getloadavg()[0]
        rows, differ = [], 0
        try:
            for label, user in callers:
                for fname, filt in FILTERS:
                    for ranking, queries in (("vector_ranking", vectors), ("text_ranking", texts)):
                        times = {"_base": [], "_head": []}
                        for i, q in enumerate(queries):
                            got = {}
                            for suffix in ("_base", "_head") if i % 2 else ("_head", "_base"):
                                sql = f"SELECT id FROM memoriesdb_internal.{ranking}{suffix}(%s, 10, %s)"
                                with conn.transaction():
                                    conn.execute("SELECT set_config('app.current_user', %s, true)", (str(user),))
                                    t = time.perf_counter()
                                    got[suffix] = [r[0] for r in conn.execute(sql, (q, Jsonb(filt))).fetchall()]
                                    times[suffix].append((time.perf_counter() - t) * 1000)
                            differ += got["_base"] != got["_head"]
                        b50, h50 = statistics.median(times["_base"]), statistics.median(times["_head"])
                        rows.append(
                            (label, fname, ranking, b50, pct(times["_base"], 95), h50, pct(times["_head"], 95), h50 / b50)
                        )
                        print(rows[-1], flush=True)
        finally:
            drop_variants(conn)
    load_end = os.getloadavg()[0]

    lines = [
        "# Rankings A/B (bench/ranking_ab.py)",
        "",
        f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%MZ')}; database {args.db} (bench/search.py's: {total} memories, its "
        f"tenants {', '.join(map(str, sizes))}); base {revs['base']}, head {revs['head']}; {args.queries} queries per row "
        "(stored vectors; two-word keyword queries), k = 10, the two "
        "interleaved query by query (alternating which goes first); statement time at the client, the context set "
        f"before it in the same transaction. Load average {load_start:.1f} at the start, {load_end:.1f} at the end. "
        f"Answers that differed between base and head: {differ}.",
        "",
        "| caller | filter | ranking | base p50 ms | base p95 ms | head p50 ms | head p95 ms | head / base (p50) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d:.2f} | {e:.2f} | {f:.2f} | {g:.2f} | {h:.2f} |" for a, b, c, d, e, f, g, h in rows]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\n(written to {out})")
    if differ:
        print(f"note: {differ} answers differed between base and head (a change of ranking, or of ties)")


if __name__ == "__main__":
    main()
