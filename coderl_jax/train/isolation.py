"""`tracer.require_isolation`: the sandbox must isolate the network, checked once when a run builds
its tracer (`make_tracer`).

Model-written code runs in the tracer's sandbox; only bubblewrap's network namespace keeps it off
the network (tracer/sandbox.py, docs/tracer.md). A run whose config requires isolation stops at
start-up, with one line naming what is missing and how to install it, when this host's pool (or the
remote service at `tracer.url`, which reports its layers at /healthz) lacks that layer.

- `require_isolation=True`: required (the pod presets).
- `None` (the default, "auto"): required when the job has more than one process; a one-process run
  (a laptop) works without bubblewrap and says so in its one start-up line about the sandbox.
- `False`: the explicit opt-out; the run logs a warning at start, and config.json records it.
"""

from __future__ import annotations

import logging

from tracer.sandbox import INSTALL_BWRAP as INSTALL
from tracer.sandbox import describe_layers, missing_isolation

from coderl_jax.errors import UserError


class IsolationError(UserError, RuntimeError):
    """The config requires a network-isolated sandbox and the sandbox here does not have one."""


def isolation_required(setting: bool | None, process_count: int) -> bool:
    """`tracer.require_isolation` resolved: None means required exactly when the job has several processes."""
    return process_count > 1 if setting is None else bool(setting)


def check_isolation(sandbox: dict | None, *, setting: bool | None, process_count: int, where: str,
                    log: logging.Logger, unknown_reason: str = "") -> None:
    """Log the sandbox's layers once; raise IsolationError when isolation is required and missing.

    `sandbox` is the tracer's report (`TracerPool.sandbox`, the service's /healthz "sandbox"), or
    None when it could not be read (`unknown_reason` says why)."""
    required = isolation_required(setting, process_count)
    why_required = ("tracer.require_isolation=true" if setting else
                    f"a job of {process_count} processes (tracer.require_isolation unset)")
    opt_out = "set tracer.require_isolation=false to run without it"
    if sandbox is None:
        if required:
            raise IsolationError(f"{where}: cannot read the sandbox layers ({unknown_reason}) and {why_required} "
                                 f"requires them; start the service, or {opt_out}")
        log.warning("%s: sandbox layers unknown (%s)", where, unknown_reason)
        return
    missing = missing_isolation(sandbox)
    if missing and required:
        cause = (sandbox.get("bwrap_problem") or "bubblewrap is not active").replace(f"; install it: {INSTALL}", "")
        raise IsolationError(f"{where} has no network isolation ({', '.join(missing)}: {cause}) and {why_required} "
                             f"requires it; install bubblewrap on every host ({INSTALL}), or {opt_out}")
    line = f"{where}: {describe_layers(sandbox)}"
    if setting is False:
        log.warning("tracer.require_isolation=false: the run does not require a network-isolated sandbox; %s",
                    line)
    elif missing:
        log.info("%s; model-written code can reach the network (for isolation: %s)", line, INSTALL)
    else:
        log.info("%s", line)
