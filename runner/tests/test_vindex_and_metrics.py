"""The vindex worker, and the health/metrics endpoints."""

from __future__ import annotations

import asyncio
import itertools
import socket
import urllib.request

import psycopg

from memoriesdb_runner import db, metrics
from memoriesdb_runner.vindex import VindexWorker

from .conftest import remember


def test_vindex_coalesces_many_pending_rows_into_one_refresh(settings, admin_conn, user):
    uid, _ = user
    ids = remember(admin_conn, uid, *[f"node {i}" for i in range(101)])
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        for a, b in itertools.pairwise(ids):
            admin_conn.execute("SELECT memoriesdb.link(%s, %s, 'part_of')", (a, b))
    pending = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.vindexing_schedule").fetchone()["n"]
    assert pending >= 100
    runs_before = admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.vindexing_runs").fetchone()["n"]
    settings.vindex_debounce_seconds = 0.1

    async def scenario():
        pool = db.make_pool(settings.dsn)
        await pool.open()
        try:
            worker = VindexWorker(settings, pool, name="pytest")
            await worker.run(asyncio.Event(), until_empty=True)
            return worker.refreshes
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == 1
    run = admin_conn.execute(
        "SELECT rows_coalesced, finished_at >= started_at AS ok FROM memoriesdb.vindexing_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert run["rows_coalesced"] == pending and run["ok"]
    assert admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.vindexing_runs").fetchone()["n"] == runs_before + 1
    assert (
        admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.memory_graph WHERE node_id = ANY(%s)", (ids,)).fetchone()["n"]
        == 200
    ), "every edge, both directions"


def test_one_refresher_at_a_time(database, admin_conn, user):
    uid, _ = user
    a, b = remember(admin_conn, uid, "x", "y")
    with admin_conn.transaction():
        admin_conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
        admin_conn.execute("SELECT memoriesdb.link(%s, %s, 'related_to')", (a, b))
    with psycopg.connect(database) as first, psycopg.connect(database) as second:
        first.execute("SET ROLE memoriesdb_worker")
        second.execute("SET ROLE memoriesdb_worker")
        # the first refresh holds its lock until it commits
        assert first.execute("SELECT refreshed FROM memoriesdb.run_vindexing('first')").fetchone()[0] is True
        assert second.execute("SELECT refreshed FROM memoriesdb.run_vindexing('second')").fetchone()[0] is False
        first.commit()
        second.rollback()


def test_health_and_metrics_endpoints():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.serve(port)
    metrics.JOBS.labels("stored").inc()
    base = f"http://127.0.0.1:{port}"
    assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
    body = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    assert 'memoriesdb_jobs_total{outcome="stored"}' in body
    assert "memoriesdb_batch_seconds" in body and "memoriesdb_queue_depth" in body
    metrics.HEALTH.reset()
    try:
        urllib.request.urlopen(f"{base}/readyz", timeout=5)
        raise AssertionError("readyz must be 503 before the worker is ready")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
    metrics.HEALTH.started()
    assert urllib.request.urlopen(f"{base}/readyz", timeout=5).status == 200
