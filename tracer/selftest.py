"""``python -m tracer selftest``: does the sandbox work on this machine, and is the network isolated?

Runs two jobs through a real pool: a stdio test that must pass, and a program that tries to connect
to a port this process listens on at 127.0.0.1. Inside bubblewrap's network namespace that
connection is refused (its loopback is another interface); without it the connection succeeds. The
report holds the layers (``Layers.as_dict()``), the two checks and, when something is missing, why
and how to install it. With ``require_isolation`` (the default) a sandbox without network
isolation fails the self-test: tpu_scripts/setup.sh runs it on every worker before it calls a pod
ready.
"""

from __future__ import annotations

import socket
from typing import Any

from tracer.sandbox import describe_layers, missing_isolation


def _net_probe(port: int) -> str:
    return ("import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
            "    print('connected')\n"
            "except OSError:\n"
            "    print('blocked')\n")


def selftest(*, require_isolation: bool = True, pool: Any = None) -> dict:
    """The report: {"ok", "message", "sandbox", "checks": {"run_tests", "network_blocked"}, "missing"}."""
    from tracer.pool import TracerPool

    own = pool is None
    if own:
        pool = TracerPool(workers=1)
    srv = socket.socket()
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        run = pool.run_tests([{"id": "selftest-run", "program": "print(int(input()) * 2)\n",
                               "tests": {"style": "stdio", "inputs": ["21\n"], "outputs": ["42"]}}])[0]
        net = pool.trace([{"id": "selftest-net", "program": _net_probe(port), "timeout_s": 10}])[0]
        sandbox = dict(pool.sandbox)
    finally:
        srv.close()
        if own:
            pool.close()
    blocked = net.get("status") == "ok" and net.get("stdout", "").strip() == "blocked"
    checks = {"run_tests": run.get("status") == "passed", "network_blocked": blocked}
    missing = missing_isolation(sandbox)
    problems = []
    if not checks["run_tests"]:
        problems.append(f"a passing program did not pass in the sandbox (status {run.get('status')}: "
                        f"{run.get('error') or run.get('tests')})")
    if missing or not blocked:
        why = sandbox.get("bwrap_problem") or (f"bubblewrap is on but a sandboxed program reached 127.0.0.1 "
                                               f"(trace status {net.get('status')}, stdout {net.get('stdout')!r})")
        problems.append(f"no network isolation: {why}")
    isolated = not missing and blocked
    ok = checks["run_tests"] and (isolated or not require_isolation)
    if ok and isolated:
        message = "tracer selftest: ok, network isolated"
    elif ok:
        message = f"tracer selftest: ok without network isolation ({'; '.join(problems)})"
    else:
        message = f"tracer selftest: FAILED: {'; '.join(problems)}"
    return {"ok": ok, "message": message, "sandbox": sandbox, "checks": checks, "missing": missing,
            "summary": describe_layers(sandbox)}
