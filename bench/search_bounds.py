"""search_text() under its bounds (issue 13): p50/p99 at N memories for normal tenants, and with
one tenant that stores a 1 MB memory and searches with a query at every bound, on a ledger
deployed at a baseline tag (default @v0.2.0) and one at HEAD, with the same data, measured in
the same run and interleaved call by call (both see the same machine load).

The data set is bench/search.py's (one tenant of 30% of the rows, one of 0.1%, the rest in 300
tenants; each memory "cluster C note" and 8 words of a 52-word vocabulary; no embeddings, which
search_text does not read). Then:
  - the attacker, a tenant of 100 such memories, stores (through remember()) one more of 1 MB
    of the same vocabulary, and searches with a query at every bound of HEAD: 1000
    characters, 32 words (a phrase of 9 among them), the rest stop words;
  - HEAD only: two tenants whose content is the worst case for the ranking (every trigram
    of a memory is in the query): one memory of 1 MB of "ab ab ...", and 1999 memories of
    1000 characters of it (the exact plan scores them all): what one search may still cost.
  - how long a pg_cancel_backend() takes to end the attacker's search.

Usage: /work/main/.venv/bin/python bench/search_bounds.py [--n 100000] [--queries 200] [--db mdb_srch_bench] [--out FILE]
       [--keep] [--smoke (N = 2000, 5 queries, 1 slow one, 1 worst case, one cancel; results to a temporary file unless
       --out; the worst case of 50 memories, not 1999)]
Writes bench/results/search_bounds.md (and prints it). Databases: <db>_base and <db>_head, dropped (with their logger
roles) at the end unless --keep. The searches run as memoriesdb_backend (set_config) on a ledger where identity is
proven (app logins must authenticate()), as memoriesdb_app on older ones.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cobalt dune ember fjord "
    "garnet harbor iris jade kelp lagoon marble nectar onyx pearl quartz river slate tundra umber velvet"
).split()
STOP = "the and of to in is it that for on with as was at by".split()
COLUMNS = "id, owner_id, content, metadata, content_hash, revision, created_at, created_by, updated_at, updated_by"
TYPES = ["uuid", "uuid", "text", "jsonb", "bytea", "int4", "timestamptz", "uuid", "timestamptz", "uuid"]


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def words_of(rng: np.random.Generator, size: int) -> str:
    """Random words of the vocabulary, size characters."""
    out, n = [], 0
    while n < size:
        w = str(rng.choice(WORDS))
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:size].rstrip()


def max_query(rng: np.random.Generator, chars: int = 1000) -> str:
    """A query at every bound of HEAD: 32 words, 9 of them a phrase (8 phrase operators), the
    rest of the 1000 characters stop words (which the full-text form drops)."""
    ws = [str(w) for w in rng.choice(WORDS, 32)]
    q = '"' + " ".join(ws[:9]) + '" ' + " ".join(ws[9:])
    while True:
        w = str(rng.choice(STOP))
        if len(q) + 1 + len(w) > chars:
            break
        q += " " + w
    return q.ljust(chars)  # no stop word cut into a word


def copy_rows(conn: psycopg.Connection, rows) -> None:
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")  # bulk load: no triggers (audit, queue)
        with conn.cursor().copy(f"COPY memoriesdb.memories ({COLUMNS}) FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(TYPES)
            for row in rows:
                cp.write_row(row)


def row(owner: uuid.UUID, content: str, now: datetime, meta: dict) -> list:
    return [uuid.uuid4(), owner, content, Jsonb(meta), hashlib.sha256(content.encode()).digest(), 1, now, owner, now, owner]


def build(host: str, db: str, to: str | None, n: int, with_worst: bool, worst_rows: int = 1999) -> dict:
    """A fresh ledger with the data set; returns the tenants' ids by role."""
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")
    cmd = ["sqitch", "--quiet", "deploy", f"db:pg://postgres@{host}/{db}"] + (["--to", to] if to else [])
    subprocess.run(cmd, cwd=ROOT, check=True)
    rng = np.random.default_rng(7)  # the same data in both databases
    n_large, n_small = int(n * 0.3), max(10, int(n * 0.001))
    n_rest = n - n_large - n_small
    sizes = [n_large, n_small] + [n_rest // 300 + (1 if i < n_rest % 300 else 0) for i in range(300)]
    now = datetime.now(UTC)
    with psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=True) as conn:
        users = [conn.execute("SELECT memoriesdb.create_user(%s)", (f"t{i}",)).fetchone()[0] for i in range(len(sizes))]
        attacker = conn.execute("SELECT memoriesdb.create_user('attacker')").fetchone()[0]

        def data():
            for owner, size in zip(users + [attacker], sizes + [100], strict=True):
                for c in rng.integers(0, 200, size):
                    yield row(owner, f"cluster {c} note {' '.join(rng.choice(WORDS, 8))}", now, {"cluster": int(c)})

        copy_rows(conn, data())
        ids = {"large": users[0], "small": users[1], "attacker": attacker}
        if with_worst:
            ids["worst_one"] = conn.execute("SELECT memoriesdb.create_user('worst_one')").fetchone()[0]
            ids["worst_many"] = conn.execute("SELECT memoriesdb.create_user('worst_many')").fetchone()[0]
            with conn.transaction():
                conn.execute("SELECT set_config('app.current_user', %s, true)", (str(ids["worst_one"]),))
                conn.execute("SELECT memoriesdb.remember(%s)", ("ab " * 333_333,))
            copy_rows(conn, (row(ids["worst_many"], ("ab " * 334)[:1000], now, {}) for _ in range(worst_rows)))
        derived = conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'memoriesdb.memories'::regclass AND attname = 'content_trgm'"
        ).fetchone()[0]
        if derived:  # after v0.2.0 a trigger (which COPY above skipped) keeps content_tsv and content_trgm
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(
                    "UPDATE memoriesdb.memories SET content_tsv = memoriesdb_internal.content_tsvector(content),"
                    " content_trgm = memoriesdb_internal.trgm_prefix(content) WHERE content_tsv IS NULL"
                )
                # and what the trigger memory_words writes (since v0.5)
                if conn.execute("SELECT to_regprocedure('memoriesdb_internal.rebuild_memory_words()')").fetchone()[0]:
                    conn.execute("SELECT memoriesdb_internal.rebuild_memory_words()")
            conn.execute("VACUUM FULL memoriesdb.memories")  # no dead row versions, no bloated index
        conn.execute("VACUUM ANALYZE memoriesdb.memories")
    return ids


def caller_role(conn: psycopg.Connection) -> str:
    """The role whose searches are timed: one that may vouch for a user with set_config."""
    proven = conn.execute("SELECT to_regprocedure('memoriesdb.authenticate(text)') IS NOT NULL").fetchone()[0]
    return "memoriesdb_backend" if proven else "memoriesdb_app"


def remember_big(host: str, db: str, owner: uuid.UUID, content: str) -> None:
    with psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(owner),))
        conn.execute("SELECT memoriesdb.remember(%s)", (content,))


class App:
    """One application session (memoriesdb_app) on a database; each call in its own transaction."""

    def __init__(self, host: str, db: str):
        self.conn = psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=False)
        self.conn.execute(f"SET ROLE {caller_role(self.conn)}")
        self.conn.commit()

    def search(self, owner: uuid.UUID, query: str) -> float:
        t = time.perf_counter()
        with self.conn.transaction():
            self.conn.execute("SELECT set_config('app.current_user', %s, true)", (str(owner),))
            self.conn.execute("SELECT id FROM memoriesdb.search_text(%s, 10)", (query,)).fetchall()
        return (time.perf_counter() - t) * 1000

    def close(self) -> None:
        self.conn.close()


def interleaved(apps: dict[str, App], owner: dict[str, uuid.UUID], queries: list[str], only: tuple[str, ...]) -> dict:
    lat: dict[str, list[float]] = {k: [] for k in only}
    for i, q in enumerate(queries):
        for k in only if i % 2 == 0 else only[::-1]:  # each database goes first every other call
            lat[k].append(apps[k].search(owner[k], q))
    return {k: (statistics.median(v), percentile(v, 99), len(v)) for k, v in lat.items()}


REPEATED = (
    "SELECT count(*) FROM generate_series(1, 1000000) AS g"
    " CROSS JOIN LATERAL memoriesdb.search_text(CASE WHEN g > 0 THEN %s END) AS s"
)
ONCE = "SELECT count(*) FROM memoriesdb.search_text(%s)"


def cancel_latency(host: str, db: str, owner: uuid.UUID, query: str, after_s: float, sql: str = REPEATED) -> float:
    """Seconds from pg_cancel_backend(), after_s into the statement, to its end."""
    conn = psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=True)
    pid, ended, role = conn.info.backend_pid, {}, caller_role(conn)

    def run() -> None:
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL ROLE {role}")
                conn.execute("SELECT set_config('app.current_user', %s, true)", (str(owner),))
                conn.execute(sql, (query,))
        except psycopg.errors.QueryCanceled:
            pass
        ended["at"] = time.perf_counter()

    t = threading.Thread(target=run)
    t.start()
    time.sleep(after_s)
    with psycopg.connect(f"postgresql://postgres@{host}/{db}", autocommit=True) as su:
        sent = time.perf_counter()
        su.execute("SELECT pg_cancel_backend(%s)", (pid,))
    t.join()
    conn.close()
    return ended["at"] - sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--slow-queries", type=int, default=20, help="calls of the attacker's query on the baseline")
    ap.add_argument("--worst-many-calls", type=int, default=5, help="calls of the 1999-memory worst case (seconds each)")
    ap.add_argument("--base", default="@v0.2.0")
    ap.add_argument("--db", default="mdb_srch_bench")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the two databases")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    worst_one_calls, worst_rows, offsets = 50, 1999, (0.3, 0.7, 1.1, 1.5, 1.9)  # offsets: over the baseline's 2-3 s call
    if args.smoke:
        args.n, args.queries, args.slow_queries, args.worst_many_calls = 2000, 5, 1, 1
        worst_one_calls, worst_rows, offsets = 3, 50, (0.3,)
    out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/search_bounds.md"))
    dbs = {"base": f"{args.db}_base", "head": f"{args.db}_head"}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    ids = {
        "base": build(args.host, dbs["base"], args.base, args.n, False),
        "head": build(args.host, dbs["head"], None, args.n, True, worst_rows),
    }
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(11)
    normal = [f"{rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(args.queries)]
    attack = [max_query(rng) for _ in range(args.queries)]
    worst = '"' + " ".join(["ab"] * 9) + '" ' + " ".join(["ab"] * 23)
    big = words_of(np.random.default_rng(3), 1_000_000)
    results: list[tuple[str, dict]] = []
    apps = {k: App(args.host, db) for k, db in dbs.items()}
    try:
        for tenant in ("large", "small"):
            owner = {k: ids[k][tenant] for k in dbs}
            results.append((f"{tenant} tenant, 2-word queries", interleaved(apps, owner, normal, ("base", "head"))))
        for k, db in dbs.items():  # the attacker's 1 MB memory, through the API
            remember_big(args.host, db, ids[k]["attacker"], big)
        for tenant in ("large", "small"):
            owner = {k: ids[k][tenant] for k in dbs}
            results.append(
                (
                    f"{tenant} tenant, 2-word queries, the attacker's 1 MB memory stored",
                    interleaved(apps, owner, normal, ("base", "head")),
                )
            )
        owner = {k: ids[k]["attacker"] for k in dbs}
        both = interleaved(apps, owner, attack[: args.slow_queries], ("base", "head"))
        head = interleaved(apps, owner, attack, ("head",))
        results.append(
            ("the attacker (100 memories + 1 MB): 1000-character query at every bound", {"base": both["base"], **head})
        )
        for tenant, what, calls in (
            ("worst_one", '1 MB of "ab ab ..."', worst_one_calls),
            ("worst_many", f'{worst_rows} memories of 1000 characters of "ab ab ..."', args.worst_many_calls),
        ):
            owner = {"head": ids["head"][tenant]}
            results.append(
                (
                    f'worst case: a tenant of {what}, query of 32 "ab" (9 a phrase)',
                    interleaved(apps, owner, [worst] * calls, ("head",)),
                )
            )
        cancel = {k: [cancel_latency(args.host, dbs[k], ids[k]["attacker"], attack[0], after) for after in offsets] for k in dbs}
        cancel_many = [cancel_latency(args.host, dbs["head"], ids["head"]["worst_many"], worst, after, ONCE) for after in offsets]
    finally:
        for a in apps.values():
            a.close()
    with psycopg.connect(f"postgresql://postgres@{args.host}/{dbs['head']}") as c:
        index_mb = c.execute("SELECT pg_relation_size('memoriesdb.memories_content_trgm') / 1e6").fetchone()[0]
    with psycopg.connect(f"postgresql://postgres@{args.host}/{dbs['base']}") as c:
        base_index_mb = c.execute("SELECT pg_relation_size('memoriesdb.memories_content_trgm') / 1e6").fetchone()[0]
    if not args.keep:
        with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
            for db in dbs.values():
                su.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
                su.execute(f"DROP ROLE IF EXISTS memoriesdb_log_{hashlib.md5(db.encode()).hexdigest()[:12]}")

    def cell(r: dict, k: str) -> str:
        return f"{r[k][0]:.2f} / {r[k][1]:.2f} ({r[k][2]})" if k in r else "not run (see below)"

    lines = [
        "# search_text under its bounds\n",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}; N = {args.n} memories in 303 tenants (bench/search.py's data set, no embeddings), "
        f"k = 10; baseline {args.base} vs HEAD, same data, interleaved call by call; client-side latency including "
        f"the transaction that sets the context; p50 / p99 in ms (calls). Two build steps took {load_s:.0f} s. "
        f"Trigram index: {base_index_mb:.0f} MB ({args.base}, whole content) vs {index_mb:.0f} MB "
        "(HEAD, the window: coalesce(content_trgm, content)). "
        f"Load average (2 CPUs, shared) {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.\n",
        f"| what | {args.base} p50 / p99 ms | HEAD p50 / p99 ms | p99 ratio |",
        "|---|---|---|---|",
    ]
    for what, r in results:
        ratio = f"{r['base'][1] / r['head'][1]:.1f}x" if "base" in r and "head" in r else ""
        lines.append(f"| {what} | {cell(r, 'base')} | {cell(r, 'head')} | {ratio} |")
    lines += [
        f"| pg_cancel_backend() {len(offsets)} times, {offsets[0]}-{offsets[-1]} s into the attacker's searches: "
        f"seconds until the statement ends, median / max | {statistics.median(cancel['base']):.3f} / {max(cancel['base']):.3f} s "
        f"| {statistics.median(cancel['head']):.3f} / {max(cancel['head']):.3f} s | |",
        f"| the same, into one search of the {worst_rows}-memory worst case | not run | {statistics.median(cancel_many):.3f} / "
        f"{max(cancel_many):.3f} s | |",
        "",
        f"The attacker's query on {args.base} was run {args.slow_queries} times only (each call reads all of the 1 MB memory).",
        f'The worst-case rows are not run on {args.base}: there one word similarity over 1 MB of "ab ab ..." runs for',
        'minutes (9.5 min with the query "ab", measured once by hand) and answers no cancel meanwhile.',
    ]
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    print(f"(written to {out})")


if __name__ == "__main__":
    main()
