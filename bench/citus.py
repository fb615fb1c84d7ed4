"""The ledger distributed by owner on Citus vs the single-node ledger (issue 17): remember, recall and search
throughput through the coordinator with 2 workers vs the single node on this same machine, in the same run,
interleaved round by round, as ratios. One machine cannot show a speed-up (coordinator, workers and the single node
share the same cores); what it shows is the overhead ratio, and the CPU each call costs the coordinator and the
workers, from which docs/citus.md derives a sizing model for N machines.

Every call is its own transaction over a real app login: memoriesdb.authenticate(api_key), the call, COMMIT.
Operations (each for --seconds per ledger per round; the ledgers in rotation, the first one rotating by round and
operation). Three ledgers: the single node, Citus, and the same Citus ledger with the client's sessions setting
citus.max_adaptive_executor_pool_size = 1 (one connection per worker for a multi-shard query):
  context only      authenticate() alone (the per-transaction fixed cost: throttle check, key lookup, the proof)
  remember x1 / x8  remember() with 1 client / 8 clients, each client its own owner
  recall x1 / x8    recall(id) of one of the client's own memories (seeded, 20 per owner)
  search small      search(q, 10) by an owner of 20 embedded memories (the exact plan)
  search large, exact plan / HNSW plan
                    search(q, 10) by a tenant of --tenant embedded memories, with the setting search_exact_max above
                    the tenant (the exact plan: its rows by owner) and at its default (the HNSW plan: the active
                    model's index on embeddings, on every shard on Citus); set per operation on each ledger
CPU per call: for Citus, the CPU of the coordinator's and the workers' whole clusters (postmaster + every backend,
exited ones included: this worktree's .citus/, nothing else runs there); for the single node, the CPU of this run's
backends in its database (other sessions share that cluster, so not the whole server).

Usage: scripts/citus.sh start   # the local cluster (coordinator 9700, workers 9701-9702)
       .venv/bin/python bench/citus.py [--db mdb_citus_bench] [--seconds 3] [--rounds 3] [--tenant 3000] [--out FILE]
       [--keep] [--reuse] [--smoke (0.3 s per operation, 1 round, a tenant of 150; results to a temporary file unless
       --out)]
Deploys <db> on the single node (5432, sqitch) and on the Citus cluster (scripts/citus.sh deploy) side by side, unless
--reuse (then both must hold a deployed ledger; fresh users are made in them). Logins <db>_app and <db>_wk are
created (both clusters) and dropped at the end; the databases are dropped unless --keep.
Writes bench/results/citus.md (and prints it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from audit_chain import drop_db
from bounds import ROOT, text

# the HNSW plan of a large tenant: fails on Citus at the time of writing (docs/citus.md §12); reported, not fatal
HNSW_OP = "search large x1, HNSW plan"
EXACT_MAX_DEFAULT = 700  # the ledger's search_exact_max
CITUS_DIR = Path(os.environ.get("CITUS_DIR", ROOT / ".citus"))
CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (user + system; with children: plus those of its exited, waited-for children)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / CLK


def cluster_cpu(datadir: Path) -> float:
    """CPU seconds of a whole PostgreSQL cluster: its postmaster, its exited children and its live ones."""
    pm = int((datadir / "postmaster.pid").read_text().split()[0])
    total = proc_cpu(pm, children=True)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if ppid == pm:
                total += proc_cpu(int(d.name))
    return total


class Ledger:
    def __init__(self, name: str, host: str, port: int, db: str, options: str = ""):
        self.name, self.host, self.port, self.db, self.options = name, host, port, db, options
        self.dsn = f"postgresql://postgres@{host}:{port}/{db}"
        self.citus = name.startswith("citus")

    def su(self) -> psycopg.Connection:
        c = psycopg.connect(self.dsn, autocommit=True)
        register_vector(c)
        return c

    def login(self, user: str) -> psycopg.Connection:
        c = psycopg.connect(psycopg.conninfo.make_conninfo(self.dsn, user=user, options=self.options), autocommit=True)
        register_vector(c)
        return c

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: {'coordinator', 'workers'} on Citus (and citus_stat_counters: connections opened to
        the workers, single- and multi-shard query executions); {'backends'} of this database on the single node."""
        if self.citus:
            with psycopg.connect(self.dsn, autocommit=True) as c:
                counters = c.execute(
                    "SELECT s.connection_establishment_succeeded, s.query_execution_single_shard, "
                    "s.query_execution_multi_shard FROM pg_database AS d, citus_stat_counters(d.oid) AS s "
                    "WHERE d.datname = current_database()"
                ).fetchone()
            return {
                "coordinator": cluster_cpu(CITUS_DIR / "coordinator"),
                "workers": cluster_cpu(CITUS_DIR / "worker1") + cluster_cpu(CITUS_DIR / "worker2"),
                "connections": counters[0],
                "single-shard": counters[1],
                "multi-shard": counters[2],
            }
        with psycopg.connect(f"postgresql://postgres@{self.host}:{self.port}/postgres", autocommit=True) as c:
            pids = [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.db,))]
        return {"backends": sum(proc_cpu(p) for p in pids)}


def deploy(led: Ledger) -> subprocess.Popen:
    if led.citus:
        return subprocess.Popen(["bash", "scripts/citus.sh", "deploy", led.db], cwd=ROOT, stdout=subprocess.DEVNULL)
    with psycopg.connect(f"postgresql://postgres@{led.host}:{led.port}/postgres", autocommit=True) as c:
        drop_db(c, led.db)
        c.execute(f"CREATE DATABASE {led.db}")
    return subprocess.Popen(["sqitch", "--quiet", "deploy", f"db:pg://postgres@{led.host}:{led.port}/{led.db}"], cwd=ROOT)


def setup(led: Ledger, args, logins: dict[str, str], rng: np.random.Generator) -> dict:
    """Logins, owners with keys and seeded memories, the large tenant loaded and everything embedded."""
    with led.su() as su:
        for login, role in logins.items():
            su.execute(f"DROP ROLE IF EXISTS {login}")
            su.execute(f"CREATE ROLE {login} LOGIN IN ROLE {role}")
            su.execute("SELECT memoriesdb.configure_login(%s)", (login,))
        tag = f"{int(time.time())}"
        owners = []
        for i in range(args.owners + 1):  # the last: the small tenant of search (never remembers in the benchmark)
            uid = su.execute("SELECT memoriesdb.create_user(%s)", (f"cb{i}-{tag}",)).fetchone()[0]
            key = su.execute("SELECT memoriesdb.create_api_key(%s, 'infinity')", (uid,)).fetchone()[0]
            owners.append({"uid": uid, "key": key})
        big = su.execute("SELECT memoriesdb.create_user(%s)", (f"cbbig-{tag}",)).fetchone()[0]
        big_key = su.execute("SELECT memoriesdb.create_api_key(%s, 'infinity')", (big,)).fetchone()[0]
        dim = int(su.execute("SELECT memoriesdb.setting('embedding_dim')").fetchone()[0])
        shards = None
        if led.citus:  # connections and shard queries per call (citus_stat_counters; sessions opened after this)
            su.execute(f"ALTER DATABASE {led.db} SET citus.enable_stat_counters = on")
            shards = su.execute(
                "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'memoriesdb.memories'::regclass"
            ).fetchone()[0]
    app = logins_app(logins)
    with led.login(app) as c:
        for o in owners:  # seed: recall's targets and the small tenants' search
            with c.transaction():
                c.execute("SELECT memoriesdb.authenticate(%s)", (o["key"],))
                o["ids"] = [c.execute("SELECT memoriesdb.remember(%s)", (text(rng),)).fetchone()[0] for _ in range(20)]
        batch = 500
        for start in range(0, args.tenant, batch):
            with c.transaction():
                c.execute("SELECT memoriesdb.authenticate(%s)", (big_key,))
                for _ in range(min(batch, args.tenant - start)):
                    c.execute("SELECT memoriesdb.remember(%s)", (text(rng),))
    embedded = 0
    with led.login(logins_worker(logins)) as c:
        while True:  # in claims of 256, the ledger's cap on one claim
            with c.transaction():
                jobs = c.execute(
                    "SELECT memory_id, lease_id, model FROM memoriesdb.claim_model_embedding_jobs(256, '5 minutes', 'bench')"
                ).fetchall()
                if not jobs:
                    break
                vecs = rng.standard_normal((len(jobs), dim)).astype(np.float32)
                c.execute(
                    "SELECT memoriesdb.complete_embedding_jobs(%s, %s, %s, %s)",
                    ([j[0] for j in jobs], [j[1] for j in jobs], [v / np.linalg.norm(v) for v in vecs], jobs[0][2]),
                )
                embedded += len(jobs)
    with led.su() as su:
        su.execute("ANALYZE")
    return {"owners": owners, "big_key": big_key, "dim": dim, "shards": shards, "embedded": embedded}


def logins_app(logins: dict[str, str]) -> str:
    return next(k for k, v in logins.items() if v == "memoriesdb_app")


def logins_worker(logins: dict[str, str]) -> str:
    return next(k for k, v in logins.items() if v == "memoriesdb_worker")


def run_clients(conns, keys, call, seconds: float, seed: int) -> tuple[int, list[float], list[str]]:
    """len(conns) clients, each in its own thread, each calling `call` in its own transactions (authenticate + call)
    until the deadline; returns (calls, latencies in ms, errors)."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        rng = np.random.default_rng(seed + i)
        mine = []
        c = conns[i]
        while True:
            t = time.perf_counter()
            if t >= deadline:
                break
            try:
                with c.transaction():
                    c.execute("SELECT memoriesdb.authenticate(%s)", (keys[i],))
                    call(c, i, rng)
            except psycopg.Error as exc:
                with lock:
                    errors.append(f"{exc.diag.sqlstate}: {str(exc).splitlines()[0][:120]}")
                continue
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(conns))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return len(lat), lat, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="mdb_citus_bench")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=5432, help="the single node")
    ap.add_argument("--citus-port", type=int, default=int(os.environ.get("CITUS_PORT", "9700")), help="the coordinator")
    ap.add_argument("--owners", type=int, default=8)
    ap.add_argument("--tenant", type=int, default=3000, help="memories of the large (HNSW-plan) tenant")
    ap.add_argument("--seconds", type=float, default=3.0, help="per operation, per ledger, per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    ap.add_argument("--reuse", action="store_true", help="use the ledgers already deployed in <db> (no deploy)")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.rounds, args.tenant = 0.3, 1, 150
    out_file = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/citus.md"))
    ledgers = [Ledger("single", args.host, args.port, args.db), Ledger("citus", args.host, args.citus_port, args.db)]
    # the same Citus ledger, the client's sessions with one connection per worker for a multi-shard query (the
    # default opens up to 16 per worker in parallel, and a session keeps only one cached: the others are new
    # backends on the workers in every transaction)
    pool1 = Ledger("citus pool=1", args.host, args.citus_port, args.db, "-c citus.max_adaptive_executor_pool_size=1")
    try:
        psycopg.connect(f"postgresql://postgres@{args.host}:{args.citus_port}/postgres").close()
    except psycopg.OperationalError:
        raise SystemExit(f"no Citus coordinator on port {args.citus_port}: scripts/citus.sh start") from None
    logins = {f"{args.db}_app": "memoriesdb_app", f"{args.db}_wk": "memoriesdb_worker"}
    t0 = time.perf_counter()
    if not args.reuse:
        procs = [deploy(led) for led in ledgers]  # two clusters: no race on the roles
        for pr in procs:
            if pr.wait() != 0:
                raise SystemExit("deploy failed")
    t_deploy = time.perf_counter() - t0

    def cleanup() -> None:
        for led in ledgers[:2]:
            if not args.keep:
                if led.citus:
                    subprocess.run(
                        ["bash", "scripts/citus.sh", "dropdb", led.db], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
                    )
                else:
                    with psycopg.connect(f"postgresql://postgres@{led.host}:{led.port}/postgres", autocommit=True) as c:
                        drop_db(c, led.db)
            with psycopg.connect(f"postgresql://postgres@{led.host}:{led.port}/postgres", autocommit=True) as c:
                for login in logins:
                    try:
                        c.execute(f"DROP ROLE IF EXISTS {login}")
                    except psycopg.Error:  # --keep: still referenced in the kept database
                        pass

    conns: dict[str, list[psycopg.Connection]] = {}
    try:
        load0 = os.getloadavg()
        state = {}
        t0 = time.perf_counter()
        for led in ledgers:
            state[led.name] = setup(led, args, logins, np.random.default_rng(3))
        t_setup = time.perf_counter() - t0
        state[pool1.name] = state["citus"]
        ledgers.append(pool1)
        dim = state["single"]["dim"]

        def q(rng):
            v = rng.standard_normal(dim).astype(np.float32)
            return v / np.linalg.norm(v)

        # name: (clients, call(conn, client index, rng), which owners' keys)
        def ops_for(st):
            owners = st["owners"]
            return {
                "context only": (1, lambda c, i, rng: None, [owners[0]["key"]]),
                "remember x1": (
                    1,
                    lambda c, i, rng: c.execute("SELECT memoriesdb.remember(%s)", (text(rng),)),
                    [owners[0]["key"]],
                ),
                f"remember x{args.owners}": (
                    args.owners,
                    lambda c, i, rng: c.execute("SELECT memoriesdb.remember(%s)", (text(rng),)),
                    [o["key"] for o in owners],
                ),
                "recall x1": (
                    1,
                    lambda c, i, rng: c.execute("SELECT memoriesdb.recall(%s)", (owners[i]["ids"][rng.integers(20)],)).fetchall(),
                    [owners[0]["key"]],
                ),
                f"recall x{args.owners}": (
                    args.owners,
                    lambda c, i, rng: c.execute("SELECT memoriesdb.recall(%s)", (owners[i]["ids"][rng.integers(20)],)).fetchall(),
                    [o["key"] for o in owners],
                ),
                "search small x1": (
                    1,
                    lambda c, i, rng: c.execute("SELECT id FROM memoriesdb.search(%s, 10)", (q(rng),)).fetchall(),
                    [owners[-1]["key"]],
                ),
                "search large x1, exact plan": (
                    1,
                    lambda c, i, rng: c.execute("SELECT id FROM memoriesdb.search(%s, 10)", (q(rng),)).fetchall(),
                    [st["big_key"]],
                ),
                HNSW_OP: (
                    1,
                    lambda c, i, rng: c.execute("SELECT id FROM memoriesdb.search(%s, 10)", (q(rng),)).fetchall(),
                    [st["big_key"]],
                ),
            }

        # search_exact_max per operation (a ledger setting, read per call): above the large tenant for its exact plan
        exact_max = {"search large x1, exact plan": args.tenant + 100, HNSW_OP: min(EXACT_MAX_DEFAULT, args.tenant // 2)}
        current: dict[str, int | None] = {}

        def set_exact_max(led: Ledger, op: str) -> None:
            v = exact_max.get(op, EXACT_MAX_DEFAULT)
            key = led.dsn  # the two Citus variants share one ledger
            if current.get(key) != v:
                with led.su() as su:
                    su.execute("UPDATE memoriesdb.config SET value = to_jsonb(%s::integer) WHERE key = 'search_exact_max'", (v,))
                current[key] = v

        ops = {led.name: ops_for(state[led.name]) for led in ledgers}
        app = logins_app(logins)
        plans: dict[str, dict[str, str]] = {}
        conns.update({led.name: [led.login(app) for _ in range(args.owners)] for led in ledgers})
        res = {
            (led.name, op): {"calls": 0, "secs": 0.0, "lat": [], "errors": [], "cpu": {}}
            for led in ledgers
            for op in ops["single"]
        }
        for led in ledgers:  # warm-up: plans, caches, Citus's connections to the workers, the access logger's connection
            for op, (n, call, keys) in ops[led.name].items():
                set_exact_max(led, op)
                run_clients(conns[led.name][:n], keys, call, 0.3, 1)
                if op.startswith("search"):  # the plan search() chose (memoriesdb.search_plan), once per ledger
                    c = conns[led.name][0]
                    try:
                        with c.transaction():
                            c.execute("SELECT memoriesdb.authenticate(%s)", (keys[0],))
                            call(c, 0, np.random.default_rng(2))
                            plan = c.execute("SELECT current_setting('memoriesdb.search_plan', true)").fetchone()[0]
                    except psycopg.Error as exc:
                        plan = f"fails ({exc.diag.sqlstate})"
                    plans.setdefault(op, {})[led.name] = (plan or "?").split(" ")[0]
        t0 = time.perf_counter()
        for r in range(args.rounds):
            for op in ops["single"]:
                k = r + list(ops["single"]).index(op)
                order = ledgers[k % len(ledgers) :] + ledgers[: k % len(ledgers)]
                for led in order:
                    n, call, keys = ops[led.name][op]
                    set_exact_max(led, op)
                    cpu0, w0 = led.cpu(), time.perf_counter()
                    calls, lat, errors = run_clients(conns[led.name][:n], keys, call, args.seconds, 100 * r)
                    secs, cpu1 = time.perf_counter() - w0, led.cpu()
                    e = res[(led.name, op)]
                    e["calls"] += calls
                    e["secs"] += secs
                    e["lat"] += lat
                    e["errors"] += errors
                    for key in cpu1:
                        e["cpu"][key] = e["cpu"].get(key, 0.0) + cpu1[key] - cpu0.get(key, 0.0)
        t_run = time.perf_counter() - t0
        load1 = os.getloadavg()
    finally:
        for cs in conns.values():
            for c in cs:
                c.close()
        cleanup()

    def ms(x):
        return statistics.median(x) if x else float("nan")

    out = [
        "# The ledger on Citus (coordinator + 2 workers) vs the single node, same machine",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, `bench/citus.py"
        + (" --smoke" if args.smoke else f" --seconds {args.seconds:g} --rounds {args.rounds} --tenant {args.tenant}")
        + f"`: {os.cpu_count()} cores shared by the single node (5432), the coordinator (9700), both workers (9701-9702) "
        f"and the client (Python threads); load average {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f} at the start of the "
        f"measured rounds, {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f} at the end. Citus: "
        f"{state['citus']['shards']} shards per distributed table. {args.owners} owners with 20 memories each "
        f"(and a small tenant of 20); the large "
        f"tenant {args.tenant} memories; {state['single']['embedded']} / {state['citus']['embedded']} memories embedded "
        f"(random unit vectors, {dim} dims) by a worker login through claim/complete_embedding_jobs. Every call its own "
        "transaction over an app login: authenticate(api_key) + the call + COMMIT. "
        f"{args.rounds} rounds x {args.seconds:g} s per operation per ledger, the three ledgers in rotation (which goes "
        f"first rotates); deploy {t_deploy:.0f} s, set-up {t_setup:.0f} s, measured {t_run:.0f} s. `Citus pool=1`: the same "
        "Citus ledger, the client's sessions with `citus.max_adaptive_executor_pool_size = 1` (one connection per worker "
        "for a multi-shard query).",
        "",
        "| operation | single tps | Citus tps | ratio | Citus pool=1 tps | ratio | single p50 ms | Citus p50 ms "
        "| Citus pool=1 p50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def per(e, k):
        return 1000 * e["cpu"].get(k, 0.0) / e["calls"] if e["calls"] else float("nan")

    def tps(e):
        return e["calls"] / e["secs"] if e["secs"] and e["calls"] else float("nan")

    for op in ops["single"]:
        s, c, c1 = (res[(n, op)] for n in ("single", "citus", pool1.name))
        out.append(
            f"| {op} | {tps(s):.0f} | {tps(c):.0f} | {tps(s) / tps(c):.1f}x | {tps(c1):.0f} "
            f"| {tps(s) / tps(c1):.1f}x | {ms(s['lat']):.1f} | {ms(c['lat']):.1f} | {ms(c1['lat']):.1f} |".replace(
                "nanx", "-"
            ).replace("nan", "fails")
        )
    out += [
        "",
        "Where the time goes: CPU ms per call (single: this run's backends in its database; Citus: the coordinator's "
        "and both workers' whole clusters), and per call on Citus the shard queries the coordinator ran "
        "(citus_stat_counters: single-shard / multi-shard executions) and the connections it opened to the workers.",
        "",
        "| operation | single CPU | Citus coordinator CPU | Citus workers CPU | shard queries single / multi "
        "| new connections | pool=1: coordinator CPU | pool=1: workers CPU | pool=1: new connections |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for op in ops["single"]:
        s, c, c1 = (res[(n, op)] for n in ("single", "citus", pool1.name))
        out.append(
            f"| {op} | {per(s, 'backends'):.1f} | {per(c, 'coordinator'):.1f} | {per(c, 'workers'):.1f} "
            f"| {per(c, 'single-shard') / 1000:.1f} / {per(c, 'multi-shard') / 1000:.1f} | {per(c, 'connections') / 1000:.2f} "
            f"| {per(c1, 'coordinator'):.1f} | {per(c1, 'workers'):.1f} | {per(c1, 'connections') / 1000:.2f} |"
        )
    out += ["", "The plan search() chose (memoriesdb.search_plan, one probe per ledger before the rounds):", ""]
    for op, by in plans.items():
        out.append(f"- {op}: " + ", ".join(f"{name} {plan}" for name, plan in by.items()))
    errs = [(k, e["errors"]) for k, e in res.items() if e["errors"]]
    if errs:
        out += ["", "Failed calls (not counted):"]
        for (led, op), es in errs:
            out.append(f"- {led}, {op}: {len(es)} x {sorted(set(es))[:3]}")
    out += [
        "",
        "Commands: `scripts/citus.sh start`, then `.venv/bin/python bench/citus.py"
        + (" --smoke" if args.smoke else f" --seconds {args.seconds:g} --rounds {args.rounds} --tenant {args.tenant}")
        + "` (deploys both ledgers; `scripts/test.sh --citus` runs its --smoke).",
    ]
    text_out = "\n".join(out) + "\n"
    out_file.write_text(text_out)
    print(text_out)
    print(f"(written to {out_file})")
    bad = [
        op for op in ops["single"] if not all(res[(led.name, op)]["calls"] for led in ledgers if op != HNSW_OP or not led.citus)
    ]
    bad += [] if res[("single", HNSW_OP)]["calls"] else [HNSW_OP]
    if bad:
        raise SystemExit(f"no successful call of: {', '.join(bad)}")


if __name__ == "__main__":
    main()
