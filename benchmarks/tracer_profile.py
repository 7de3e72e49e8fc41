"""Where a sandboxed check's time goes: CPU per check by process, against the program's own time.

    python benchmarks/tracer_profile.py [--repeats 3]

One pool worker (so nothing overlaps), every sandbox layer that works here on. For the 164
HumanEval canonical checks and for as many null jobs (a one-line program and a one-line test: the
sandbox's fixed cost), it reads the CPU time and page faults of each process from /proc:

    supervisor   this process: the pool's worker thread, Zygote.run, the verdict parsing, judging
    zygote       the warm zygote: receiving the job, fork, waiting, the sweep and the wipe
    job          the forked children (reaped by the zygote): isolation, limits, the harness, the
                 program and its tests, exit

and compares with the program's own running time (compile and exec of program and test in a
warm process, no sandbox), and with a bare fork of a process like the zygote (the floor of a
fresh process per program). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sides import cpu_model  # noqa: E402
from tracer.pool import TracerPool  # noqa: E402
from tracer.zygote import _PRELOAD  # noqa: E402
from tracer_sides import check_requests, problems  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")

FORK_FLOOR = r"""
import gc, json, os, sys, time
for name in json.loads(sys.argv[2]):  # the zygote's standard-library preloads
    __import__(name)
gc.collect(); gc.freeze()
n = int(sys.argv[1])
t = os.times()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
u = os.times()
print(json.dumps({"ms": 1000 * ((u.user - t.user) + (u.system - t.system) + (u.children_user - t.children_user)
                               + (u.children_system - t.children_system)) / n}))
"""


def _stat(pid: int) -> dict:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): minflt 10, cminflt 11, utime 14, stime 15, cutime 16, cstime 17
    g = lambda k: int(fields[k - 3])  # noqa: E731
    return {"zygote_cpu": (g(14) + g(15)) / TICK, "job_cpu": (g(16) + g(17)) / TICK,
            "zygote_faults": g(10), "job_faults": g(11)}


def _zygote_pids() -> list[int]:
    """The zygote interpreters below this process (not their bubblewrap parents)."""
    me, out, todo = os.getpid(), [], [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if pid != me and b"tracer.zygote" in b" ".join(argv) and b"bwrap" not in argv[0]:
            out.append(pid)
    return out


def measure(pool: TracerPool, reqs: list[dict], repeats: int) -> dict:
    """Per-request wall and CPU (ms) by process, and page faults, median over repeats."""
    rows = []
    for _ in range(repeats):
        (zpid,) = _zygote_pids()
        z0, s0, t0 = _stat(zpid), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        pool.run_tests(reqs)
        wall = time.perf_counter() - t0
        z1, s1 = _stat(zpid), resource.getrusage(resource.RUSAGE_SELF)
        n = len(reqs)
        rows.append({"wall_ms": 1000 * wall / n,
                     "supervisor_ms": 1000 * (s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime) / n,
                     "zygote_ms": 1000 * (z1["zygote_cpu"] - z0["zygote_cpu"]) / n,
                     "job_ms": 1000 * (z1["job_cpu"] - z0["job_cpu"]) / n,
                     "zygote_faults": (z1["zygote_faults"] - z0["zygote_faults"]) / n,
                     "job_faults": (z1["job_faults"] - z0["job_faults"]) / n})
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}


def own_time_ms(repeats: int) -> float:
    """The checks' own time: compile and exec of program and test, in this (warm) process."""
    probs = problems()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for p in probs:
            g = {"__name__": "__sandbox__"}
            exec(compile(p["prompt"] + p["canonical_solution"], "<program>", "exec"), g)
            exec(compile(p["test"], "<test>", "exec"), g)
            g["check"](g[p["entry_point"]])
        best = min(best, (time.perf_counter() - t) / len(probs))
    return 1000 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    reqs = check_requests()
    null = [{"id": str(i), "program": "def f(x):\n    return x\n", "timeout_s": 3.0,
             "tests": {"style": "assert", "test": "def check(c):\n    assert c(1) == 1\n", "entry_point": "f"}}
            for i in range(len(reqs))]
    with TracerPool(workers=1, max_jobs_per_zygote=1_000_000) as pool:  # one zygote throughout
        pool.run_tests(reqs[:8])
        checks = measure(pool, reqs, a.repeats)
        nulls = measure(pool, null, a.repeats)
    own = own_time_ms(a.repeats)
    stdlib = [m for m in _PRELOAD if not m.startswith("tracer")]
    floor_run = subprocess.run([sys.executable, "-S", "-c", FORK_FLOOR, "2000", json.dumps(stdlib)], check=True,
                               capture_output=True, text=True)
    floor = json.loads(floor_run.stdout)["ms"]
    cpu = lambda m: m["supervisor_ms"] + m["zygote_ms"] + m["job_ms"]  # noqa: E731
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); one worker; ms per check (CPU unless wall)")
    print(f"{'':34s}{'HumanEval check':>16s}{'null job':>10s}")
    for key, label in (("wall_ms", "wall"), ("supervisor_ms", "supervisor (pool, Zygote.run, judge)"),
                       ("zygote_ms", "zygote (receive, fork, wait, sweep)"), ("job_ms", "job child (all of it)"),
                       ("zygote_faults", "zygote page faults"), ("job_faults", "job page faults")):
        print(f"{label:34s}{checks[key]:16.3f}{nulls[key]:10.3f}")
    print(f"{'CPU, all processes':34s}{cpu(checks):16.3f}{cpu(nulls):10.3f}")
    print(f"program's own time (compile + exec, warm process, no sandbox): {own:.3f} ms")
    print(f"bare fork + exit + wait of a zygote-sized Python: {floor:.3f} ms")
    print(f"sandbox overhead per check: {cpu(checks) - own:.3f} ms CPU ({own / cpu(checks):.0%} of the CPU is the "
          f"program's own)")
    print(json.dumps({"cpu": cpu_model(), "checks": checks, "null": nulls, "own_ms": round(own, 3),
                      "fork_floor_ms": round(floor, 3), "check_cpu_ms": round(cpu(checks), 3),
                      "null_cpu_ms": round(cpu(nulls), 3)}))


if __name__ == "__main__":
    main()
