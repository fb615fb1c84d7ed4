"""Runner benchmark (issues 4 and 15), all in one run on the same machine, interleaved in rounds so that the
load of a shared machine hits every side alike:
  1. the local model: raw model.encode of N texts in batches (the baseline: in a thread, as the worker calls
     it; the mean of a run just before and one just after the queue's), and the same N texts through the full
     queue (remember() -> worker: claim, embed, complete); the ratio queue / raw is the runner's overhead
     (goal <= 1.1). CPU seconds of each side: this process (torch, the worker's Python) and the
     server (the worker's backends, /proc/<pid>/schedstat).
  2. storing with a zero-cost provider (no model: one fixed random unit vector per text) through the queue,
     against the floor: the SAME vectors of as many new memories stored by ONE bulk statement as the table
     owner (the floor statement below: the rows complete_embedding_jobs() writes, into the same tables, with
     their indexes (the active model's HNSW index, the text indexes, the btrees) and their triggers (the audit of
     memories, stamps, the dimension check), but no queue: no claim, no lease check, no job removed).
     Goal: queue jobs/s >= 0.9 x floor rows/s. Also shown: the floor with triggers off
     (session_replication_role = replica: the indexes alone), and server CPU per job of each.
  3. remember -> searchable with a worker running (the local model): one memory remembered at a time, the time
     until its vector is in memories.embedding (what search() reads); p50 goal <= 1 s.
Usage: PYTHONPATH=runner .venv/bin/python bench/runner.py [--n 2000] [--zero-n 2000] [--rounds 3] [--batch 64]
       [--latency 30] [--db memoriesdb_bench_runner] [--out FILE] [--keep]
       [--smoke (64 memories, 256 zero-cost jobs, 1 round, 3 latency probes, the zero-cost provider in place
       of the model; results to a temporary file unless --out)]
Writes bench/results/runner.md. Drops and recreates database --db; drops it (and its logger role) at the end
unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from memoriesdb_runner import admin
from memoriesdb_runner.logs import configure
from memoriesdb_runner.providers import LocalProvider
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DIM = 384

# The floor: what complete_embedding_jobs() stores for the active model's jobs, in one statement, without the queue.
FLOOR = """
WITH v AS (SELECT u.id, u.e FROM unnest(%(ids)s::uuid[], %(vectors)s::vector[]) AS u(id, e)),
kept AS (
  INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding, created_at, updated_at)
  SELECT v.id, %(model_id)s, m.content_hash, v.e, now(), now() FROM v JOIN memoriesdb.memories AS m ON m.id = v.id
  RETURNING memory_id)
UPDATE memoriesdb.memories AS m
   SET embedding = v.e, embedding_model = %(model)s, embedded_at = now(), embedded_hash = m.content_hash,
       updated_at = now()
  FROM v WHERE m.id = v.id"""


class ZeroCostProvider:
    """No model: each text's vector is a fixed random unit vector (the same one every time it is asked for, so
    the floor stores the very same vectors). Distinct vectors: an HNSW insert of one repeated vector is not
    what a model's vectors cost."""

    model = "zero-cost"

    def __init__(self, dim: int):
        self.dim = dim
        self.cache: dict[str, np.ndarray] = {}

    def vector(self, text: str) -> np.ndarray:
        v = self.cache.get(text)
        if v is None:
            v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dim).astype(np.float32)
            v /= np.linalg.norm(v)
            self.cache[text] = v
        return v

    def encode(self, texts):  # LocalProvider's synchronous call (the raw baseline)
        return np.stack([self.vector(t) for t in texts])

    async def embed(self, texts):
        return self.encode(texts)

    async def dimension(self):
        return self.dim

    async def aclose(self):
        pass


def backend_cpu(pid: int) -> float:
    """CPU seconds a server process has run (its schedstat: ns on the CPU)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except OSError:
        return 0.0


class ServerCPU:
    """CPU seconds of the server processes of one login on one database while it runs: the pids are found in
    pg_stat_activity every 50 ms (a backend's first 50 ms and the last 50 ms of one that exits are missed)."""

    def __init__(self, admin_dsn: str, db: str, login: str):
        self.dsn, self.db, self.login = admin_dsn, db, login
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()

    def __enter__(self):
        self._conn = psycopg.connect(self.dsn, autocommit=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.05)

    def sample(self):
        for (pid,) in self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND usename = %s", (self.db, self.login)
        ):
            t = backend_cpu(pid)
            self.first.setdefault(pid, t)
            self.last[pid] = max(t, self.last.get(pid, 0.0))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._conn.close()

    @property
    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.first)


def load(admin_dsn: str, texts: list[str]) -> list:
    """remember() the texts as a new user; their memory ids (their jobs are queued by remember())."""
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        uid = c.execute("SELECT memoriesdb.create_user(%s)", (f"bench{time.time_ns()}",)).fetchone()[0]
        with c.transaction():
            c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            return [r[0] for r in c.execute("SELECT memoriesdb.remember(t) FROM unnest(%s::text[]) AS t", (texts,))]


def run_queue(settings: Settings, provider, admin_dsn: str, db: str) -> tuple[int, float, float, float]:
    """Empties the queue with run_embed_workers: (jobs, wall s, this process's CPU s, server CPU s)."""
    with ServerCPU(admin_dsn, db, "memoriesdb_runner") as server:
        t, c = time.perf_counter(), time.process_time()
        done = asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False, provider=provider))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        server.sample()
    return done, wall, cpu, server.seconds


def run_floor(admin_dsn: str, ids: list, vectors: list[np.ndarray], replica: bool) -> tuple[float, float]:
    """The floor statement for these memories (their jobs removed first, untimed): (wall s, server CPU s)."""
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        register_vector(c)
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        c.execute("DELETE FROM memoriesdb.embedding_schedule WHERE memory_id = ANY (%s)", (ids,))
        model_id, model = c.execute("SELECT id, name FROM memoriesdb.embedding_models WHERE state = 'active'").fetchone()
        with c.transaction():
            if replica:  # the triggers off (the audit, stamps, checks): the indexes alone
                c.execute("SET LOCAL session_replication_role = replica")
            t, s = time.perf_counter(), backend_cpu(pid)
            c.execute(FLOOR, {"ids": ids, "vectors": vectors, "model_id": model_id, "model": model})
        wall = time.perf_counter() - t  # the commit included (the audit's seal)
        return wall, backend_cpu(pid) - s


MIRROR = """UPDATE memoriesdb.memories AS m
   SET embedding = v.e, embedding_model = %(model)s, embedded_at = now(), embedded_hash = m.content_hash, updated_at = now()
  FROM unnest(%(ids)s::uuid[], %(vectors)s::vector[]) AS v(id, e) WHERE m.id = v.id"""
INSERT = """INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding, created_at, updated_at)
SELECT v.id, %(model_id)s, m.content_hash, v.e, now(), now()
  FROM unnest(%(ids)s::uuid[], %(vectors)s::vector[]) AS v(id, e) JOIN memoriesdb.memories AS m ON m.id = v.id"""
# (name, statements before, what is measured); every variant in a transaction that is rolled back (no commit, no seal)
PROFILE = [
    ("claim_model_embedding_jobs", [], "claim"),
    ("complete_embedding_jobs (after the claim)", [], "complete"),
    ("floor statement", [], "floor"),
    ("mirror UPDATE alone", [], "mirror"),
    ("mirror UPDATE, audit trigger off", ["ALTER TABLE memoriesdb.memories DISABLE TRIGGER audit"], "mirror"),
    ("mirror UPDATE, all triggers off", ["SET LOCAL session_replication_role = replica"], "mirror"),
    ("mirror UPDATE, all triggers and HNSW indexes off", ["SET LOCAL session_replication_role = replica", "DROP HNSW"], "mirror"),
    ("embeddings INSERT alone", [], "insert"),
    ("embeddings INSERT, HNSW indexes off", ["DROP HNSW"], "insert"),
]


def profile(admin_dsn: str, zero: ZeroCostProvider, batch: int, reps: int) -> dict[str, list[float]]:
    """Server CPU per job of each step of a completion and of its parts (the audit, the other triggers, the HNSW
    inserts), one batch of new memories per variant and repetition, variants interleaved."""
    out: dict[str, list[float]] = {name: [] for name, _, _ in PROFILE}
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        register_vector(c)
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        model_id, model = c.execute("SELECT id, name FROM memoriesdb.embedding_models WHERE state = 'active'").fetchone()
        hnsw = [
            r[0]
            for r in c.execute(
                "SELECT format('%I.%I', schemaname, indexname) FROM pg_indexes WHERE schemaname = 'memoriesdb'"
                " AND tablename IN ('memories', 'embeddings') AND indexdef LIKE '%USING hnsw%'"
            )
        ]
        for r in range(reps):
            for name, before, what in PROFILE if r % 2 == 0 else reversed(PROFILE):
                texts = [f"profile {r} {name} {i} {time.time_ns()}" for i in range(batch)]
                ids = load(admin_dsn, texts)
                vectors = [zero.vector(t) for t in texts]
                p = {"ids": ids, "vectors": vectors, "model_id": model_id, "model": model}
                c.execute("BEGIN")
                try:
                    for stmt in before:
                        for q in [f"DROP INDEX {i}" for i in hnsw] if stmt == "DROP HNSW" else [stmt]:
                            c.execute(q)
                    if what == "complete":
                        jobs = c.execute(
                            "SELECT memory_id, lease_id FROM memoriesdb.claim_model_embedding_jobs(%s, '5 min', 'p')",
                            (batch,),
                        ).fetchall()
                        p = {"m": [j[0] for j in jobs], "l": [j[1] for j in jobs], "e": [zero.vector(t) for t in texts]}
                        assert len(jobs) == batch
                    elif what != "claim":
                        c.execute("DELETE FROM memoriesdb.embedding_schedule WHERE memory_id = ANY (%s)", (ids,))
                    t = backend_cpu(pid)
                    if what == "claim":
                        c.execute("SELECT count(*) FROM memoriesdb.claim_model_embedding_jobs(%s, '5 min', 'p')", (batch,))
                    elif what == "complete":
                        c.execute(
                            "SELECT count(*) FROM memoriesdb.complete_embedding_jobs(%(m)s::uuid[], %(l)s::uuid[], %(e)s, 'p')", p
                        )
                    else:
                        c.execute({"floor": FLOOR, "mirror": MIRROR, "insert": INSERT}[what], p)
                    out[name].append((backend_cpu(pid) - t) / batch * 1e3)
                finally:
                    c.execute("ROLLBACK")
    return out


async def searchable_latency(settings: Settings, provider, admin_dsn: str, probes: int) -> list[float]:
    """Seconds from remember() returning to the memory's vector in memories.embedding, one memory at a time,
    with a worker running (woken by the queue's NOTIFY)."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_embed_workers(settings, install_signals=False, provider=provider, stop=stop))
    out = []
    try:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as c:
            uid = (await (await c.execute("SELECT memoriesdb.create_user(%s)", (f"lat{time.time_ns()}",))).fetchone())[0]
            # the worker is up when a first memory is embedded
            for i in range(probes + 1):
                async with c.transaction():
                    await c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                    mid = (
                        await (
                            await c.execute("SELECT memoriesdb.remember(%s)", (f"latency probe {i} {time.time_ns()}",))
                        ).fetchone()
                    )[0]
                t = time.perf_counter()
                deadline = t + 60
                while time.perf_counter() < deadline:
                    cur = await c.execute("SELECT embedding IS NOT NULL FROM memoriesdb.memories WHERE id = %s", (mid,))
                    if (await cur.fetchone())[0]:
                        break
                    await asyncio.sleep(0.002)
                else:
                    raise RuntimeError("a remembered memory was not embedded within 60 s")
                if i:
                    out.append(time.perf_counter() - t)
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await worker
    return out


def med(xs):
    return statistics.median(xs)


def spread(xs, fmt="{:.3f}"):
    return f"{fmt.format(min(xs))}–{fmt.format(max(xs))}" if len(xs) > 1 else "–"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--zero-n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--latency", type=int, default=30, help="remember -> searchable probes")
    ap.add_argument("--profile-reps", type=int, default=5, help="repetitions of each step of the CPU profile")
    ap.add_argument("--db", default="memoriesdb_bench_runner")
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.zero_n, args.rounds, args.latency, args.profile_reps = 64, 256, 1, 3, 1
    out = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/runner.md"))
    db = args.db
    admin_dsn = f"postgresql://postgres@127.0.0.1/{db}"
    with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    admin.deploy(admin_dsn)
    admin.ensure_local_logins(admin_dsn)
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        # the 500-job batches below are past the default cap on one claim (256): raised in this
        # throwaway database only, so the rows stay comparable with earlier runs
        c.execute("UPDATE memoriesdb.config SET value = '500' WHERE key = 'embedding_max_batch_size'")
    settings = Settings(
        _env_file=None,
        dsn=f"postgresql://memoriesdb_runner@127.0.0.1/{db}",
        admin_dsn=admin_dsn,
        batch_size=args.batch,
        poll_seconds=0.5,
        listen_port=5432,
    )
    configure("WARNING")

    # --smoke: the zero-cost provider in place of the model (importing torch alone costs 10 s of CPU)
    zero = ZeroCostProvider(DIM)
    provider = zero if args.smoke else LocalProvider(settings)
    texts = [f"baseline memory number {i} about {i * 7919 % 1000}" for i in range(args.n)]
    provider.encode(texts[:64])  # warm up
    local = []  # per round: raw wall, raw cpu, queue wall, queue client cpu, queue server cpu
    zrows = {}  # (what) -> per round (jobs, wall, client cpu, server cpu)
    configs = [(args.batch, 1), (500, 1)]

    def raw() -> tuple[float, float]:
        """model.encode of the texts in batches, as the worker calls it (in a thread: asyncio.to_thread)."""

        async def go():
            for i in range(0, len(texts), args.batch):
                await asyncio.to_thread(provider.encode, texts[i : i + args.batch])

        t, c = time.perf_counter(), time.process_time()
        asyncio.run(go())
        return time.perf_counter() - t, time.process_time() - c

    for r in range(args.rounds):
        with psycopg.connect(admin_dsn, autocommit=True) as c:  # the last round's writes vacuumed, untimed
            c.execute("VACUUM memoriesdb.memories, memoriesdb.embeddings, memoriesdb.embedding_schedule")
        # the baseline brackets the queue's run: the mean of one raw run just before and one just after
        before_s, before_cpu = raw()
        load(admin_dsn, texts)  # the very same texts, now through the queue
        done, q_s, q_cpu, q_srv = run_queue(settings, provider, admin_dsn, db)
        assert done == args.n, done
        after_s, after_cpu = raw()
        local.append(((before_s + after_s) / 2, (before_cpu + after_cpu) / 2, q_s, q_cpu, q_srv))

        # the queue and the floor, in alternating order from round to round
        steps = [("queue", b, w) for b, w in configs] + [("floor", None, False), ("floor", None, True)]
        if r % 2:
            steps.reverse()
        for kind, batch, arg in steps:
            ztexts = [f"zero-cost job {r} {kind} {batch} {arg} {i}" for i in range(args.zero_n)]
            ids = load(admin_dsn, ztexts)
            vectors = [zero.vector(t) for t in ztexts]  # made before the clock starts: the provider costs nothing
            if kind == "queue":
                s2 = settings.model_copy(update={"batch_size": batch, "concurrency": arg})
                done, secs, ccpu, scpu = run_queue(s2, zero, admin_dsn, db)
                assert done == args.zero_n, done
                zrows.setdefault(("queue", batch, arg), []).append((done, secs, ccpu, scpu))
            else:
                secs, scpu = run_floor(admin_dsn, ids, vectors, replica=arg)
                zrows.setdefault(("floor", None, arg), []).append((args.zero_n, secs, 0.0, scpu))

    prof = profile(admin_dsn, zero, args.batch, args.profile_reps)
    lat = asyncio.run(searchable_latency(settings, provider, admin_dsn, args.latency))

    if not args.keep:
        from audit_chain import drop_db  # this script's directory is on sys.path

        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
            drop_db(c, db)

    n = args.n
    ratios = [q / raw for raw, _, q, _, _ in local]
    lines = [
        "# Runner benchmark\n",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}; {n} memories, batch {args.batch}, "
        f"{'the zero-cost provider (--smoke)' if args.smoke else 'local all-MiniLM-L6-v2 on the CPU'} "
        f"({os.cpu_count()} cores, shared: load average {os.getloadavg()[0]:.1f} at the end); {args.rounds} rounds, "
        "interleaved; medians, with the range over rounds.\n",
        "## 1. Runner overhead with the local model\n",
        "raw: model.encode of the same texts in batches of the same size, called as the worker calls it (in a "
        "thread), the mean of one run just before and one just after the queue's (the last round's writes vacuumed "
        "first).\n",
        "| round | raw model.encode s | full queue s (one worker) | queue / raw | raw CPU s | queue CPU s: "
        "this process | queue CPU s: server |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, (raw, rc, q, qc, qs) in enumerate(local, 1):
        lines.append(f"| {i} | {raw:.2f} | {q:.2f} | {q / raw:.3f} | {rc:.2f} | {qc:.2f} | {qs:.2f} |")
    lines += [
        f"\nrunner overhead: full queue / raw encode = **{med(ratios):.3f}** (median; rounds {spread(ratios)}); "
        f"memories/s raw {n / med([x[0] for x in local]):.0f}, queue {n / med([x[2] for x in local]):.0f}. "
        f"CPU per memory: raw {med([x[1] for x in local]) / n * 1e3:.2f} ms; queue "
        f"{med([x[3] for x in local]) / n * 1e3:.2f} ms in this process + "
        f"{med([x[4] for x in local]) / n * 1e3:.2f} ms on the server.\n",
        "## 2. Storing: queue with a zero-cost provider vs the bulk floor\n",
        f"{args.zero_n} new memories per run; the floor stores the same vectors (one per text) in ONE statement as "
        "the table owner: INSERT into memoriesdb.embeddings and UPDATE of memories.embedding (+ embedding_model, "
        "embedded_at, embedded_hash) from unnest() of the ids and vectors, with every index and trigger of those "
        "tables (the active model's HNSW index, on embeddings since active_model_index, before it on "
        "memories.embedding; memories' GIN, GiST and btrees; the audit trigger and its seal at commit), without the queue. "
        "'triggers off': the same statement under session_replication_role = replica (indexes only).\n",
        "'/ floor': jobs/s over the floor's rows/s (goal >= 0.9); 'floor CPU / server CPU': the floor's server CPU per "
        "row over this row's server CPU per job (the database's own work, steadier than wall time on a shared machine; "
        "1.0 = the queue makes the server do no more than the bulk statement). Client CPU: this process (the worker's "
        "Python, the provider).\n",
        "| what | batch | workers | jobs/s (median) | rounds | / floor | server CPU ms/job | floor CPU / server CPU "
        "| client CPU ms/job |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    floor_rate = med([j / s for j, s, _, _ in zrows[("floor", None, False)]])
    floor_cpu = med([s / j for j, _, _, s in zrows[("floor", None, False)]])
    for (kind, batch, arg), xs in sorted(zrows.items(), key=lambda kv: (kv[0][0] != "floor", kv[0][2], kv[0][1] or 0)):
        rates = [j / s for j, s, _, _ in xs]
        name = "queue (claim, complete)" if kind == "queue" else ("floor, triggers off" if arg else "floor")
        lines.append(
            f"| {name} | {batch or '-'} | {arg if kind == 'queue' else '-'} | {med(rates):.0f} | "
            f"{spread(rates, '{:.0f}')} | {med(rates) / floor_rate:.2f} | "
            f"{med([s / j for j, _, _, s in xs]) * 1e3:.3f} | {floor_cpu / med([s / j for j, _, _, s in xs]):.2f} | "
            f"{med([c / j for j, _, c, _ in xs]) * 1e3 if kind == 'queue' else 0:.3f} |"
        )
    lines += [
        f"\n## Where a completed job's server CPU goes (batch {args.batch}, one batch of new memories per step and "
        f"repetition, {args.profile_reps} repetitions interleaved, each in a transaction rolled back: no commit, no seal)\n",
        "| step | server CPU ms/job (median) | range |",
        "|---|---|---|",
    ]
    for name, xs in prof.items():
        lines.append(f"| {name} | {med(xs):.3f} | {spread(xs)} |")
    lat_ms = sorted(x * 1e3 for x in lat)
    lines += [
        "\n## 3. remember -> searchable with a worker running\n",
        f"{len(lat)} memories, one at a time (100 ms apart), "
        f"{'zero-cost provider' if args.smoke else 'the local model'}: from remember()'s commit to the vector in "
        f"memories.embedding: p50 **{med(lat_ms):.0f} ms**, p90 {lat_ms[int(0.9 * (len(lat_ms) - 1))]:.0f} ms, "
        f"max {lat_ms[-1]:.0f} ms (goal p50 <= 1 s).",
    ]
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    print(f"(written to {out})")


if __name__ == "__main__":
    main()
