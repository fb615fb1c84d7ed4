"""Search benchmark (issue 3): N synthetic memories across many tenants with seeded,
clustered vectors; p50/p99 latency and recall@10 of search() and search_hybrid()
for a large and a small tenant, against exact search over what each may see.

Usage: .venv/bin/python bench/search.py [--n 100000] [--dim 384] [--queries 200] [--db NAME] [--out FILE] [--keep] [--to CHANGE]
       [--smoke (N = 2000, 10 queries, results to a temporary file unless --out)]
Writes bench/results/search.md (and prints it). Deploys into database --db (memoriesdb_bench_search), dropped at the
end (and its logger role) unless --keep: bench/access_log.py reads it, so run this one with --keep first.
The app's calls run as memoriesdb_backend (identity vouched with set_config, as a backend does); the baselines run
as the superuser on their own connection (clients cannot read the table).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cobalt dune ember fjord "
    "garnet harbor iris jade kelp lagoon marble nectar onyx pearl quartz river slate tundra umber velvet"
).split()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--db", default="memoriesdb_bench_search")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the database (bench/access_log.py uses it)")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    ap.add_argument("--to", default="", help="deploy only up to this sqitch change (an A/B against an earlier plan)")
    ap.add_argument(
        "--released-search",
        action="store_true",
        help="A/B: after the deploy, run the reverts of search_fn and active_model_index (search() through "
        "memories.embedding's HNSW index, as before the active model's index on embeddings)",
    )
    args = ap.parse_args()
    if args.smoke:
        args.n, args.queries, args.clusters = 2000, 10, 20
    out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/search.md"))
    rng = np.random.default_rng(7)
    admin = f"postgresql://postgres@{args.host}/postgres"
    dsn = f"postgresql://postgres@{args.host}/{args.db}"

    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {args.db}")
    subprocess.run(
        ["sqitch", "--quiet", "deploy", f"db:pg://postgres@{args.host}/{args.db}", "--set", f"embedding_dim={args.dim}"]
        + (["--to", args.to] if args.to else []),
        cwd=ROOT,
        check=True,
    )
    if args.released_search:
        for change in ("search_fn", "active_model_index"):
            subprocess.run(
                [
                    "psql",
                    "-qX",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    args.host,
                    "-U",
                    "postgres",
                    "-d",
                    args.db,
                    "-f",
                    f"db/revert/{change}.sql",
                ],
                cwd=ROOT,
                check=True,
            )

    # tenants: one large (30% of rows, above search_exact_max), one small (0.1%), the rest in 300 tenants
    n_large, n_small = int(args.n * 0.3), max(10, int(args.n * 0.001))
    n_rest = args.n - n_large - n_small
    sizes = [n_large, n_small] + [n_rest // 300 + (1 if i < n_rest % 300 else 0) for i in range(300)]
    centers = rng.standard_normal((args.clusters, args.dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)

    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        users = [conn.execute("SELECT memoriesdb.create_user(%s)", (f"t{i}",)).fetchone()[0] for i in range(len(sizes))]
        # the HNSW index search() uses: on memories.embedding before active_model_index, else the active model's on
        # embeddings (its vectors copied from the mirror below, as a worker stores both); dropped for the bulk load
        mirror_index = conn.execute("SELECT to_regclass('memoriesdb.memories_embedding_hnsw') IS NOT NULL").fetchone()[0]
        active_model = None
        if mirror_index:
            conn.execute("DROP INDEX memoriesdb.memories_embedding_hnsw")
        else:
            active_model, index_name = conn.execute(
                "SELECT id, memoriesdb_internal.model_index_name(id) FROM memoriesdb.embedding_models WHERE state = 'active'"
            ).fetchone()
            conn.execute(f'DROP INDEX memoriesdb."{index_name}"')
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # bulk load: no triggers (audit, queue)
            now = datetime.now(UTC)
            with conn.cursor().copy(
                "COPY memoriesdb.memories (id, owner_id, content, metadata, content_hash, revision, "
                "embedding, embedding_model, embedded_at, embedded_hash, created_at, created_by, "
                "updated_at, updated_by) FROM STDIN WITH (FORMAT BINARY)"
            ) as cp:
                cp.set_types(
                    [
                        "uuid",
                        "uuid",
                        "text",
                        "jsonb",
                        "bytea",
                        "int4",
                        "vector",
                        "text",
                        "timestamptz",
                        "bytea",
                        "timestamptz",
                        "uuid",
                        "timestamptz",
                        "uuid",
                    ]
                )
                for owner, size in zip(users, sizes, strict=True):
                    cl = rng.integers(0, args.clusters, size)
                    vecs = centers[cl] + 0.35 * rng.standard_normal((size, args.dim)).astype(np.float32) / np.sqrt(args.dim) * 4
                    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                    for c, v in zip(cl, vecs, strict=True):
                        words = " ".join(rng.choice(WORDS, 8))
                        content = f"cluster {c} note {words}"
                        h = hashlib.sha256(content.encode()).digest()
                        cp.write_row(
                            [
                                uuid.uuid4(),
                                owner,
                                content,
                                Jsonb({"cluster": int(c)}),
                                h,
                                1,
                                v,
                                "bench",
                                now,
                                h,
                                now,
                                owner,
                                now,
                                owner,
                            ]
                        )
        load_s = time.perf_counter() - t0
        conn.execute("ANALYZE memoriesdb.memories")
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        t0 = time.perf_counter()
        if mirror_index:
            conn.execute("CREATE INDEX memories_embedding_hnsw ON memoriesdb.memories USING hnsw (embedding vector_ip_ops)")
            build_s = time.perf_counter() - t0
            conn.execute("ALTER INDEX memoriesdb.memories_embedding_hnsw OWNER TO memoriesdb_owner")
            index_mb = conn.execute("SELECT pg_relation_size('memoriesdb.memories_embedding_hnsw') / 1e6").fetchone()[0]
        else:
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(
                    "INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding, created_at, updated_at) "
                    "SELECT m.id, %s, m.content_hash, m.embedding, now(), now() FROM memoriesdb.memories AS m",
                    (active_model,),
                )
            conn.execute("ANALYZE memoriesdb.embeddings")
            t0 = time.perf_counter()
            conn.execute(
                "SELECT memoriesdb_internal.create_model_index(id, dimension) FROM memoriesdb.embedding_models WHERE id = %s",
                (active_model,),
            )
            build_s = time.perf_counter() - t0
            index_mb = conn.execute(
                "SELECT pg_relation_size(format('memoriesdb.%%I', memoriesdb_internal.model_index_name(%s))::regclass) / 1e6",
                (active_model,),
            ).fetchone()[0]
        conn.execute("VACUUM ANALYZE memoriesdb.memories")

    queries = (
        centers[rng.integers(0, args.clusters, args.queries)]
        + 0.35 * rng.standard_normal((args.queries, args.dim)).astype(np.float32) / np.sqrt(args.dim) * 4
    )
    texts = [f"{rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(args.queries)]

    def run(owner, sql, params_of, exact_sql=None, superuser=False):
        lat, recalls = [], []
        with psycopg.connect(dsn, autocommit=False) as app, psycopg.connect(dsn, autocommit=True) as su:
            register_vector(app)
            register_vector(su)
            if not superuser:  # a backend: vouches for the user with set_config (app logins must authenticate())
                app.execute("SET ROLE memoriesdb_backend")
            app.commit()
            for i, q in enumerate(queries):
                params = params_of(i, q)
                t = time.perf_counter()
                with app.transaction():
                    if not superuser:
                        app.execute("SELECT set_config('app.current_user', %s, true)", (str(owner),))
                    got = [r[0] for r in app.execute(sql, params).fetchall()]
                lat.append((time.perf_counter() - t) * 1000)
                if exact_sql:
                    truth = [r[0] for r in su.execute(exact_sql, {**params, "owner": owner}).fetchall()]
                    recalls.append(len(set(got) & set(truth)) / max(1, len(truth)))
        return statistics.median(lat), percentile(lat, 99), (statistics.mean(recalls) if recalls else None)

    exact = (
        "SELECT id FROM memoriesdb.memories WHERE owner_id = %(owner)s AND embedding IS NOT NULL "
        "ORDER BY (embedding <#> %(q)s) + 0 LIMIT 10"
    )
    vec = "SELECT id FROM memoriesdb.search(%(q)s, 10)"
    hyb = "SELECT id FROM memoriesdb.search_hybrid(%(t)s, %(q)s, 10)"
    rows = []

    def p(i, q):
        return {"q": q, "t": texts[i]}

    for label, owner, n in (("large", users[0], n_large), ("small", users[1], n_small)):
        p50, p99, rec = run(owner, vec, p, exact)
        rows.append((f"search, {label} tenant ({n} memories)", p50, p99, rec))
        p50, p99, _ = run(owner, hyb, p)
        rows.append((f"search_hybrid, {label} tenant", p50, p99, None))
        p50, p99, _ = run(owner, exact.replace("%(owner)s", f"'{owner}'"), p, superuser=True)
        rows.append((f"baseline: exact scan of the {label} tenant's rows (superuser SQL, no RLS)", p50, p99, 1.0))
    # why the small-tenant plan exists: the same search forced onto the HNSW index
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_exact_max'")
    p50, p99, rec = run(users[1], vec, lambda i, q: {"q": q}, exact)
    rows.append(("search, small tenant forced onto HNSW + iterative scan (search_exact_max = 0)", p50, p99, rec))
    if n_large <= 20000:  # below search_exact_max the large tenant took the exact plan above: its HNSW plan here
        p50, p99, rec = run(users[0], vec, lambda i, q: {"q": q}, exact)
        rows.append((f"search, large tenant ({n_large}) forced onto HNSW + iterative scan (search_exact_max = 0)", p50, p99, rec))

    if not args.keep:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
            c.execute(f"DROP ROLE IF EXISTS memoriesdb_log_{hashlib.md5(args.db.encode()).hexdigest()[:12]}")
    lines = [
        "# Search benchmark\n",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}{f' (--to {args.to})' if args.to else ''}"
        f"{' (released search)' if args.released_search else ''}; N = {args.n} memories, dim {args.dim}, "
        f"{len(sizes)} tenants, {args.clusters} clusters, {args.queries} queries per row, k = 10; "
        f"client-side latency including the transaction that sets the context.\n",
        f"- load (COPY, no triggers): {load_s:.1f} s; HNSW build (m=16, ef_construction=64, 2 workers): "
        f"{build_s:.1f} s; index size {index_mb:.0f} MB\n",
        "| what | p50 ms | p99 ms | recall@10 vs exact |",
        "|---|---|---|---|",
    ]
    for what, p50, p99, rec in rows:
        lines.append(f"| {what} | {p50:.2f} | {p99:.2f} | {'' if rec is None else f'{rec:.3f}'} |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    print(f"(written to {out})")


if __name__ == "__main__":
    main()
