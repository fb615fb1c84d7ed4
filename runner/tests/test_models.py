"""Versioned embeddings (issue 15): several models side by side, against a real PostgreSQL and the fake
Ollama server serving two models. This module deploys its own database: activating a model of another
dimension retypes memories.embedding, which the other modules' 384-dimensional vectors must not meet."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row

from memoriesdb_runner import admin
from memoriesdb_runner import models as model_registry
from memoriesdb_runner.cli import main
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.settings import Settings

from .conftest import DB, HOST, PORT, drop_ledger_database, remember
from .fake_ollama import vector_for

MODELS_DB = f"{DB}_models"
UPGRADE_DB = f"{DB}_models_up"


def dsn(db: str, user: str = "postgres") -> str:
    return f"postgresql://{user}@{HOST}:{PORT}/{db}"


@pytest.fixture(scope="module")
def database():
    drop_ledger_database(MODELS_DB)
    admin.deploy(dsn(MODELS_DB))
    admin.ensure_local_logins(dsn(MODELS_DB))
    yield dsn(MODELS_DB)
    drop_ledger_database(MODELS_DB)


@pytest.fixture
def settings(database, fake_ollama) -> Settings:
    fake_ollama.extra_models = {"wide": 8, "alt": 16, "slow": 8, "fill": 8, "cli": 8}
    return Settings(
        _env_file=None,
        dsn=dsn(MODELS_DB, "memoriesdb_runner"),
        listen_dsn=None,
        listen_port=int(PORT),
        app_dsn=dsn(MODELS_DB, "memoriesdb_client"),
        backend_dsn=dsn(MODELS_DB, "memoriesdb_server"),
        admin_dsn=database,
        provider="ollama",
        ollama_url=fake_ollama.url,
        batch_size=16,
        lease_seconds=30,
        poll_seconds=0.2,
        max_retries=3,
    )


def drain(settings) -> int:
    return asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False))


def progress(settings, name: str) -> dict:
    return next(r for r in asyncio.run(model_registry.progress(settings)) if r["model"] == name)


def add(settings, name: str, dim: int) -> int:
    return asyncio.run(model_registry.call(settings, "add_model", name=name, provider="ollama", dimension=dim))["jobs"]


def search(admin_conn, uid, vector: list[float], model: str | None = None, k: int = 1) -> list[dict]:
    """search() as the user, through the application role; by model when one is named."""
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL ROLE memoriesdb_app")
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        if model is None:
            return admin_conn.execute("SELECT id, similarity FROM memoriesdb.search(%s::vector, %s)", (str(vector), k)).fetchall()
        return admin_conn.execute(
            "SELECT id, similarity FROM memoriesdb.search(%s::vector, %s, %s)", (str(vector), model, k)
        ).fetchall()


def test_two_models_fill_and_are_searched_side_by_side(settings, admin_conn, user):
    uid, _ = user
    texts = ["a red bicycle", "the tax return is due", "penguins live in the south"]
    ids = remember(admin_conn, uid, *texts)
    drain(settings)
    assert add(settings, "wide", 8) == admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.memories").fetchone()["n"]
    assert progress(settings, "wide")["state"] == "filling"
    drain(settings)  # the running workers serve both models: the new one with its own provider and dimension
    p = progress(settings, "wide")
    assert p["done"] == p["total"] and p["pending"] == p["leased"] == p["dead"] == 0
    for text, mid in zip(texts, ids, strict=True):
        [by_default] = search(admin_conn, uid, vector_for(text, 384))
        [by_wide] = search(admin_conn, uid, vector_for(text, 8), "wide")
        assert by_default["id"] == by_wide["id"] == mid
        assert by_wide["similarity"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(psycopg.Error) as err:  # the query must be the named model's
        search(admin_conn, uid, vector_for(texts[0], 384), "wide")
    assert err.value.sqlstate == "MDB11"


def test_activate_switches_search(settings, admin_conn, user):
    uid, _ = user
    [mid] = remember(admin_conn, uid, "switch me over")
    drain(settings)
    add(settings, "alt", 16)
    with pytest.raises(psycopg.Error) as err:  # not complete yet
        asyncio.run(model_registry.call(settings, "activate_model", name="alt"))
    assert err.value.sqlstate == "MDB32"
    drain(settings)
    before = admin_conn.execute("SELECT name FROM memoriesdb.embedding_models WHERE state = 'active'").fetchone()["name"]
    row = asyncio.run(model_registry.call(settings, "activate_model", name="alt"))
    assert row["model"] == "alt" and row["previous"] == before
    [hit] = search(admin_conn, uid, vector_for("switch me over", 16))  # no model named: the new active one
    assert hit["id"] == mid and hit["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert admin_conn.execute("SELECT memoriesdb.setting('embedding_dim')::int AS d").fetchone()["d"] == 16
    # a new memory is embedded by the now active model (and mirrored for search) by the same workers
    [new] = remember(admin_conn, uid, "after the switch")
    drain(settings)
    assert search(admin_conn, uid, vector_for("after the switch", 16))[0]["id"] == new
    # the previous model is paused, searchable by name until it is retired
    assert progress(settings, before)["state"] == "paused"
    assert search(admin_conn, uid, vector_for("switch me over", 384), before)[0]["id"] == mid
    dropped = asyncio.run(model_registry.call(settings, "retire_model", name=before))
    assert dropped["vectors"] >= 1
    with pytest.raises(psycopg.Error) as err:
        search(admin_conn, uid, vector_for("switch me over", 384), before)
    assert err.value.sqlstate == "MDB31"


def test_pause_and_resume(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    [mid] = remember(admin_conn, uid, "paused in the middle")
    drain(settings)
    add(settings, "slow", 8)
    assert asyncio.run(model_registry.call(settings, "pause_model", name="slow"))["state"] == "paused"
    calls = len(fake_ollama.calls)
    drain(settings)
    p = progress(settings, "slow")
    assert p["state"] == "paused" and p["done"] == 0 and p["pending"] == p["total"], "no job of a paused model is claimed"
    assert len(fake_ollama.calls) == calls
    assert asyncio.run(model_registry.call(settings, "resume_model", name="slow"))["state"] == "filling"
    drain(settings)
    p = progress(settings, "slow")
    assert p["done"] == p["total"] and p["pending"] == 0
    assert search(admin_conn, uid, vector_for("paused in the middle", 8), "slow")[0]["id"] == mid


def test_a_revision_while_a_model_is_filling(settings, admin_conn, user):
    uid, _ = user
    [mid] = remember(admin_conn, uid, "the first words")
    drain(settings)
    add(settings, "fill", 8)
    asyncio.run(model_registry.call(settings, "pause_model", name="fill"))  # filling, not yet done
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        admin_conn.execute("SELECT memoriesdb.revise(%s, metadata => '{\"tag\": 1}')", (mid,))
    jobs = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = %s AND dead_at IS NULL", (mid,)
    ).fetchone()["n"]
    assert jobs == 1, "a metadata-only revision queues nothing (only fill's job from add_model waits)"
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        admin_conn.execute("SELECT memoriesdb.revise(%s, 'the second words')", (mid,))
    jobs = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE memory_id = %s AND dead_at IS NULL", (mid,)
    ).fetchone()["n"]
    live = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.embedding_models WHERE state <> 'retired'").fetchone()["n"]
    assert jobs == live >= 2, "new content re-queues the memory for every model not retired (active, filling, paused)"
    asyncio.run(model_registry.call(settings, "resume_model", name="fill"))
    drain(settings)
    p = progress(settings, "fill")
    assert p["done"] == p["total"]
    [hit] = search(admin_conn, uid, vector_for("the second words", 8), "fill")
    assert hit["id"] == mid and hit["similarity"] == pytest.approx(1.0, abs=1e-5), (
        "the filling model has the new content's vector"
    )


def test_models_commands(settings, admin_conn, user):
    from .test_cli import env_of

    uid, _ = user
    remember(admin_conn, uid, "through the command line")
    env = env_of(settings)
    added = CliRunner().invoke(main, ["models", "add", "cli", "--provider", "ollama", "--dim", "8"], env=env)
    assert added.exit_code == 0, added.output
    refused = CliRunner().invoke(main, ["models", "activate", "cli"], env=env)
    assert refused.exit_code == 1 and "MDB32" in refused.output + (refused.stderr if refused.stderr_bytes else "")
    drain(settings)
    waited = CliRunner().invoke(main, ["reembed", "cli", "--wait", "--timeout", "30"], env=env)
    assert waited.exit_code == 0, waited.output
    listed = CliRunner().invoke(main, ["models", "list", "--json"], env=env)
    assert listed.exit_code == 0
    assert '"model": "cli"' in listed.output and '"state": "filling"' in listed.output
    status = CliRunner().invoke(main, ["status"], env=env)
    assert status.exit_code == 0 and "embedding models (registry)" in status.output
    retired = CliRunner().invoke(main, ["models", "retire", "cli"], env=env)
    assert retired.exit_code == 0 and "retired" in retired.output


def test_cli_search_by_model(settings, admin_conn, user, fake_ollama):
    """memoriesdb search --model NAME: the query embedded by NAME's provider (its name as the provider's
    model, its dimension), searched in NAME's vectors, cached under NAME's label (a second search is a
    hit; nothing is shared with another model's entry of the same text)."""
    from .test_cli import env_of

    uid, key = user
    fake_ollama.extra_models["srch"] = 8
    fake_ollama.extra_models["srch2"] = 8
    light, _ = remember(admin_conn, uid, "a lighthouse on the cliff", "a bakery in the old town")
    for name in ("srch", "srch2"):
        add(settings, name, 8)
    drain(settings)
    env = {**env_of(settings), "MEMORIESDB_API_KEY": key}
    calls = len(fake_ollama.calls)
    for _ in range(2):
        found = CliRunner().invoke(main, ["search", "a lighthouse on the cliff", "--model", "srch", "-k", "1"], env=env)
        assert found.exit_code == 0, (found.output, found.exception)
        assert "lighthouse" in found.output and "(model srch)" in found.output
    assert len(fake_ollama.calls) == calls + 1, "two searches by model, one embedding: the second is a cache hit"
    cached = admin_conn.execute(
        "SELECT model, vector_dims(vector) AS d FROM memoriesdb_internal.query_cache WHERE owner_id = %s", (uid,)
    ).fetchall()
    assert cached == [{"model": "ollama:srch", "d": 8}], "the entry is keyed by the model searched"
    other = CliRunner().invoke(main, ["search", "a lighthouse on the cliff", "--model", "srch2", "-k", "1"], env=env)
    assert other.exit_code == 0 and "lighthouse" in other.output, (other.output, other.exception)
    assert len(fake_ollama.calls) == calls + 2, "another model never hits the first one's entry"
    with admin_conn.transaction():  # what the command printed is what search(query, model) answers
        admin_conn.execute("SET LOCAL ROLE memoriesdb_app")
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        top = admin_conn.execute(
            "SELECT id FROM memoriesdb.search(%s::vector, 'srch', 1)", (str(vector_for("a lighthouse on the cliff", 8)),)
        ).fetchone()
    assert top["id"] == light
    unknown = CliRunner().invoke(main, ["search", "anything", "--model", "nope"], env=env)
    assert unknown.exit_code == 1 and "MDB16" in unknown.output, unknown.output
    for name in ("srch", "srch2"):
        asyncio.run(model_registry.call(settings, "retire_model", name=name))
    retired = CliRunner().invoke(main, ["search", "a lighthouse on the cliff", "--model", "srch"], env=env)
    assert retired.exit_code == 1 and "MDB31" in retired.output, retired.output
    assert len(fake_ollama.calls) == calls + 2, "a retired model is refused before any provider call"


def test_dead_jobs_by_model_in_status_and_requeue(settings, admin_conn, user):
    """status lists each dead job with its model and counts them per model; requeue --model NAME puts
    back that model's dead jobs only (of the memories named, or all of them)."""
    from .test_cli import env_of

    uid, _ = user
    first, second = remember(admin_conn, uid, "dead for one model", "dead for the other too")
    for name in ("deadm", "deadn"):
        add(settings, name, 8)
    admin_conn.execute(
        "UPDATE memoriesdb.embedding_schedule s SET dead_at = now(), last_error = 'refused by ' || em.name"
        " FROM memoriesdb.embedding_models em"
        " WHERE em.id = s.model_id AND em.name IN ('deadm', 'deadn') AND s.memory_id IN (%s, %s)",
        (first, second),
    )
    env = env_of(settings)
    shown = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    dead = {(d["memory_id"], d["model"]) for d in data["dead"]}
    assert {(str(m), n) for m in (first, second) for n in ("deadm", "deadn")} <= dead
    per_model = {r["model"]: r["dead"] for r in data["registry"]}
    assert per_model["deadm"] >= 2 and per_model["deadn"] >= 2
    table = CliRunner().invoke(main, ["status"], env=env)
    assert table.exit_code == 0 and "dead jobs per model" in table.output and "deadm" in table.output, table.output

    def dead_of(name: str) -> set:
        return {
            r["memory_id"]
            for r in admin_conn.execute(
                "SELECT s.memory_id FROM memoriesdb.embedding_schedule s"
                " JOIN memoriesdb.embedding_models em ON em.id = s.model_id WHERE em.name = %s AND s.dead_at IS NOT NULL",
                (name,),
            ).fetchall()
        }

    one = CliRunner().invoke(main, ["requeue", "--model", "deadm", str(first)], env=env)
    assert one.exit_code == 0 and "requeued 1 dead job" in one.output, one.output
    assert first not in dead_of("deadm") and second in dead_of("deadm")
    assert {first, second} <= dead_of("deadn"), "the other model's dead jobs of the same memory stay dead"
    every = CliRunner().invoke(main, ["requeue", "--model", "deadn"], env=env)
    assert every.exit_code == 0 and f"requeued {len({first, second})} dead jobs" in every.output, every.output
    assert not dead_of("deadn") and second in dead_of("deadm")
    again = CliRunner().invoke(main, ["requeue", "--model", "deadn", str(first)], env=env)
    assert again.exit_code == 2 and "not dead" in again.output, again.output
    unknown = CliRunner().invoke(main, ["requeue", "--model", "nope", "--all"], env=env)
    assert unknown.exit_code == 1 and "MDB16" in unknown.output, unknown.output
    both = CliRunner().invoke(main, ["requeue", "--all", str(first)], env=env)
    assert both.exit_code == 2, both.output  # usage error: IDs or --all
    for name in ("deadm", "deadn"):
        asyncio.run(model_registry.call(settings, "retire_model", name=name))


def test_upgrade_registers_the_stored_vectors_as_the_active_model():
    """Deploy up to the change before embedding_models, embed a memory the v0.4 way, deploy HEAD."""
    drop_ledger_database(UPGRADE_DB)
    target = f"db:pg://postgres@{HOST}:{PORT}/{UPGRADE_DB}"
    env = admin.sqitch_environment(dsn(UPGRADE_DB))
    try:
        admin.ensure_database(dsn(UPGRADE_DB))
        subprocess.run(
            ["sqitch", "deploy", target, "--to", "query_cache_entries"],
            cwd=admin.project_dir(),
            env=env,
            check=True,
            capture_output=True,
        )
        with psycopg.connect(dsn(UPGRADE_DB), autocommit=True, row_factory=dict_row) as c:
            uid = c.execute("SELECT memoriesdb.create_user(%s) AS id", (f"u{uuid.uuid4().hex[:8]}",)).fetchone()["id"]
            with c.transaction():
                c.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                mid = c.execute("SELECT memoriesdb.remember('kept across the upgrade') AS id").fetchone()["id"]
            job = c.execute("SELECT memory_id, lease_id FROM memoriesdb.claim_embedding_jobs(1, '1 minute', 't')").fetchone()
            vec = "[" + ",".join(["1"] + ["0"] * 383) + "]"
            c.execute("SELECT memoriesdb.complete_embedding_job(%s, %s, %s::vector, 'legacy-model')", (mid, job["lease_id"], vec))
        subprocess.run(["sqitch", "deploy", target], cwd=admin.project_dir(), env=env, check=True, capture_output=True)
        with psycopg.connect(dsn(UPGRADE_DB), autocommit=True, row_factory=dict_row) as c:
            model = c.execute("SELECT id, name, provider, dimension, state FROM memoriesdb.embedding_models").fetchall()
            assert [(m["name"], m["provider"], m["dimension"], m["state"]) for m in model] == [
                ("legacy-model", "configured", 384, "active")
            ]
            kept = c.execute(
                "SELECT model_id, embedding::text AS e FROM memoriesdb.embeddings WHERE memory_id = %s", (mid,)
            ).fetchone()
            assert kept["model_id"] == model[0]["id"] and kept["e"] == vec
            assert (
                c.execute("SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE model_id IS NULL").fetchone()["n"] == 0
            )
    finally:
        drop_ledger_database(UPGRADE_DB)


def _index(admin_conn, name: str) -> dict | None:
    return admin_conn.execute(
        "SELECT c.relname, c.reloptions, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
        "WHERE c.oid = to_regclass('memoriesdb.' || %s)",
        (name,),
    ).fetchone()


def test_models_reindex_rebuilds_with_todays_graph_settings(settings, admin_conn, user):
    """`memoriesdb models reindex`: an index keeps the m / ef_construction it was built with; the command
    builds a copy concurrently with today's settings and gives it the old name; stopped after the old one
    was dropped, the same command only renames; unknown model: MDB16, exit 1."""
    from .test_cli import env_of

    uid, _ = user
    remember(admin_conn, uid, "an index rebuilt beside the old one", "searches go on meanwhile")
    drain(settings)
    # (the module's earlier tests may have activated a model of another dimension)
    active = admin_conn.execute("SELECT id, name, dimension FROM memoriesdb.embedding_models WHERE state = 'active'").fetchone()
    ix = admin_conn.execute("SELECT memoriesdb_internal.model_index_name(%s) AS n", (active["id"],)).fetchone()["n"]
    before = search(admin_conn, uid, vector_for("searches go on meanwhile", active["dimension"]))
    env = env_of(settings)
    admin_conn.execute("UPDATE memoriesdb.config SET value = '8' WHERE key = 'search_hnsw_m'")
    admin_conn.execute("UPDATE memoriesdb.config SET value = '40' WHERE key = 'search_hnsw_ef_construction'")
    try:
        out = CliRunner().invoke(main, ["models", "reindex", active["name"], "--maintenance-work-mem", "256MB"], env=env)
        assert out.exit_code == 0, out.output
        assert "step 3/3: name the new index" in out.output and "index rebuilt in" in out.output
        assert "m=8, ef_construction=40" in out.output
        row = _index(admin_conn, ix)
        assert row["indisvalid"] and row["reloptions"] == ["m=8", "ef_construction=40"], row
        assert _index(admin_conn, ix + "_rebuild") is None, "no copy left behind"
        assert search(admin_conn, uid, vector_for("searches go on meanwhile", active["dimension"])) == before

        # stopped after dropping the old index: a whole copy, under the copy's name, is only renamed
        admin_conn.execute(f'ALTER INDEX memoriesdb."{ix}" RENAME TO "{ix}_rebuild"')
        resumed = CliRunner().invoke(main, ["models", "reindex", active["name"]], env=env)
        assert resumed.exit_code == 0, resumed.output
        assert "step 1/1: name the new index" in resumed.output
        assert _index(admin_conn, ix)["indisvalid"] and _index(admin_conn, ix + "_rebuild") is None
    finally:
        admin_conn.execute("UPDATE memoriesdb.config SET value = '32' WHERE key = 'search_hnsw_m'")
        admin_conn.execute("UPDATE memoriesdb.config SET value = '128' WHERE key = 'search_hnsw_ef_construction'")
    # one rebuild of a model at a time: another one running (its session lock held here) refuses this one
    with psycopg.connect(settings.admin_dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended('memoriesdb models reindex ' || %s, 0))", (active["name"],))
        busy = CliRunner().invoke(main, ["models", "reindex", active["name"]], env=env)
    assert busy.exit_code == 1 and "is running" in busy.output + (busy.stderr if busy.stderr_bytes else "")
    assert _index(admin_conn, ix)["indisvalid"], "the refused run touched nothing"
    unknown = CliRunner().invoke(main, ["models", "reindex", "no-such-model"], env=env)
    assert unknown.exit_code == 1 and "MDB16" in unknown.output + (unknown.stderr if unknown.stderr_bytes else "")
