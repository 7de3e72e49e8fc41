"""Python client for the tracer HTTP service: same interface as :class:`tracer.pool.TracerPool`.

Batches are split into chunks of ``batch_size`` requests and sent concurrently
(``concurrency`` connections); a chunk is retried on connection errors and on
503 (queue full) with exponential backoff, up to ``retries`` times. Results come
back in request order. A 400 (malformed request) raises :class:`RequestError`
at once; running out of retries raises :class:`ServiceError`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

from tracer.pool import RequestError


class ServiceError(RuntimeError):
    """The service could not be reached or kept refusing the batch."""


class TracerClient:
    def __init__(self, url: str = "http://127.0.0.1:8080", *, timeout_s: float = 600.0, retries: int = 5,
                 backoff_s: float = 0.5, batch_size: int = 64, concurrency: int = 4):
        self.url, self.timeout_s, self.retries = url.rstrip("/"), timeout_s, retries
        self.backoff_s, self.batch_size, self.concurrency = backoff_s, batch_size, concurrency

    def run_tests(self, requests: Iterable[dict]) -> list[dict]:
        return self._batched("/v1/run_tests", list(requests))

    def trace(self, requests: Iterable[dict]) -> list[dict]:
        return self._batched("/v1/trace", list(requests))

    def health(self, timeout_s: float | None = None) -> dict:
        with urllib.request.urlopen(self.url + "/healthz", timeout=timeout_s or self.timeout_s) as r:
            return json.loads(r.read())

    def layers(self, timeout_s: float = 30.0) -> dict:
        """The service's sandbox layers (its pool's ``sandbox``, as in every result). Raises
        :class:`ServiceError` when the service cannot be reached or does not report them."""
        try:
            sandbox = self.health(timeout_s).get("sandbox")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError) as e:
            raise ServiceError(f"{self.url}/healthz: {e}") from None
        if not isinstance(sandbox, dict):
            raise ServiceError(f"{self.url}/healthz does not report the sandbox layers")
        return sandbox

    def close(self) -> None:  # interface parity with TracerPool
        pass

    def __enter__(self) -> "TracerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _batched(self, path: str, requests: list[dict]) -> list[dict]:
        requests = [dict(r, id=str(r.get("id", i))) for i, r in enumerate(requests)]  # stable ids
        chunks = [requests[i:i + self.batch_size] for i in range(0, len(requests), self.batch_size)]
        if len(chunks) <= 1:
            return self._post(path, chunks[0]) if chunks else []
        with ThreadPoolExecutor(min(self.concurrency, len(chunks))) as ex:
            parts = list(ex.map(lambda c: self._post(path, c), chunks))
        return [r for part in parts for r in part]

    def _post(self, path: str, chunk: list[dict]) -> list[dict]:
        data = json.dumps({"requests": chunk}).encode()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                    results = json.loads(r.read())["results"]
                if [r["id"] for r in results] != [c["id"] for c in chunk]:
                    raise ServiceError("service returned results out of order")
                return results
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")
                if e.code == 400:
                    raise RequestError(body) from None
                if e.code not in (500, 502, 503, 504):
                    raise ServiceError(f"HTTP {e.code}: {body}") from None
                last = e
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
                last = e
        raise ServiceError(f"gave up after {self.retries + 1} attempts: {last}")
