"""activate_model() benchmark (issue 15): how long a switch of the active embedding model takes for N
memories of one tenant, and what searches running meanwhile see, for a model of the same dimension and
one of another dimension.

Same run, same data: the released way of switching a same-dimension model (one UPDATE of
memories.embedding from memoriesdb.embeddings: a new row version per memory, its HNSW, GIN and GiST
index entries, one audit_log row with both rows' JSON, a vindexing job) is timed as the baseline
(rolled back), then activate_model() itself. While each switch runs, --searchers connections search
without pause as the application does (memoriesdb_backend, search() without a model): their latency
during the switch (p50, p99, max) and their errors are reported.

Usage: .venv/bin/python bench/activate.py [--n 5000] [--dim 384] [--other-dim 256] [--searchers 2] [--db NAME]
       [--out FILE] [--smoke (N = 300, results to a temporary file unless --out)]
Writes bench/results/activate.md (and prints it). Deploys into --db (memoriesdb_bench_activate), dropped at the end.
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
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def clustered(rng, n: int, dim: int, clusters: int = 50) -> np.ndarray:
    """Unit vectors around a few centres (real embeddings cluster; uniform random ones are HNSW's worst case)."""
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    v = centres[rng.integers(0, clusters, n)] + 1.4 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def load(dsn: str, n: int, dim: int, other_dim: int, rng) -> uuid.UUID:
    """One tenant of n memories (bulk COPY, triggers off as a restore would, then the text index columns set
    as remember() sets them), the active model's vectors in memories.embedding and in embeddings, and two
    complete models that are not active: 'same' (dim) and 'other' (other_dim), their vectors in embeddings
    under their own HNSW indexes, as their filling leaves them. Returns the tenant."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        owner = conn.execute("SELECT memoriesdb.create_user('bench')").fetchone()[0]
        active = conn.execute("SELECT id FROM memoriesdb.embedding_models WHERE state = 'active'").fetchone()[0]
        vectors = {"active": clustered(rng, n, dim), "same": clustered(rng, n, dim), "other": clustered(rng, n, other_dim)}
        ids = [uuid.uuid4() for _ in range(n)]
        now = datetime.now(UTC)
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # bulk load: no audit, no queue
            with conn.cursor().copy(
                "COPY memoriesdb.memories (id, owner_id, content, metadata, content_hash, revision, embedding, "
                "embedding_model, embedded_at, embedded_hash, created_at, created_by, updated_at, updated_by) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["uuid", "uuid", "text", "jsonb", "bytea", "int4", "vector", "text", "timestamptz", "bytea",
                              "timestamptz", "uuid", "timestamptz", "uuid"])  # fmt: skip
                for i, (mid, v) in enumerate(zip(ids, vectors["active"], strict=True)):
                    content = f"note {i} about {i % 97} things"
                    h = hashlib.sha256(content.encode()).digest()
                    cp.write_row([mid, owner, content, Jsonb({}), h, 1, v, "default", now, h, now, owner, now, owner])
            conn.execute(
                "UPDATE memoriesdb.memories SET content_tsv = to_tsvector('english', content) WHERE owner_id = %s",
                (owner,),
            )
        for name in ("same", "other"):
            conn.execute("SELECT memoriesdb.add_model(%s, 'ollama', %s)", (name, vectors[name].shape[1]))
        models = dict(conn.execute("SELECT name, id FROM memoriesdb.embedding_models").fetchall())
        for model_id in (active, models["same"], models["other"]):  # built after the load, as a filling builds it
            conn.execute(f'DROP INDEX IF EXISTS memoriesdb."embeddings_model_{model_id.hex}"')
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            with conn.cursor().copy(
                "COPY memoriesdb.embeddings (memory_id, model_id, content_hash, embedding, created_at, updated_at) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["uuid", "uuid", "bytea", "vector", "timestamptz", "timestamptz"])
                for name, model_id in (("active", active), ("same", models["same"]), ("other", models["other"])):
                    for i, (mid, v) in enumerate(zip(ids, vectors[name], strict=True)):
                        h = hashlib.sha256(f"note {i} about {i % 97} things".encode()).digest()
                        cp.write_row([mid, model_id, h, v, now, now])
            conn.execute("DELETE FROM memoriesdb.embedding_schedule")  # every model complete: no job left
        conn.execute(
            "SELECT memoriesdb_internal.create_model_index(id, dimension) FROM memoriesdb.embedding_models WHERE id = ANY(%s)",
            ([active, models["same"], models["other"]],),
        )
        conn.execute("VACUUM ANALYZE memoriesdb.memories")
        conn.execute("VACUUM ANALYZE memoriesdb.embeddings")
    return owner


def searches_during(dsn: str, owner: uuid.UUID, dims: list[int], searchers: int, activate) -> dict:
    """searchers connections search without pause (search(query, 10) as the application; a query of the
    dimension last accepted, the other one after an MDB11) while activate() runs; returns activate()'s time
    and the latencies and errors of the searches that overlapped it."""
    stop = threading.Event()
    ready = threading.Barrier(searchers + 1)
    log: list[tuple[float, float, str | None]] = []
    lock = threading.Lock()
    rng = np.random.default_rng(3)
    queries = {d: rng.standard_normal(d).astype(np.float32) for d in dims}

    def search(i: int) -> None:
        dim = dims[0]
        with psycopg.connect(dsn, autocommit=True) as c:
            register_vector(c)
            c.execute("SET ROLE memoriesdb_app")
            ready.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                err = None
                try:
                    with c.transaction():  # the context transaction-local, as under PgBouncer
                        c.execute("SELECT set_config('app.current_user', %s, true)", (str(owner),))
                        c.execute("SELECT count(*) FROM memoriesdb.search(%s, 10)", (queries[dim],)).fetchone()
                except psycopg.Error as exc:
                    err = exc.sqlstate
                    if exc.sqlstate == "MDB11":  # the model changed dimension: the client embeds with the new one
                        dim = next(d for d in dims if d != dim)
                with lock:
                    log.append((t0, time.perf_counter(), err))

    threads = [threading.Thread(target=search, args=(i,)) for i in range(searchers)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.5)
    called = time.perf_counter()
    activate()
    returned = time.perf_counter()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    during = [(t1 - t0) * 1000 for t0, t1, err in log if t0 < returned and t1 > called and err is None]
    errors = [err for t0, t1, err in log if err is not None]
    return {
        "seconds": returned - called,
        "searches": len(during),
        "p50": statistics.median(during) if during else float("nan"),
        "p99": percentile(during, 99),
        "max": max(during) if during else float("nan"),
        "errors": ", ".join(f"{e} x{errors.count(e)}" for e in sorted(set(errors))) or "none",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--other-dim", type=int, default=256)
    ap.add_argument("--searchers", type=int, default=2)
    ap.add_argument("--db", default="memoriesdb_bench_activate")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default="")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.n = 300
    out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/activate.md"))
    admin = f"postgresql://postgres@{args.host}/postgres"
    dsn = f"postgresql://postgres@{args.host}/{args.db}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {args.db}")
    subprocess.run(
        ["sqitch", "--quiet", "deploy", f"db:pg://postgres@{args.host}/{args.db}", "--set", f"embedding_dim={args.dim}"],
        cwd=ROOT,
        check=True,
    )
    try:
        t0 = time.perf_counter()
        owner = load(dsn, args.n, args.dim, args.other_dim, np.random.default_rng(15))
        load_s = time.perf_counter() - t0
        rows = []
        with psycopg.connect(dsn, autocommit=True) as c:

            def released_layout() -> None:
                # baseline: the same switch with memories.embedding's HNSW index (the layout before
                # active_model_index): every rewritten row is an HNSW insert; rolled back
                with c.transaction(force_rollback=True):
                    c.execute("SELECT * FROM memoriesdb.activate_model('same')")

            dims = [args.dim, args.other_dim]

            def switch(label: str, activate) -> None:
                rows.append((label, searches_during(dsn, owner, dims, args.searchers, activate)))

            c.execute("CREATE INDEX memories_embedding_hnsw ON memoriesdb.memories USING hnsw (embedding vector_ip_ops)")
            switch("baseline: same dimension, memories.embedding with its HNSW index (rolled back)", released_layout)
            c.execute("DROP INDEX memoriesdb.memories_embedding_hnsw")
            switch("activate_model(): same dimension", lambda: c.execute("SELECT * FROM memoriesdb.activate_model('same')"))
            switch(
                f"activate_model(): another dimension ({args.dim} -> {args.other_dim}, the column retyped)",
                lambda: c.execute("SELECT * FROM memoriesdb.activate_model('other')"),
            )
            audit = c.execute(
                "SELECT count(*) FROM memoriesdb.audit_log WHERE table_name = 'memories' AND op = 'UPDATE'"
            ).fetchone()[0]
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
            c.execute(f"DROP ROLE IF EXISTS memoriesdb_log_{hashlib.md5(args.db.encode()).hexdigest()[:12]}")
    base = rows[0][1]["seconds"]
    lines = [
        "# activate_model() benchmark\n",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}; {args.n} memories of one tenant, clustered unit vectors, models of "
        f"{args.dim} and {args.other_dim} dimensions, complete; {args.searchers} connections searching without pause "
        f"(search(query, 10) as the application: the exact plan, this tenant is below search_exact_max) during each "
        f"switch; 2 cores shared with other sessions. Load {load_s:.1f} s. Audit rows of the memories' UPDATEs "
        f"after both committed switches: {audit} (one per memory for the same dimension, two for another: the "
        f"mirror emptied for the retype, then filled).\n",
        "| switch | seconds | vs baseline | searches during it | p50 ms | p99 ms | max ms | search errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for what, r in rows:
        lines.append(
            f"| {what} | {r['seconds']:.2f} | {r['seconds'] / base:.2f}x | {r['searches']} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} | {r['errors']} |"
        )
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
