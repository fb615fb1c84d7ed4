"""The atomic switch of the active embedding model under concurrent searches (issue 15), against a real
PostgreSQL: several connections search without pause while activate_model() switches to a model of the same
dimension, then to one of another dimension and back. Every answer must be wholly one model's (its ids, order
and similarities those of that model's exact top k), none may fail but for the documented, retried one (MDB11:
a query vector of the old model's dimension once the column has the new one), and every search that starts
after the switch committed answers from the new model. Run on the exact plan (small callers: the answer is the
model's exact top k) and on the large-caller plan (search_exact_max = 0: the active model's HNSW index on
embeddings; each row's similarity is the model's for that memory). This module deploys its own database: it
retypes memories.embedding."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from memoriesdb_runner import admin

from .conftest import DB, HOST, PORT, drop_ledger_database

SWITCH_DB = f"{DB}_switch"
N = 300  # memories of the one tenant
K = 5
SEARCHERS = 3
DIMS = {"same": 384, "other": 32}  # besides the deployed model ('default', 384 dimensions)


def dsn(db: str) -> str:
    return f"postgresql://postgres@{HOST}:{PORT}/{db}"


def unit(rng, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def database():
    drop_ledger_database(SWITCH_DB)
    admin.deploy(dsn(SWITCH_DB))
    yield dsn(SWITCH_DB)
    drop_ledger_database(SWITCH_DB)


@pytest.fixture(scope="module")
def ledger(database):
    """One tenant of N memories, each with a vector of three models stored through import_embeddings()
    (the deployed active model 'default', 'same' of its dimension, 'other' of another): returns the
    tenant, the memory ids and each model's vectors, in the same order."""
    rng = np.random.default_rng(15)
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as c:
        uid = c.execute("SELECT memoriesdb.create_user(%s) AS id", (f"u{uuid.uuid4().hex[:8]}",)).fetchone()["id"]
        contents = [f"memory {i} of the switch" for i in range(N)]
        with c.transaction():
            c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            ids = [c.execute("SELECT memoriesdb.remember(%s) AS id", (t,)).fetchone()["id"] for t in contents]
        hashes = [hashlib.sha256(t.encode()).hexdigest() for t in contents]
        base = c.execute("SELECT name, dimension FROM memoriesdb.embedding_models WHERE state = 'active'").fetchone()
        assert base["dimension"] == 384
        vectors = {}
        for name, dim in (("default", 384), *DIMS.items()):
            if name != "default":
                c.execute("SELECT memoriesdb.add_model(%s, 'ollama', %s)", (name, dim))
            vectors[name] = unit(rng, N, dim)
            model = base["name"] if name == "default" else name
            outcomes = c.execute(
                "SELECT outcome, count(*) AS n FROM memoriesdb.import_embeddings(%s, %s::uuid[], %s::text[], %s::vector[])"
                " GROUP BY 1",
                (model, ids, hashes, [str(v.tolist()) for v in vectors[name]]),
            ).fetchall()
            assert outcomes == [{"outcome": "stored", "n": N}]
        if base["name"] != "default":
            vectors[base["name"]] = vectors.pop("default")
        yield uid, ids, vectors, base["name"]


def similarities(ids, vectors: np.ndarray, query: np.ndarray) -> dict[uuid.UUID, float]:
    """Every memory's cosine similarity to the query under one model."""
    sims = vectors @ (query / np.linalg.norm(query))
    return {mid: float(s) for mid, s in zip(ids, sims, strict=True)}


def which_model(answer: list[tuple[uuid.UUID, float]], sims: dict[str, dict], exact: bool) -> str | None:
    """The model the whole answer comes from: each row's similarity is that model's for that memory (to 1e-4;
    two models' independent vectors never agree on a row), and on the exact plan the ids are that model's exact
    top K in order. None: no single model gave it (a mix)."""
    for name, sim in sims.items():
        if len(answer) == K and all(abs(s - sim[mid]) < 1e-4 for mid, s in answer):
            if not exact or [mid for mid, _ in answer] == sorted(sim, key=sim.get, reverse=True)[:K]:
                return name
    return None


def switch_under_searches(
    database, uid, target: str, queries: dict[int, np.ndarray], start_dim: int
) -> tuple[list[dict], float, float]:
    """SEARCHERS connections search without pause (search(query, K) as the application, the query of the
    dimension they last saw accepted, first start_dim: the active model's) while another connection runs
    activate_model(target). Returns each
    search (start, end, answer or error, retried), when the activation was called and when it returned."""
    stop = threading.Event()
    started = threading.Barrier(SEARCHERS + 1)
    log: list[dict] = []
    lock = threading.Lock()

    def searcher(i: int) -> None:
        dims = list(queries)
        dim = start_dim
        with psycopg.connect(database, autocommit=True) as c:
            c.execute("SET ROLE memoriesdb_app")
            started.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                retried = 0
                while True:
                    try:
                        with c.transaction():  # the context transaction-local, as under PgBouncer
                            c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                            rows = c.execute(
                                "SELECT id, similarity FROM memoriesdb.search(%s::vector, %s)",
                                (str(queries[dim].tolist()), K),
                            ).fetchall()
                        entry = {"answer": [(r[0], r[1]) for r in rows], "dim": dim}
                        break
                    except psycopg.Error as exc:
                        # the documented one: the active model changed dimension, so the query must be the new
                        # model's; the client embeds again with it and retries (once per switch)
                        if exc.sqlstate == "MDB11" and retried == 0:
                            retried += 1
                            dim = next(d for d in dims if d != dim)
                            continue
                        entry = {"error": f"{exc.sqlstate}: {exc}", "dim": dim}
                        break
                entry.update(start=t0, end=time.perf_counter(), retried=retried, searcher=i)
                with lock:
                    log.append(entry)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(SEARCHERS)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.3)  # searches before the switch
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as c:
        called = time.perf_counter()
        row = c.execute("SELECT model, previous FROM memoriesdb.activate_model(%s)", (target,)).fetchone()
        returned = time.perf_counter()
    assert row["model"] == target
    time.sleep(0.3)  # searches after it
    stop.set()
    for t in threads:
        t.join()
    return log, called, returned


@pytest.mark.parametrize("plan", ["exact", "hnsw"])
def test_activation_switches_every_search_at_once(database, ledger, plan):
    uid, ids, vectors, base = ledger
    rng = np.random.default_rng(7)
    queries = {384: rng.standard_normal(384).astype(np.float32), 32: rng.standard_normal(32).astype(np.float32)}
    sims = {name: similarities(ids, v, queries[v.shape[1]]) for name, v in vectors.items()}
    with psycopg.connect(database, autocommit=True) as c:
        c.execute("UPDATE memoriesdb.config SET value = %s WHERE key = 'search_exact_max'", ("0" if plan == "hnsw" else "20000",))
        if plan == "hnsw":  # the index for the tenant's 300 rows: no cost rule (at the deployed tuple cost 300 rows are
            # below 20 * ef_search, and this run searched exactly, as the other did)
            c.execute("UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_hnsw_tuple_cost'")
        current = c.execute("SELECT name FROM memoriesdb.embedding_models WHERE state = 'active'").fetchone()[0]
        with c.transaction():
            c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
            c.execute("SET LOCAL ROLE memoriesdb_app")
            probe = str(queries[vectors[current].shape[1]].tolist())
            c.execute("SELECT count(*) FROM memoriesdb.search(%s::vector, %s)", (probe, K))
            chosen = c.execute("SELECT current_setting('memoriesdb.search_plan')").fetchone()[0]
        assert chosen.startswith(plan + " "), f"the {plan} run's searches take that plan: {chosen}"
    # the same dimension, then another dimension, then back to the first model (another dimension again)
    order = ["same", "other", base] if current == base else [base, "same", "other", base]
    for target in order:
        previous = current
        log, called, returned = switch_under_searches(database, uid, target, queries, vectors[previous].shape[1])
        errors = [e for e in log if "error" in e]
        assert not errors, f"{previous} -> {target}: searches failed: {errors[:3]}"
        same_dim = vectors[previous].shape[1] == vectors[target].shape[1]
        if same_dim:
            assert not any(e["retried"] for e in log), "a switch of the same dimension needs no retry"
        else:
            assert sum(e["retried"] for e in log) <= SEARCHERS, "one retry per searcher at most, when the dimension changed"
        for e in log:
            model = which_model(e["answer"], {previous: sims[previous], target: sims[target]}, plan == "exact")
            assert model is not None, f"{previous} -> {target}: an answer mixes models: {e['answer']}"
            e["model"] = model
            if e["start"] > returned:
                assert model == target, f"a search started after the switch committed answered from {model}"
            if e["end"] < called:
                assert model == previous, "a search that ended before the switch was called answered from the new model"
        during = [e for e in log if e["start"] < returned and e["end"] > called]
        assert len(log) >= 10 * SEARCHERS and during, "the searches ran, some of them while the switch ran"
        assert {e["model"] for e in log} == {previous, target}
        print(
            f"{plan}: {previous} -> {target}: activate_model() {returned - called:.2f} s; {len(log)} searches, "
            f"{len(during)} overlapping it, {sum(e['retried'] for e in log)} retried (MDB11)"
        )
        current = target
