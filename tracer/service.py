"""HTTP JSON service over a :class:`TracerPool` (stdlib only).

  POST /v1/run_tests  {"requests": [...]} -> {"results": [...]}
  POST /v1/trace      {"requests": [...]} -> {"results": [...]}
  GET  /healthz       -> {"status", "workers", "queue_depth", "in_flight", "capacity", "done", "sandbox"}

Errors: 400 for a malformed body or request (the message names the request and
field), 413 for a body over ``max_body_bytes``, 503 with ``Retry-After`` when the
queue cannot take the batch (backpressure: never a hang), 500 if the service
itself fails. Run it with ``python -m tracer serve --host 127.0.0.1 --port P --workers N``.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracer.pool import QueueFull, RequestError, TracerPool


def make_server(pool: TracerPool, host: str = "127.0.0.1", port: int = 0, *,
                max_body_bytes: int = 256 << 20, admit_timeout_s: float = 1.0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tracer/1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
            pass

        def _send(self, code: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/healthz":
                self._send(200, pool.health())
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            kind = {"/v1/run_tests": "run_tests", "/v1/trace": "trace"}.get(self.path.rstrip("/"))
            if kind is None:
                self._send(404, {"error": f"no route {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > max_body_bytes:
                self.close_connection = True
                self._send(413 if length > 0 else 400, {"error": f"body must be 0..{max_body_bytes} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length))
                requests = body["requests"] if isinstance(body, dict) else None
                if not isinstance(requests, list):
                    raise RequestError("body must be an object with a list 'requests'")
                futures = pool.submit(kind, requests, admit_timeout_s)
            except (ValueError, KeyError, RecursionError) as e:  # RequestError is a ValueError
                self._send(400, {"error": str(e)})
                return
            except QueueFull as e:
                self._send(503, {"error": str(e), **pool.health()}, {"Retry-After": "1"})
                return
            try:
                self._send(200, {"results": [f.result() for f in futures]})
            except Exception as e:  # noqa: BLE001
                self._send(500, {"error": f"{type(e).__name__}: {e}"})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve(host: str, port: int, workers: int | None, **pool_kwargs: Any) -> None:
    sys.set_int_max_str_digits(0)  # requests may carry huge ints (expected outputs)
    with TracerPool(workers=workers, **pool_kwargs) as pool:
        server = make_server(pool, host, port)
        print(json.dumps({"serving": f"http://{host}:{server.server_address[1]}", "workers": pool.workers,
                          "sandbox": pool.sandbox}), flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def serve_in_thread(pool: TracerPool, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a background thread (tests, notebooks). Returns (server, base URL)."""
    server = make_server(pool, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"
