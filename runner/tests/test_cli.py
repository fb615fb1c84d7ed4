"""The command line as a user meets it: ingest, status, search with the real local model."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner

from memoriesdb_runner.cli import main
from memoriesdb_runner.providers import LocalProvider
from memoriesdb_runner.search import search_text
from memoriesdb_runner.service import run_embed_workers

from .conftest import remember


def env_of(settings) -> dict[str, str]:
    return {
        "MEMORIESDB_DSN": settings.dsn,
        "MEMORIESDB_LISTEN_DSN": settings.listen,
        "MEMORIESDB_APP_DSN": settings.app_dsn,
        "MEMORIESDB_BACKEND_DSN": settings.backend_dsn,
        "MEMORIESDB_ADMIN_DSN": settings.admin_dsn,
        "MEMORIESDB_PROVIDER": "ollama",
        "MEMORIESDB_OLLAMA_URL": settings.ollama_url,
    }


def test_ingest_reports_bad_lines_and_keeps_the_good(settings, admin_conn, user, tmp_path):
    uid, key = user
    f = tmp_path / "notes.jsonl"
    f.write_text(
        '{"content": "first", "metadata": {"n": 1}}\n'
        "not json\n"
        '{"content": ""}\n'
        "\n"
        '{"content": "second", "metadata": [1]}\n'
        '{"content": "third"}\n'
    )
    result = CliRunner().invoke(main, ["ingest", str(f), "--api-key", key], env=env_of(settings))
    assert result.exit_code == 2, result.output
    assert "2 stored, 0 already stored, 3 bad" in result.output
    assert "line 2: invalid JSON line" in result.output
    assert "line 3: content is empty [MDB05]" in result.output
    assert "line 5: metadata must be a JSON object [MDB06]" in result.output
    rows = admin_conn.execute(
        "SELECT content, metadata FROM memoriesdb.memories WHERE owner_id = %s ORDER BY created_at, content", (uid,)
    ).fetchall()
    assert [(r["content"], r["metadata"]) for r in rows] == [("first", {"n": 1}), ("third", {})]
    audited = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.audit_log WHERE table_name = 'memories' AND created_by = %s AND op = 'INSERT'",
        (uid,),
    ).fetchone()["n"]
    assert audited == 2, "ingest goes through the API: every memory is audited"


def test_ingest_plain_text_and_a_wrong_key(settings, admin_conn, user, tmp_path):
    uid, key = user
    f = tmp_path / "notes.txt"
    f.write_text("line one\nline two\n")
    assert CliRunner().invoke(main, ["ingest", str(f), "--api-key", key], env=env_of(settings)).exit_code == 0
    bad = CliRunner().invoke(main, ["ingest", str(f), "--api-key", "mdb_nope"], env=env_of(settings))
    assert bad.exit_code == 1 and "invalid api key [MDB10]" in bad.output
    missing = CliRunner().invoke(main, ["ingest", str(f)], env={**env_of(settings), "MEMORIESDB_API_KEY": ""})
    assert missing.exit_code != 0 and "--api-key" in missing.output


def test_status_shows_queue_and_dead_jobs(settings, admin_conn, user):
    uid, _ = user
    [m] = remember(admin_conn, uid, "will die")
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL ROLE memoriesdb_worker")
        lease = admin_conn.execute("SELECT lease_id FROM memoriesdb.claim_embedding_jobs(1)").fetchone()["lease_id"]
        admin_conn.execute("SELECT memoriesdb.fail_embedding_job(%s, %s, 'model \"x\" not found', true)", (m, lease))
    result = CliRunner().invoke(main, ["status", "--json"], env=env_of(settings))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["queue"]["dead"] >= 1
    assert any(d["memory_id"] == str(m) and 'model "x" not found' in d["last_error"] for d in data["dead"])
    assert isinstance(data["refusals_last_hour"], list)
    with psycopg.connect(settings.app_dsn) as conn:  # a refused attempt, then the caller rolls back
        conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT * FROM memoriesdb.recall(gen_random_uuid())")
    data = json.loads(CliRunner().invoke(main, ["status", "--json"], env=env_of(settings)).output)
    assert any(r["function"] == "recall" and r["sqlstate"] == "MDB03" and r["attempts"] >= 1 for r in data["refusals_last_hour"])
    human = CliRunner().invoke(main, ["status"], env=env_of(settings))
    assert "dead jobs" in human.output and "embedding queue" in human.output
    assert "refused attempts, last hour" in human.output and "MDB03" in human.output


@pytest.fixture(scope="module")
def local_provider():
    from memoriesdb_runner.settings import Settings

    return LocalProvider(Settings(_env_file=None))


def test_local_model_end_to_end(settings, admin_conn, user, local_provider):
    """The offline default: the real all-MiniLM-L6-v2, loaded from the wheel, no network."""
    uid, key = user
    settings.provider = "local"
    remember(
        admin_conn,
        uid,
        "I drink a double espresso every morning.",
        "The billing service deploys on Thursdays.",
        "My cat hates the vacuum cleaner.",
    )
    assert asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False, provider=local_provider)) == 3
    model = admin_conn.execute(
        "SELECT DISTINCT embedding_model AS m FROM memoriesdb.memories WHERE owner_id = %s", (uid,)
    ).fetchone()["m"]
    assert model == "all-MiniLM-L6-v2"
    rows = asyncio.run(search_text(settings, "what coffee does the user like?", key, None, k=3, provider=local_provider))
    assert rows[0]["content"] == "I drink a double espresso every morning."
    assert rows[0]["similarity"] > rows[1]["similarity"] > 0


def test_calibrate_search_measures_and_sets_ef_search(settings, admin_conn, user):
    """`memoriesdb calibrate-search`: recall@10 of the active model's index at each ef_search tried, against an
    exact scan of the same stored vectors; --dry-run leaves search_ef_search alone, a run sets it to the row chosen."""
    uid, _ = user
    ids = remember(admin_conn, uid, *[f"calibration sample {i}" for i in range(40)])
    rng = np.random.default_rng(7)
    for memory_id in ids:  # stored as a worker would store the active model's vectors
        v = rng.standard_normal(384)
        admin_conn.execute(
            "INSERT INTO memoriesdb.embeddings (memory_id, model_id, content_hash, embedding)"
            " SELECT m.id, em.id, m.content_hash, %s::vector FROM memoriesdb.memories AS m, memoriesdb.embedding_models AS em"
            " WHERE m.id = %s AND em.state = 'active' ON CONFLICT DO NOTHING",
            (str((v / np.linalg.norm(v)).tolist()), memory_id),
        )
    setting = "SELECT value::int AS ef FROM memoriesdb.config WHERE key = 'search_ef_search'"
    before = admin_conn.execute(setting).fetchone()["ef"]
    fraction = "SELECT value::text AS f FROM memoriesdb.config WHERE key = 'search_hnsw_min_fraction'"
    fraction_before = admin_conn.execute(fraction).fetchone()["f"]
    # calibrate_search_fraction() measures only shares holding 100 vectors, picked by the ids' last 10 bits (0.3: < 307)
    largest_share = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.embeddings AS e JOIN memoriesdb.embedding_models AS em ON em.id = e.model_id"
        " WHERE em.state = 'active' AND ((get_byte(uuid_send(e.memory_id), 14) * 256"
        " + get_byte(uuid_send(e.memory_id), 15)) & 1023) < 307"
    ).fetchone()["n"]
    env = env_of(settings)
    try:
        dry = CliRunner().invoke(main, ["calibrate-search", "--samples", "10", "--dry-run", "--json"], env=env)
        assert dry.exit_code == 0, dry.output
        out = json.loads(dry.output)
        rows = out["ef_search"]
        if largest_share < 100:  # 40-odd vectors: too few for a share of the table to say anything
            assert out["min_fraction"] == []
        else:
            assert [r["chosen"] for r in out["min_fraction"]].count(True) == 1
        assert [r["ef_search"] for r in rows] == [40, 100, 200, 400, 800, 1000][: len(rows)]
        assert [r["chosen"] for r in rows] == [False] * (len(rows) - 1) + [True]
        assert all(0 <= r["recall"] <= 1 for r in rows) and rows[-1]["recall"] >= 0.95
        assert admin_conn.execute(setting).fetchone()["ef"] == before
        applied = CliRunner().invoke(main, ["calibrate-search", "--samples", "10", "--target", "0.5"], env=env)
        assert applied.exit_code == 0, applied.output
        assert "HNSW calibration" in applied.output and "set" in applied.output
        if largest_share < 100:
            assert "too few memories to measure" in applied.output
            assert admin_conn.execute(fraction).fetchone()["f"] == fraction_before
        else:
            assert "search_hnsw_min_fraction" in applied.output
        assert admin_conn.execute(setting).fetchone()["ef"] == 40  # the first rung reaches 0.5 on 40-odd rows
        refused = CliRunner().invoke(main, ["calibrate-search", "--target", "1.5"], env=env)
        assert refused.exit_code == 2 and "1.5" in refused.output  # click's range check, before any query
    finally:
        admin_conn.execute("UPDATE memoriesdb.config SET value = %s::text::jsonb WHERE key = 'search_ef_search'", (before,))
        admin_conn.execute(
            "UPDATE memoriesdb.config SET value = %s::text::jsonb WHERE key = 'search_hnsw_min_fraction'", (fraction_before,)
        )
