"""A small HTTP server that speaks Ollama's /api/embed wire format, for tests.

No Ollama binary can be installed on the build machine; this server answers
the same JSON shapes (and the same error shapes) so that OllamaProvider's real
HTTP path is exercised. Behaviour is scripted per test.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def vector_for(text: str, dim: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32).tolist()


class FakeOllama:
    def __init__(self, dim: int = 384, model: str = "all-minilm"):
        self.dim = dim
        self.model = model
        # further models this server embeds with, by name: their dimension (several models side by side)
        self.extra_models: dict[str, int] = {}
        self.delay = 0.0
        self.fail_next: list[tuple[int, dict]] = []  # (status, headers) consumed one per request
        # per input text: a request holding one of these texts is refused with HTTP 400 and this
        # message, every time (an input the model cannot embed, whatever its batch-mates)
        self.refuse: dict[str, str] = {}
        # per input text: (status, headers) consumed one per request holding the text, when no
        # refused text is in it (a server failing while it works on this input: 500, 429, ...)
        self.flaky: dict[str, list[tuple[int, dict]]] = {}
        self.calls: list[list[str]] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                inputs = list(body["input"]) if isinstance(body["input"], list) else [body["input"]]
                with outer.lock:
                    outer.calls.append(inputs)
                    failure = outer.fail_next.pop(0) if outer.fail_next else None
                    refused = next((outer.refuse[t] for t in inputs if t in outer.refuse), None)
                    if failure is None and refused is None:
                        for t in inputs:
                            if outer.flaky.get(t):
                                failure = outer.flaky[t].pop(0)
                                break
                if refused is not None and failure is None:
                    data = json.dumps({"error": refused}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if failure:
                    status, headers = failure
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": f"scripted failure {status}"}).encode())
                    return
                if self.path == "/v1/embeddings":  # the OpenAI-compatible shape (Ollama serves it too)
                    outer.headers.append(dict(self.headers))
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    data = json.dumps(
                        {
                            "object": "list",
                            "model": body.get("model"),
                            "data": [
                                {"object": "embedding", "index": i, "embedding": vector_for(t, outer.dim)}
                                for i, t in reversed(list(enumerate(texts)))
                            ],
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if self.path != "/api/embed":
                    self.send_response(404)
                    self.end_headers()
                    return
                dim = outer.dim if body.get("model") == outer.model else outer.extra_models.get(body.get("model"))
                if dim is None:
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(
                        json.dumps({"error": f'model "{body.get("model")}" not found, try pulling it first'}).encode()
                    )
                    return
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                if texts != ["dimension probe"]:
                    time.sleep(outer.delay)
                answer = {
                    "model": body.get("model"),
                    "embeddings": [vector_for(t, dim) for t in texts],
                    "total_duration": 1,
                    "load_duration": 0,
                    "prompt_eval_count": len(texts),
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def embedded_texts(self) -> list[str]:
        with self.lock:
            return [t for call in self.calls for t in call if t != "dimension probe"]

    def close(self) -> None:
        self.server.shutdown()


class BlackHole:
    """A TCP port that accepts connections (the kernel's backlog) and never answers: a hung provider."""

    def __init__(self):
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._sock.close()


def refused_url() -> str:
    """A local port nothing listens on: connection refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


if __name__ == "__main__":  # run standalone: python -m runner.tests.fake_ollama
    fake = FakeOllama()
    print(fake.url, flush=True)
    threading.Event().wait()
