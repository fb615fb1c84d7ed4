"""`memoriesdb import-embeddings` (issue 15) end to end against a real PostgreSQL: JSONL and Parquet files of
good, stale, bad and malformed rows; the counts printed, the exit codes, and the ledger's state after
(model_progress / `models list`, the jobs, the active model's mirror). This module deploys its own database:
it activates a model of another dimension, which retypes memories.embedding."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid

import pytest
from click.testing import CliRunner

from memoriesdb_runner import admin
from memoriesdb_runner import models as model_registry
from memoriesdb_runner.cli import main
from memoriesdb_runner.settings import Settings

from .conftest import DB, HOST, PORT, drop_ledger_database, remember

IMPORT_DB = f"{DB}_import"


def dsn(db: str, user: str = "postgres") -> str:
    return f"postgresql://{user}@{HOST}:{PORT}/{db}"


@pytest.fixture(scope="module")
def database():
    drop_ledger_database(IMPORT_DB)
    admin.deploy(dsn(IMPORT_DB))
    admin.ensure_local_logins(dsn(IMPORT_DB))
    yield dsn(IMPORT_DB)
    drop_ledger_database(IMPORT_DB)


@pytest.fixture
def settings(database, fake_ollama) -> Settings:
    return Settings(
        _env_file=None,
        dsn=dsn(IMPORT_DB, "memoriesdb_runner"),
        listen_dsn=None,
        listen_port=int(PORT),
        app_dsn=dsn(IMPORT_DB, "memoriesdb_client"),
        backend_dsn=dsn(IMPORT_DB, "memoriesdb_server"),
        admin_dsn=database,
        provider="ollama",
        ollama_url=fake_ollama.url,
    )


def env(settings) -> dict[str, str]:
    from .test_cli import env_of

    return env_of(settings)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vec(i: int, dim: int = 8) -> list[float]:
    return [1.0 if g == i % dim else 0.0 for g in range(dim)]


def run(settings, *args: str):
    result = CliRunner().invoke(main, ["import-embeddings", *args], env=env(settings))
    return result, result.output + (result.stderr if result.stderr_bytes else "")


def progress(settings, name: str) -> dict:
    return next(r for r in asyncio.run(model_registry.progress(settings)) if r["model"] == name)


def add(settings, name: str, dim: int) -> None:
    asyncio.run(model_registry.call(settings, "add_model", name=name, provider="ollama", dimension=dim))


def jobs_of(admin_conn, model: str, ids) -> int:
    return admin_conn.execute(
        """SELECT count(*) AS n FROM memoriesdb.embedding_schedule AS s
             JOIN memoriesdb.embedding_models AS em ON em.id = s.model_id
            WHERE em.name = %s AND s.memory_id = ANY(%s)""",
        (model, list(ids)),
    ).fetchone()["n"]


def revise(admin_conn, uid, mid, content: str) -> None:
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        admin_conn.execute("SELECT memoriesdb.revise(%s, %s)", (mid, content))


def write_jsonl(path, lines: list) -> None:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")


def test_jsonl_good_bad_stale_and_malformed_rows(settings, admin_conn, user, tmp_path):
    uid, _ = user
    contents = [f"import memory {i}" for i in range(8)]
    ids = remember(admin_conn, uid, *contents)
    revise(admin_conn, uid, ids[5], "import memory 5, revised")
    add(settings, "imp8", 8)
    assert progress(settings, "imp8")["done"] == 0
    f = tmp_path / "vectors.jsonl"
    write_jsonl(
        f,
        [
            {"memory_id": str(ids[0]), "content_hash": sha(contents[0]), "embedding": vec(0)},  # 1 stored
            {"memory_id": str(ids[1]), "text": contents[1], "embedding": vec(1)},  # 2 stored (hashed here)
            {"memory_id": str(ids[2]), "content_hash": sha(contents[2]), "embedding": [1, 2, 3]},  # 3 wrong_dimension
            '{"memory_id": "not closed',  # 4 malformed
            {"memory_id": str(ids[3]), "content_hash": sha(contents[3])},  # 5 malformed: no embedding
            {"memory_id": str(ids[4]), "text": contents[4], "embedding": ["a"] * 8},  # 6 malformed: not numbers
            {"memory_id": str(ids[5]), "content_hash": sha(contents[5]), "embedding": vec(5)},  # 7 hash_mismatch (revised)
            {"memory_id": str(uuid.uuid4()), "content_hash": sha("x"), "embedding": vec(0)},  # 8 no_memory
            "",  # 9 blank: skipped
            {"memory_id": "\\x" + sha(contents[2]), "text": contents[2], "embedding": vec(2)},  # 10 malformed: id
            {"memory_id": str(ids[2]), "content_hash": "\\x" + sha(contents[2]).upper(), "embedding": vec(2)},  # 11 stored
            {"memory_id": str(ids[3]), "content_hash": sha(contents[3]), "embedding": [0.0] * 8},  # 12 invalid_vector
            json.dumps(
                {"memory_id": str(ids[4]), "text": contents[4], "embedding": [math.nan] + [0.0] * 7}
            ),  # 13 NaN: invalid_vector
            {"memory_id": str(ids[7]), "content_hash": "abc", "embedding": vec(7)},  # 14 invalid_hash
            {"memory_id": str(ids[6]), "content_hash": sha(contents[6]), "embedding": vec(6)},  # 15 stored
            {"memory_id": str(ids[6]), "content_hash": sha(contents[6]), "embedding": vec(6)},  # 16 duplicate (same batch)
        ],
    )
    result, out = run(settings, str(f), "--model", "imp8", "--batch", "3")
    assert result.exit_code == 2, out
    assert "15 read, 4 stored, 11 rejected" in out, out
    for reason in (
        "duplicate 1",
        "hash_mismatch 1",
        "invalid_hash 1",
        "invalid_vector 2",
        "malformed 4",
        "no_memory 1",
        "wrong_dimension 1",
    ):
        assert reason in out, (reason, out)
    assert "line 4: malformed: invalid JSON" in out and "line 5: malformed: embedding missing" in out
    assert "line 7: hash_mismatch: the memory's current content" in out and "Traceback" not in out
    p = progress(settings, "imp8")
    assert (p["done"], p["total"]) == (4, 8)
    assert jobs_of(admin_conn, "imp8", [ids[0], ids[1], ids[2], ids[6]]) == 0, "a stored vector's job is done"
    assert jobs_of(admin_conn, "imp8", [ids[3], ids[4], ids[5], ids[7]]) == 4, "the rejected rows' jobs stay"

    # the rest, of the current content: every memory done, the model can be activated
    write_jsonl(
        f,
        [
            {"memory_id": str(ids[3]), "text": contents[3], "embedding": vec(3)},
            {"memory_id": str(ids[4]), "text": contents[4], "embedding": vec(4)},
            {"memory_id": str(ids[5]), "text": "import memory 5, revised", "embedding": vec(5)},
            {"memory_id": str(ids[7]), "content_hash": sha(contents[7]), "embedding": vec(7)},
        ],
    )
    result, out = run(settings, str(f), "--model", "imp8")
    assert result.exit_code == 0, out
    assert "4 read, 4 stored, 0 rejected" in out
    listed = CliRunner().invoke(main, ["models", "list", "--json"], env=env(settings))
    row = next(r for r in json.loads(listed.output) if r["model"] == "imp8")
    assert (row["done"], row["total"], row["pending"]) == (8, 8, 0)
    activated = CliRunner().invoke(main, ["models", "activate", "imp8"], env=env(settings))
    assert activated.exit_code == 0, activated.output

    # the active model: a revision's vector goes into memories.embedding too, and its job is done
    revise(admin_conn, uid, ids[0], "import memory 0, revised")
    assert jobs_of(admin_conn, "imp8", [ids[0]]) == 1
    write_jsonl(f, [{"memory_id": str(ids[0]), "text": "import memory 0, revised", "embedding": [0, 0, 0, 0, 0, 0, 0, 2]}])
    result, out = run(settings, str(f), "--model", "imp8")
    assert result.exit_code == 0, out
    m = admin_conn.execute(
        "SELECT embedding::text AS e, embedding_model FROM memoriesdb.memories WHERE id = %s", (ids[0],)
    ).fetchone()
    assert m == {"e": "[0,0,0,0,0,0,0,1]", "embedding_model": "imp8"}
    assert jobs_of(admin_conn, "imp8", [ids[0]]) == 0


def test_parquet(settings, admin_conn, user, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    uid, _ = user
    contents = [f"parquet memory {i}" for i in range(4)]
    ids = remember(admin_conn, uid, *contents)
    add(settings, "pq4", 4)
    table = pa.table(
        {
            "memory_id": [str(i) for i in ids] + [str(uuid.uuid4())],
            "content_hash": [sha(contents[0]), None, sha("stale"), sha(contents[3]), sha("x")],
            "text": [None, contents[1], None, None, None],
            "embedding": [vec(0, 4), vec(1, 4), vec(2, 4), [1.0, 2.0], vec(0, 4)],
        }
    )
    f = tmp_path / "vectors.parquet"
    pq.write_table(table, f)
    result, out = run(settings, str(f), "--model", "pq4", "--batch", "2")
    assert result.exit_code == 2, out
    assert "5 read, 2 stored, 3 rejected (hash_mismatch 1, no_memory 1, wrong_dimension 1)" in out, out
    assert "line 3: hash_mismatch" in out
    assert progress(settings, "pq4")["done"] == 2
    assert jobs_of(admin_conn, "pq4", ids[:2]) == 0 and jobs_of(admin_conn, "pq4", ids[2:]) == 2


def test_errors_exit_1(settings, tmp_path):
    f = tmp_path / "v.jsonl"
    write_jsonl(f, [{"memory_id": str(uuid.uuid4()), "text": "x", "embedding": vec(0)}])
    result, out = run(settings, str(tmp_path / "missing.jsonl"), "--model", "imp8")
    assert result.exit_code == 1 and "error:" in out and "Traceback" not in out, out
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not really parquet PAR1")
    result, out = run(settings, str(damaged), "--model", "imp8")
    assert result.exit_code == 1 and "Parquet" in out and "Traceback" not in out, out
    result, out = run(settings, str(f), "--model", "no-such-model")
    assert result.exit_code == 1 and "MDB16" in out, out
    add(settings, "gone8", 8)
    asyncio.run(model_registry.call(settings, "retire_model", name="gone8"))
    result, out = run(settings, str(f), "--model", "gone8")
    assert result.exit_code == 1 and "MDB31" in out, out
    result, out = run(settings, str(f), "--model", "imp8", "--batch", "5001")
    assert result.exit_code == 2 and "5001" in out, out  # click's usage error: 1 to 5000


def test_5000_rows_throughput(settings, admin_conn, user, tmp_path):
    uid, _ = user
    n = 5000
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        rows = admin_conn.execute(
            "SELECT memoriesdb.remember('bulk ' || g) AS id, 'bulk ' || g AS c FROM generate_series(1, %s) AS g", (n,)
        ).fetchall()
    add(settings, "bulk16", 16)
    f = tmp_path / "bulk.jsonl"
    write_jsonl(f, [{"memory_id": str(r["id"]), "text": r["c"], "embedding": vec(i, 16)} for i, r in enumerate(rows)])
    started = time.perf_counter()
    result, out = run(settings, str(f), "--model", "bulk16")
    took = time.perf_counter() - started
    assert result.exit_code == 0, out
    assert f"{n} read, {n} stored, 0 rejected" in out
    assert progress(settings, "bulk16")["done"] == n
    print(f"\nimport-embeddings: {n} rows (16 dimensions, filling model, batch 500) in {took:.2f} s = {n / took:.0f} rows/s")
