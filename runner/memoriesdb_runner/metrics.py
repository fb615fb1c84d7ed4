"""Prometheus metrics, the worker's health state, and the /metrics, /healthz (= /livez), /readyz endpoints."""

from __future__ import annotations

import socketserver
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

JOBS = Counter("memoriesdb_jobs_total", "Embedding jobs handled", ["outcome"])
BATCH_SECONDS = Histogram(
    "memoriesdb_batch_seconds", "Time to embed and store one batch", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
)
QUEUE_DEPTH = Gauge("memoriesdb_queue_depth", "Embedding jobs by state", ["state"])
REFUSALS_LAST_HOUR = Gauge(
    "memoriesdb_access_refusals_last_hour",
    "Refused access attempts in the access log over the last hour",
    ["function", "sqlstate"],
)
LAST_REFRESH_AGE = Gauge("memoriesdb_last_refresh_age_seconds", "Seconds since the last memory_graph refresh")
DB_FAULTS = Counter(
    "memoriesdb_db_faults_total", "Database faults (connection lost, server restarting, pool timeout) by operation", ["operation"]
)
PROVIDER_UNREACHABLE = Counter(
    "memoriesdb_provider_unreachable_total", "Batches given back uncounted because the provider could not be reached"
)
ANCHORS = Counter(
    "memoriesdb_anchors_total",
    "Checkpoints taken, signed and stored (ok), or not (failed); stored ones that undo the one before (went_back)",
    ["outcome"],
)
LAST_ANCHOR = Gauge("memoriesdb_last_anchor_timestamp_seconds", "Unix time of the last checkpoint stored")
BATCH_SPLITS = Counter(
    "memoriesdb_batch_splits_total",
    "Batches split in two because the provider refused them permanently for a reason that may be one input's",
)
READY_GAUGE = Gauge("memoriesdb_ready", "1 when /readyz answers 200")


class Health:
    """What /healthz and /readyz answer from, written by the worker loops (event-loop thread) and
    read by the server's threads. Live: every registered loop beat within stale_after seconds.
    Ready: live, started, the database answered the last call and the provider the last request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stale_after = 60.0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._beats: dict[str, float] = {}
            self._started = False
            self._db_ok = True
            self._provider_ok: bool | None = None  # None: no provider in this process (vindex only)
            self._why = {"db": "", "provider": ""}

    def beat(self, loop: str) -> None:
        self._beats[loop] = time.monotonic()

    def forget(self, loop: str) -> None:
        self._beats.pop(loop, None)

    def started(self) -> None:
        self._started = True

    def db(self, ok: bool, why: str = "") -> None:
        self._db_ok, self._why["db"] = ok, why

    def provider(self, ok: bool, why: str = "") -> None:
        self._provider_ok, self._why["provider"] = ok, why

    def live(self) -> tuple[bool, str]:
        now = time.monotonic()
        stale = {k: now - t for k, t in list(self._beats.items()) if now - t > self.stale_after}
        if stale:
            return False, "no heartbeat from " + ", ".join(f"{k} for {age:.0f}s" for k, age in stale.items())
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        live, why = self.live()
        if not live:
            return False, why
        if not self._started:
            return False, "starting"
        if not self._db_ok:
            return False, f"database unavailable: {self._why['db']}"
        if self._provider_ok is False:
            return False, f"provider unavailable: {self._why['provider']}"
        return True, "ready"


HEALTH = Health()


class _Quiet(WSGIRequestHandler):
    timeout = 5  # socket timeout: an idle or slow client holds one thread for at most this long

    def log_message(self, *args) -> None:  # no access log on stderr
        pass


class _ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # one thread per request: an idle connection cannot block /healthz
    block_on_close = False


_METRICS_APP = make_wsgi_app()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path in ("/healthz", "/livez", "/readyz"):
        ok, why = HEALTH.live() if path != "/readyz" else HEALTH.ready()
        if path == "/readyz":
            READY_GAUGE.set(int(ok))
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
        return [f"{why}\n".encode()]
    return _METRICS_APP(environ, start_response)


def serve(port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Serve metrics and health on host:port (threads, socket timeouts) in a daemon thread."""
    server = make_server(host, port, app, server_class=_ThreadedServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
