"""Prometheus metrics and the /metrics, /healthz (= /livez), /readyz endpoints."""

from __future__ import annotations

import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

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

READY = threading.Event()  # set once the database and the provider answered


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # no access log on stderr
        pass


def serve(port: int) -> None:
    """Serve metrics and health on 0.0.0.0:port in a daemon thread."""
    metrics_app = make_wsgi_app()
    started = time.time()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/livez"):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"ok {time.time() - started:.0f}s\n".encode()]
        if path == "/readyz":
            ok = READY.is_set()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"not ready\n"]
        return metrics_app(environ, start_response)

    server = make_server("0.0.0.0", port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
