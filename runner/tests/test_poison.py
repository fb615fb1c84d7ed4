"""One input the provider refuses must not take its batch-mates down (issue 15): the worker splits a
batch refused permanently until the refused inputs are alone; only they go dead, with their own
error. Real PostgreSQL, the fake Ollama server refusing chosen texts."""

from __future__ import annotations

import asyncio
import json
import math
import uuid

import numpy as np
from click.testing import CliRunner

from memoriesdb_runner import db
from memoriesdb_runner.cli import main
from memoriesdb_runner.providers import OllamaProvider
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.worker import EmbedWorker

from .conftest import remember
from .fake_ollama import vector_for
from .test_cli import env_of

POISON = "poison: \ufffe an input the model cannot embed"
REFUSAL = "input cannot be embedded"


def jobs_of(admin_conn, ids) -> dict:
    return {
        r["memory_id"]: r
        for r in admin_conn.execute("SELECT * FROM memoriesdb.embedding_schedule WHERE memory_id = ANY(%s)", (ids,)).fetchall()
    }


def embedded(admin_conn, ids) -> dict:
    """{memory id: (content, stored vector)} of the memories with a vector of their current content."""
    return {
        r["id"]: (r["content"], np.array(eval(r["e"])))
        for r in admin_conn.execute(
            "SELECT id, content, embedding::text AS e FROM memoriesdb.memories"
            " WHERE id = ANY(%s) AND embedding IS NOT NULL AND embedded_hash = content_hash",
            (ids,),
        ).fetchall()
    }


async def drain(settings, fake=None, **kw):
    """Drain the queue with a provider whose start-up probe has already been answered."""
    provider = OllamaProvider(settings)
    await provider.dimension()
    try:
        return await run_embed_workers(settings, until_empty=True, install_signals=False, provider=provider, **kw)
    finally:
        await provider.aclose()


def test_one_poison_input_does_not_kill_its_batch_mates(settings, admin_conn, user, fake_ollama):
    """The measured case: a batch of 12, one input refused for good (HTTP 400), two that meet a
    transient 500 and one a 429. Before: all 12 dead after one attempt. Now: the poison alone."""
    uid, _ = user
    healthy = [f"healthy memory {i}" for i in range(11)]
    texts = healthy[:5] + [POISON] + healthy[5:]
    ids = remember(admin_conn, uid, *texts)
    poison_id = ids[5]
    settings.batch_size = 12
    settings.max_retries = 4  # one group may meet all three transient failures before it answers
    fake_ollama.refuse = {POISON: REFUSAL}
    fake_ollama.flaky = {
        healthy[1]: [(500, {})],
        healthy[7]: [(500, {})],
        healthy[9]: [(429, {"Retry-After": "0.2"})],
    }

    assert asyncio.run(drain(settings)) == 11, "the eleven healthy memories are embedded"

    assert not any(fake_ollama.flaky.values()), "each transient failure was met (and retried)"
    jobs = jobs_of(admin_conn, ids)
    assert list(jobs) == [poison_id], "only the poison is still queued"
    dead = jobs[poison_id]
    assert dead["dead_at"] is not None and dead["attempts"] == 1
    assert "HTTP 400" in dead["last_error"] and REFUSAL in dead["last_error"], "its own error"
    stored = embedded(admin_conn, ids)
    assert sorted(c for c, _ in stored.values()) == sorted(healthy)
    for content, vector in stored.values():
        expected = np.array(vector_for(content, 384))
        assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-6), "each vector is its own text's"

    calls = [c for c in fake_ollama.calls if c != ["dimension probe"]]
    refused = [c for c in calls if POISON in c]
    transient = 3
    assert len(calls[0]) == 12 and POISON in calls[0]
    # the poison is in one call per level, down to itself alone: 12, 6, 3, 2 or 1, 1
    assert 4 <= len(refused) <= 1 + math.ceil(math.log2(12)) and refused[-1] == [POISON]
    # cost: the batch's call, at most 2*ceil(log2 12) = 8 more for the bisection, and the retries
    assert len(calls) <= 1 + 2 * math.ceil(math.log2(12)) + transient, calls


def test_transient_errors_while_bisecting_keep_their_backoff(settings, admin_conn, user, fake_ollama):
    """A group that fails transiently past its retries while the poison is being isolated goes back to
    the queue with a backoff, not dead; the poison goes dead; the others are embedded."""
    uid, _ = user
    texts = [POISON, "fine one", "fine two", "down for a while", "fine three", "fine four"]
    ids = dict(zip(texts, remember(admin_conn, uid, *texts), strict=True))
    settings.max_retries = 2
    fake_ollama.refuse = {POISON: REFUSAL}
    fake_ollama.flaky = {"down for a while": [(500, {})] * 50}

    asyncio.run(drain(settings))

    jobs = jobs_of(admin_conn, list(ids.values()))
    assert jobs[ids[POISON]]["dead_at"] is not None and REFUSAL in jobs[ids[POISON]]["last_error"]
    slow = jobs[ids["down for a while"]]
    assert slow["dead_at"] is None and slow["lease_id"] is None and slow["attempts"] == 1
    assert slow["run_after"] > slow["updated_at"] and "gave up after 2 tries: HTTP 500" in slow["last_error"]
    for text, mid in ids.items():
        if text in (POISON, "down for a while"):
            continue
        job = jobs.get(mid)
        # embedded, or a batch-mate of the failing text in its last group: backing off, never dead
        assert job is None or (job["dead_at"] is None and "HTTP 500" in job["last_error"]), (text, job)
    assert sum(1 for j in jobs.values() if j["dead_at"] is not None) == 1, "only the poison is dead"
    assert len(embedded(admin_conn, list(ids.values()))) == len(ids) - len(jobs) >= 2


def test_a_refusal_of_the_request_is_not_bisected(settings, admin_conn, user, fake_ollama):
    """A 404 (no such model) is about the request, not one input: no split, one call, all dead."""
    uid, _ = user
    ids = remember(admin_conn, uid, *[f"model gone {i}" for i in range(5)])

    async def scenario():
        provider = OllamaProvider(settings)
        await provider.dimension()
        fake_ollama.model = "something-else"
        try:
            return await run_embed_workers(settings, until_empty=True, install_signals=False, provider=provider)
        finally:
            await provider.aclose()

    assert asyncio.run(scenario()) == 0
    jobs = jobs_of(admin_conn, ids)
    assert all(j["dead_at"] is not None and "not found" in j["last_error"] for j in jobs.values()) and len(jobs) == 5
    assert len([c for c in fake_ollama.calls if c != ["dimension probe"]]) == 1, "no bisection"


def test_leases_stay_renewed_while_bisecting(settings, admin_conn, user, fake_ollama):
    """Isolating the poison takes several provider calls, longer than a lease: the leases are renewed
    meanwhile, so a second worker looking for ready jobs gets none of the batch."""
    uid, _ = user
    texts = [f"slow bisect {i}" for i in range(7)] + [POISON]
    ids = remember(admin_conn, uid, *texts)
    settings.lease_seconds = 2
    fake_ollama.refuse = {POISON: REFUSAL}
    fake_ollama.delay = 1.5  # each answered call (3 or more of them): past the 2 s lease twice over

    async def scenario():
        first = asyncio.create_task(drain(settings))
        while not fake_ollama.calls[1:]:
            await asyncio.sleep(0.02)
        stop = asyncio.Event()
        pool = db.make_pool(settings.dsn)
        await pool.open()
        provider = OllamaProvider(settings)
        second = EmbedWorker(settings, pool, provider, name="second")
        task = asyncio.create_task(second.run(stop))
        done = await first
        stop.set()
        await task
        await pool.close()
        await provider.aclose()
        return done, second.done + second.failed

    done, stolen = asyncio.run(scenario())
    assert stolen == 0, "the second worker got none of the batch"
    assert done == 7
    jobs = jobs_of(admin_conn, ids)
    assert list(jobs) == [ids[-1]] and jobs[ids[-1]]["dead_at"] is not None and jobs[ids[-1]]["attempts"] == 1


def test_requeue_by_id_after_the_provider_is_fixed(settings, admin_conn, user, fake_ollama):
    """The poison's dead job is listed by status with its error; once the provider takes the input,
    `memoriesdb requeue ID` puts it back and it is embedded. IDs that are not dead are named, exit 2."""
    uid, _ = user
    ids = remember(admin_conn, uid, "mate one", POISON, "mate two")
    fake_ollama.refuse = {POISON: REFUSAL}
    assert asyncio.run(drain(settings)) == 2
    poison_id = ids[1]
    env = env_of(settings)

    status = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert status.exit_code == 0, status.output
    assert any(d["memory_id"] == str(poison_id) and REFUSAL in d["last_error"] for d in json.loads(status.output)["dead"])
    human = CliRunner().invoke(main, ["status"], env=env)
    assert "memoriesdb requeue" in human.output

    fake_ollama.refuse = {}  # the provider is fixed (a new model version takes the input)
    unknown = uuid.uuid4()
    result = CliRunner().invoke(main, ["requeue", str(poison_id), str(ids[0]), str(unknown)], env=env)
    assert result.exit_code == 2, result.output
    assert "requeued 1 dead job" in result.stdout
    assert f"{ids[0]}: not requeued: no job" in result.stderr and f"{unknown}: not requeued: no job" in result.stderr
    job = jobs_of(admin_conn, [poison_id])[poison_id]
    assert job["dead_at"] is None and job["attempts"] == 0

    again = CliRunner().invoke(main, ["requeue", str(poison_id)], env=env)
    assert again.exit_code == 2 and f"{poison_id}: not requeued: not dead" in again.stderr, "queued, not dead"
    assert "requeued 0 dead jobs" in again.stdout

    assert asyncio.run(drain(settings)) == 1
    assert poison_id in embedded(admin_conn, ids) and not jobs_of(admin_conn, ids)
    ok = CliRunner().invoke(main, ["requeue", "--all"], env=env)
    assert ok.exit_code == 0 and "requeued " in ok.stdout


def test_requeue_all_and_usage(settings, admin_conn, user, fake_ollama):
    uid, _ = user
    ids = remember(admin_conn, uid, POISON, "second refused", "fine")
    fake_ollama.refuse = {POISON: REFUSAL, "second refused": "input too long"}
    asyncio.run(drain(settings))
    jobs = jobs_of(admin_conn, ids)
    assert jobs[ids[0]]["last_error"].endswith(f'"{REFUSAL}"}}') and jobs[ids[1]]["last_error"].endswith('"input too long"}')
    assert ids[2] not in jobs, "the batch-mate is embedded"
    dead = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE dead_at IS NOT NULL").fetchone()["n"]
    env = env_of(settings)

    for args in (["requeue"], ["requeue", "--all", str(ids[0])]):
        bad = CliRunner().invoke(main, args, env=env)
        assert bad.exit_code == 2 and "ID...) or give --all" in bad.output, bad.output
    assert CliRunner().invoke(main, ["requeue", "not-a-uuid"], env=env).exit_code == 2
    assert all(j["dead_at"] is not None for j in jobs_of(admin_conn, ids).values()), "nothing requeued by a usage error"

    result = CliRunner().invoke(main, ["requeue", "--all"], env=env)
    assert result.exit_code == 0, result.output
    assert f"requeued {dead} dead jobs" in result.stdout  # the fixture parks other tests' jobs as dead too
    assert all(j["dead_at"] is None and j["attempts"] == 0 for j in jobs_of(admin_conn, ids).values())
    assert (
        admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.embedding_schedule WHERE dead_at IS NOT NULL").fetchone()["n"]
        == 0
    )
    admin_conn.execute("UPDATE memoriesdb.embedding_schedule SET dead_at = now() WHERE memory_id <> ALL(%s)", (ids,))
    # the provider still refuses them: back to the dead letters, each with its own error again
    asyncio.run(drain(settings))
    jobs = jobs_of(admin_conn, ids)
    assert all(j["dead_at"] is not None for j in jobs.values()) and len(jobs) == 2
    assert "input too long" in jobs[ids[1]]["last_error"]
