"""tracer: sandboxed execution of model-written Python for RL training.

Run unit tests (stdio, call-based and assert-style), trace variable values, and
serve both over HTTP. Imports nothing from coderl_jax and no JAX. Public API:

- :class:`TracerPool` -- in-process pool with a batch API (``run_tests``, ``trace``, ``health``);
- :class:`TracerClient` -- the same API over HTTP (``python -m tracer serve``);
- :func:`run_tests`, :func:`trace` -- one request at a time on a shared default pool;
- :class:`Limits`, :func:`detect_layers`, :class:`QueueFull`, :class:`RequestError`;
- :func:`missing_isolation`, :func:`describe_layers` -- read a sandbox report (a result's
  ``sandbox``, a pool's ``.sandbox``, the service's ``/healthz``); ``python -m tracer selftest``.

The contract (request and result fields, statuses) is documented in docs/tracer.md.
Submodules are imported lazily so that the zygote stays small.
"""

from __future__ import annotations

import _thread
import atexit
from typing import Any

__all__ = ["TracerPool", "TracerClient", "Limits", "QueueFull", "RequestError", "detect_layers", "run_tests",
           "trace", "default_pool", "missing_isolation", "describe_layers", "ServiceError"]

_LAZY = {"TracerPool": "tracer.pool", "QueueFull": "tracer.pool", "RequestError": "tracer.pool",
         "Limits": "tracer.sandbox", "detect_layers": "tracer.sandbox", "TracerClient": "tracer.client",
         "ServiceError": "tracer.client", "missing_isolation": "tracer.sandbox", "describe_layers": "tracer.sandbox"}
_default = None
# _thread, not threading: the zygote imports this package, and threading's at-fork hook would run
# Python code (and dirty copy-on-write pages) in every forked child.
_default_lock = _thread.allocate_lock()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tracer' has no attribute {name!r}")


def default_pool():
    """A process-wide pool (created on first use, closed at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            from tracer.pool import TracerPool

            _default = TracerPool()
            atexit.register(_default.close)
        return _default


def run_tests(program: str, tests: dict, *, timeout_s: float | None = None, **extra: Any) -> dict:
    """Judge one program against one tests object on the default pool."""
    req: dict[str, Any] = {"id": "0", "program": program, "tests": tests, **extra}
    if timeout_s is not None:
        req["timeout_s"] = timeout_s
    return default_pool().run_tests([req])[0]


def trace(program: str, stdin: str = "", *, timeout_s: float | None = None, **extra: Any) -> dict:
    """Trace one program on one stdin on the default pool."""
    req: dict[str, Any] = {"id": "0", "program": program, "stdin": stdin, **extra}
    if timeout_s is not None:
        req["timeout_s"] = timeout_s
    return default_pool().trace([req])[0]
