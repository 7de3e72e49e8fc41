"""The pool's contract: the three test styles, judging rules, ids and order, backpressure, layers."""

from __future__ import annotations

import os
import time

import pytest

from tracer_helpers import asserts, call, descendants, leftovers, stdio
from tracer import judge
from tracer.pool import QueueFull, RequestError, TracerPool

HAVE_BWRAP = os.access("/usr/bin/bwrap", os.X_OK)


def one(pool, req: dict) -> dict:
    return pool.run_tests([req])[0]


def test_stdio_pass_fail_and_per_test_statuses(pool):
    prog = "a, b = map(int, input().split())\nprint(a + b)\n"
    r = one(pool, stdio(prog, ["1 2\n", "3 4\n"], ["3\n", "7"]))
    assert (r["status"], r["passed"]) == ("passed", True)
    assert [t["status"] for t in r["tests"]] == ["passed", "passed"]
    r = one(pool, stdio(prog, ["1 2\n", "3 4\n", "5 5\n"], ["3", "8", "10"]))
    assert r["status"] == "failed" and [t["status"] for t in r["tests"]] == ["passed", "failed", "skipped"]
    r = one(pool, stdio(prog, ["1 2\n", "3 4\n", "5 5\n"], ["3", "8", "10"], stop_on_failure=False))
    assert [t["status"] for t in r["tests"]] == ["passed", "failed", "passed"]


def test_stdio_comparison_rules():
    assert judge.stdout_matches("1 2  \n3\n\n", "1 2\n3")  # trailing whitespace, trailing empty lines
    assert not judge.stdout_matches("1\n", "1\n2\n")  # a prefix of the expected lines is not enough
    assert not judge.stdout_matches("1\n2\n3\n", "1\n2\n")  # nor are extra lines
    assert judge.stdout_matches("0.3333333\n", "0.333333333")  # tolerance 1e-6 when both are numbers
    assert not judge.stdout_matches("0.334\n", "0.333")
    assert not judge.stdout_matches("1000000000001\n", "1000000000000")  # integers compare exactly
    assert judge.stdout_matches("1.0\n", "1")
    assert not judge.stdout_matches("YES\n", "yes")
    assert judge.stdout_matches("a  b\n", "a b")  # token-wise inside a line
    assert judge.stdout_matches("", "")


def test_call_style_functions_and_solution_class(pool):
    fn = "def add(a, b):\n    return a + b\n"
    r = one(pool, call(fn, "add", [[1, 2], [3, 4]], [3, 7]))
    assert r["status"] == "passed"
    sol = ("from typing import List\nclass Solution:\n    def twoSum(self, nums: List[int], t: int) -> List[int]:\n"
           "        seen = {}\n        for i, x in enumerate(nums):\n            if t - x in seen:\n"
           "                return [seen[t - x], i]\n            seen[x] = i\n")
    r = one(pool, call(sol, "twoSum", [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]], [[0, 1], [1, 2]]))
    assert r["status"] == "passed", r
    r = one(pool, call("def f():\n    return (1, 2)\n", "f", [[]], [[1, 2]]))  # tuple == list, like JSON
    assert r["status"] == "passed"
    r = one(pool, call("def f():\n    return 1\n", "f", [[]], [True]))  # bool is not int
    assert r["status"] == "failed"
    r = one(pool, call("def f():\n    return {1: 0.1 + 0.2}\n", "f", [[]], [{"1": 0.3}]))
    assert r["status"] == "passed"
    r = one(pool, call("x = 1\n", "missing", [[]], [1]))
    assert r["status"] == "failed" and "not defined" in r["tests"][0]["error"]


def test_call_stops_at_first_failure(pool):
    prog = "import time\ndef f(x):\n    if x == 2:\n        time.sleep(60)\n    return x\n"
    t = time.monotonic()
    r = one(pool, call(prog, "f", [[0], [1], [2]], [0, 5, 2], timeout_s=10))
    assert r["status"] == "failed" and [c["status"] for c in r["tests"]] == ["passed", "failed", "skipped"]
    assert time.monotonic() - t < 5


def test_call_timeout_is_per_case(pool):
    prog = "import time\ndef f(x):\n    time.sleep(0.4)\n    return x\n"
    r = one(pool, call(prog, "f", [[i] for i in range(4)], list(range(4)), timeout_s=1.0))
    assert r["status"] == "passed"  # 1.6 s in all, but every case is within its 1 s


def test_assert_style_and_mbpp_lists(pool):
    prog = "def sq(x):\n    return x * x\n"
    assert one(pool, asserts(prog, "def check(candidate):\n    assert candidate(3) == 9\n", "sq"))["passed"]
    assert one(pool, asserts(prog, "assert sq(3) == 9\nassert sq(4) == 16\n", "sq"))["passed"]
    assert one(pool, asserts(prog, "assert sq(3) == 9\nassert sq(4) == 16\n", ""))["passed"]  # MBPP, no entry point
    r = one(pool, asserts(prog, "assert sq(3) == 9\nassert sq(4) == 15\n", "sq"))
    assert r["status"] == "failed" and r["tests"][0]["error"].startswith("AssertionError")
    r = one(pool, asserts(prog, "def check(candidate):\n    assert candidate(3) == 9\n", "nope"))
    assert r["status"] == "failed"
    r = one(pool, asserts(prog, "def check(c):\n    assert c(3) ==\n", "sq"))
    assert r["status"] == "syntax_error" and r["where"] == "test"


def test_assert_guard_rejects_forged_equality(pool):
    prog = ("class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
            "def f(x):\n    return AlwaysEqual()\n")
    r = one(pool, asserts(prog, "def check(candidate):\n    assert candidate(1) == 2\n", "f"))
    assert r["status"] == "failed" and "not plain data" in r["tests"][0]["error"]
    prog2 = "import builtins\nbuiltins.abs = lambda x: 0\ndef f(x):\n    return 10.0\n"
    r = one(pool, asserts(prog2, "def check(candidate):\n    assert abs(candidate(1) - 1.0) < 1e-6\n", "f"))
    assert r["status"] == "failed"  # the test sees pristine builtins


def test_ids_order_and_request_errors(pool):
    reqs = [call("def f(x):\n    return x\n", "f", [[i]], [i]) for i in range(6)]
    for i, r in enumerate(reqs):
        if i % 2:
            r["id"] = f"req-{i}"
    res = pool.run_tests(reqs)
    assert [r["id"] for r in res] == ["0", "req-1", "2", "req-3", "4", "req-5"]
    assert all(r["passed"] for r in res)
    with pytest.raises(RequestError, match="request 0.*tests"):
        pool.run_tests([{"program": "x=1", "tests": {"style": "nope"}}])
    with pytest.raises(RequestError, match="missing field 'program'"):
        pool.trace([{"stdin": ""}])


def test_backpressure_is_an_error_not_a_hang():
    with TracerPool(workers=1, max_queue=2) as small:
        one = call("def f():\n    return 1\n", "f", [[]], [1])
        with pytest.raises(QueueFull, match="exceeds"):  # one submission may not exceed the queue ...
            small.submit("run_tests", [one] * 3)
        # ... a batch call runs in chunks of the queue's size, and checks every request first
        assert [r["passed"] for r in small.run_tests([one] * 5)] == [True] * 5
        with pytest.raises(RequestError, match="request 4"):
            small.run_tests([one] * 4 + [{"tests": {}}])
        assert small.health()["done"] == 5
        slow = stdio("import time\ntime.sleep(1.5)\n", [""], [""], timeout_s=5)
        futures = small.submit("run_tests", [slow, slow])
        t = time.monotonic()
        with pytest.raises(QueueFull, match="queue full"):
            small.run_tests([slow], admit_timeout_s=0.2)
        assert time.monotonic() - t < 1.0
        assert small.health()["queue_depth"] + small.health()["in_flight"] == 2
        assert [f.result()["status"] for f in futures] == ["passed", "passed"]


def test_fresh_workdir_and_fixed_hash_seed(pool):
    prog = ("import os\nprint(sorted(os.listdir('.')))\nopen('mine.txt', 'w').write('x')\n"
            "print(hash('abc') == int(input()))\n")
    seed_hash = pool.trace([{"program": "print(hash('abc'))"}])[0]["stdout"].strip()
    for _ in range(3):
        r = one(pool, stdio(prog, [seed_hash + "\n"], ["[]\nTrue"]))
        assert r["status"] == "passed", r


def test_sandbox_metadata_reports_layers(pool):
    r = one(pool, call("def f():\n    return 1\n", "f", [[]], [1]))
    sb = r["sandbox"]
    for key in ("bwrap", "network_isolated", "read_only_root", "private_tmp", "pid_namespace", "rlimits",
                "uid_drop", "wall_clock_kill", "private_verdict_channel"):
        assert key in sb
    assert sb["rlimits"] and sb["wall_clock_kill"] and sb["private_verdict_channel"]
    if HAVE_BWRAP:
        assert sb["bwrap"] and sb["network_isolated"] and sb["pid_namespace"] and sb["read_only_root"]
    assert pool.health()["workers"] == 2


def test_without_bwrap_the_rest_is_still_enforced():
    with TracerPool(workers=1, use_bwrap=False) as p:
        assert p.sandbox["bwrap"] is False and p.sandbox["rlimits"] is True
        res = p.run_tests([stdio("while True: pass", [""], [""], timeout_s=1),
                           stdio("x = bytearray(4 << 30)", [""], [""]),
                           call("def f(x):\n    return x\n", "f", [[1]], [1])])
        assert [r["status"] for r in res] == ["timeout", "memory_limit", "passed"]
        assert leftovers(p) == 0


def test_pool_close_leaves_nothing(tmp_path):
    before = {p for p in os.listdir("/tmp") if p.startswith("tracer-")}
    p = TracerPool(workers=2, use_bwrap=False)
    p.run_tests([call("def f():\n    return 1\n", "f", [[]], [1])] * 4)
    procs = [z.proc for w in p._workers for z in w.zygotes.values()]
    p.close()
    assert all(proc.poll() is not None for proc in procs)
    assert {q for q in os.listdir("/tmp") if q.startswith("tracer-")} == before


def test_child_state_set_up_once_in_the_zygote(pool):
    """Environment, no_new_privs, signal dispositions and the prepared std streams: set up once in
    the zygote and inherited by each child, they must look exactly like a per-child setup."""
    prog = ("import os, signal, sys\n"
            "env = sorted(k for k in os.environ if k not in ('HOME', 'TMPDIR'))\n"
            "nnp = [l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')]\n"
            "print(env, nnp, os.environ['HOME'] == os.environ['TMPDIR'] == os.getcwd())\n"
            "print(signal.getsignal(signal.SIGINT) == signal.SIG_DFL, signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN)\n"
            "print(sys.stdin.seekable(), sys.stdout.seekable(), sys.stdin.read(), 'threading' in sys.modules)\n"
            "open('f', 'w').write('x')\n")
    want = ("['LANG', 'LC_ALL', 'MKL_NUM_THREADS', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'PATH', "
            "'PYTHONDONTWRITEBYTECODE', 'PYTHONIOENCODING'] ['1'] True\nTrue True\nTrue False abc False\n")
    for _ in range(3):  # the same work directory name is reused once the previous job's is gone
        r = one(pool, stdio(prog, ["abc", "abc"], [want, want]))
        assert r["status"] == "passed", r


def test_package_under_tmp_is_visible_inside_the_sandbox(tmp_path):
    """A checkout or virtual environment under /tmp (hidden by the private /tmp) still works:
    the zygote's code is bound back read-only, and jobs cannot leave files next to it."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="tracer-checkout-"))
    try:
        shutil.copytree(Path(__file__).resolve().parents[2] / "tracer", root / "tracer",
                        ignore=shutil.ignore_patterns("__pycache__"))
        script = (
            "import json, sys\n"
            f"sys.path.insert(0, {str(root)!r})\n"
            "import tracer\n"
            "assert tracer.__file__.startswith(sys.path[0]), tracer.__file__\n"
            "from tracer import TracerPool\n"
            "prog = 'import os\\nfor d in (%r, %r):\\n    try:\\n        open(d + \"/planted\", \"w\").write(\"x\")\\n'"
            f" % ({str(root)!r}, {str(root.parent)!r}) + "
            "'    except OSError:\\n        pass\\nprint(input())\\n'\n"
            "with TracerPool(workers=1) as pool:\n"
            "    res = pool.run_tests([{'id': str(i), 'program': prog, 'tests': {'style': 'stdio', 'inputs': ['7\\n'],"
            " 'outputs': ['7\\n']}, 'timeout_s': 5} for i in range(3)])\n"
            "print(json.dumps([[r['status'], r['sandbox']['bwrap']] for r in res]))\n"
        )
        out = subprocess.run([sys.executable, "-s", "-c", script], capture_output=True, text=True, timeout=120,
                             cwd=root)
        assert out.returncode == 0, out.stderr
        statuses = json.loads(out.stdout.strip().splitlines()[-1])
        assert [s for s, _ in statuses] == ["passed"] * 3
        assert not (root / "planted").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_zygote_kills_the_running_job_when_the_supervisor_goes():
    """The zygote watches its control socket while a job runs: if the supervisor goes away (here
    without killing the job itself, as a crashed supervisor would), the zygote kills the job and
    exits, so no job outlives its supervisor."""
    import json
    import marshal
    import socket

    from tracer.sandbox import Limits, Zygote, _memfd, detect_layers

    z = Zygote(detect_layers(), Limits())
    lim = z.limits
    hdr = {"t": "run", "limits": {"cpu_s": 60, "as_bytes": lim.memory_mb << 20, "file_bytes": lim.file_bytes,
                                  "nofile": lim.nofile, "nproc": z.nproc}}
    job = {"kind": "stdio", "program": "import time\ntime.sleep(60)\n", "index": 0, "nonce": "n"}
    pipes = [os.pipe() for _ in range(3)]
    fds = [_memfd(marshal.dumps(job)), _memfd(b""), *(w for _, w in pipes)]
    socket.send_fds(z.sock, [json.dumps(hdr).encode()], fds)
    for fd in fds:
        os.close(fd)
    msg, got = z._recv(20.0)
    assert msg["t"] == "started"
    os.close(got[0])  # the supervisor's pidfd: it will not kill the job
    job_pids = set(descendants(z.proc.pid))
    assert job_pids
    z.sock.shutdown(socket.SHUT_RDWR)
    z.proc.wait(timeout=10)  # the zygote exits on its own, long before the job's 60 s sleep ends...
    for pid in job_pids:  # ...and takes the job with it
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"
    for r, _ in pipes:
        os.close(r)
    z.close(hard=True)
