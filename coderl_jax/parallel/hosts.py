"""Multi-host (multi-controller) plumbing for the training loop: host values in and out of global
arrays, Python objects gathered from every process, and a tracer that splits its work by host.

In a multi-host JAX job every process runs the same program. The loop keeps one rule: every
process holds the same *global* host-side view of a step (problems, completions, rewards, the
alignment buffer), and only two things are split by host:

- the data: each process reads its own grain shard and contributes its problems, gathered with
  `gather_objects` and interleaved (`interleave`), so the global order is the order one process
  would read an unsharded, unshuffled dataset in;
- the sandbox: `HostShardedTracer` runs each process's contiguous block of the requests on that
  host's own tracer pool and gathers the results, so rewards, harvests and evaluations use every
  host's CPUs once.

With one process everything here is the identity (no communication).
"""

from __future__ import annotations

import pickle
from typing import Any, Iterable, Sequence

import jax
import numpy as np


def process_count() -> int:
    return jax.process_count()


def to_host(x) -> np.ndarray:
    """A global jax.Array as a NumPy array on every process (an all-gather when the array spans
    devices of other processes; a plain copy otherwise)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def place(x: np.ndarray, sharding) -> jax.Array:
    """The same host value, held by every process, as a global array with `sharding` (each process
    copies only the slices its own devices hold)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def gather_objects(obj: Any) -> list[Any]:
    """[obj of process 0, obj of process 1, ...] on every process (pickled; trusted peers only)."""
    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    blob = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([blob.size], np.int64))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: blob.size] = blob
    blobs = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [pickle.loads(blobs[i, : int(n)].tobytes()) for i, n in enumerate(sizes)]


def split_counts(total: int, parts: int) -> list[int]:
    """How many of `total` items each of `parts` hosts takes (the first `total % parts` take one more)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def interleave(per_host: Sequence[Sequence[Any]]) -> list[Any]:
    """Round-robin merge: host 0's first, host 1's first, ..., host 0's second, ... Host h of H
    reading records h, h+H, h+2H, ... of a dataset gives back the dataset's own order."""
    out = []
    for j in range(max((len(x) for x in per_host), default=0)):
        out.extend(x[j] for x in per_host if j < len(x))
    return out


def host_block(n: int, index: int | None = None, count: int | None = None) -> slice:
    """This process's contiguous block of `n` items."""
    index = jax.process_index() if index is None else index
    count = jax.process_count() if count is None else count
    sizes = split_counts(n, count)
    start = sum(sizes[:index])
    return slice(start, start + sizes[index])


class HostShardedTracer:
    """A tracer (TracerPool or TracerClient) whose batch calls each host runs one block of: process
    h runs its contiguous block of the requests on its own `tracer` and the results are gathered,
    so every process gets all results in request order. Every process must make the same calls
    with the same requests (the loop's global view guarantees it)."""

    def __init__(self, tracer):
        self.tracer = tracer

    def _split(self, method: str, requests: Iterable[dict], **kwargs) -> list[dict]:
        requests = list(requests)
        if jax.process_count() == 1:
            return getattr(self.tracer, method)(requests, **kwargs)
        mine = requests[host_block(len(requests))]
        results = getattr(self.tracer, method)(mine, **kwargs) if mine else []
        return [r for block in gather_objects(results) for r in block]

    def run_tests(self, requests: Iterable[dict], **kwargs) -> list[dict]:
        return self._split("run_tests", requests, **kwargs)

    def trace(self, requests: Iterable[dict], **kwargs) -> list[dict]:
        return self._split("trace", requests, **kwargs)

    def health(self) -> dict:
        return self.tracer.health()

    def close(self) -> None:
        if hasattr(self.tracer, "close"):
            self.tracer.close()
