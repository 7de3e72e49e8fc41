"""Bad and hostile programs: each ends with the exact status, within its deadline, and nothing survives."""

from __future__ import annotations

import json
import math
import os
import socket
import time

import pytest

from tracer_helpers import asserts, call, leftovers, stdio

T = 1.0  # per-case timeout used for the runaway programs


def run(pool, req: dict, budget_s: float = 10.0) -> dict:
    t = time.monotonic()
    r = pool.run_tests([req])[0]
    assert time.monotonic() - t < budget_s, f"took {time.monotonic() - t:.1f}s"
    assert leftovers(pool) == 0
    return r


def trace(pool, program: str, **kw) -> dict:
    r = pool.trace([{"program": program, "timeout_s": kw.pop("timeout_s", 5.0), **kw}])[0]
    json.dumps(r)  # always serializable
    assert leftovers(pool) == 0
    return r


def need(layers: dict, key: str) -> None:
    if not layers.get(key):
        pytest.skip(f"sandbox layer {key!r} is not active here")


# ----------------------------------------------------------------------------- time
@pytest.mark.parametrize("program", [
    "while True:\n    pass\n",
    "import time\nwhile True:\n    time.sleep(0.05)\n",  # wall clock, not CPU
    "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass\n",
    "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n",
    "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass\n",
], ids=["cpu_loop", "sleep_loop", "swallow_exceptions", "ignore_sigterm", "signal_alarm"])
def test_runaway_programs_time_out(pool, program):
    r = run(pool, stdio(program, [""], [""], timeout_s=T), budget_s=T + 4)
    assert r["status"] == "timeout" and r["tests"][0]["status"] == "timeout"


def test_timeout_in_trace_keeps_partial_stdout(pool):
    r = trace(pool, "print('started', flush=True)\nwhile True:\n    pass\n", timeout_s=T)
    assert r["status"] == "timeout" and r["stdout"] == "started\n"


def test_signal_alarm_that_fires_is_an_early_exit(pool):
    r = run(pool, stdio("import signal, time\nsignal.alarm(1)\ntime.sleep(5)\nprint(1)\n", [""], ["1"], timeout_s=3))
    assert r["status"] == "exited_early"


# ----------------------------------------------------------------------------- processes
def test_fork_bomb(pool, layers):
    if not (layers["pid_namespace"] or layers["nproc_limit"]):
        pytest.skip("neither a pid namespace nor RLIMIT_NPROC bounds a fork bomb here")
    prog = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    r = run(pool, stdio(prog, [""], [""], timeout_s=T), budget_s=T + 8)
    assert r["status"] == "timeout"


def test_double_fork_daemon_does_not_survive(pool):
    prog = ("import os, time\n"
            "def f(x):\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(60)\n"
            "        os._exit(0)\n"
            "    time.sleep(0.2)\n"
            "    return x\n")
    r = run(pool, call(prog, "f", [[1], [2]], [1, 2]))  # run() asserts no process is left
    assert r["status"] == "passed"


def test_killing_the_parent_fails_harmlessly(pool):
    prog = ("import os, signal\n"
            "def f(x):\n"
            "    for pid in (os.getppid(), 1):\n"
            "        try:\n"
            "            os.kill(pid, signal.SIGKILL)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return x + 1\n")
    assert run(pool, call(prog, "f", [[1]], [1]))["status"] == "failed"
    assert run(pool, call("def f(x):\n    return x\n", "f", [[1]], [1]))["status"] == "passed"  # still serving


def test_killing_its_own_process_group_is_an_early_exit(pool):
    prog = "import os, signal\ndef f(x):\n    if x == 2:\n        os.killpg(os.getpgrp(), signal.SIGKILL)\n    return x\n"
    r = run(pool, call(prog, "f", [[1], [2], [3]], [1, 2, 3]))
    assert r["status"] == "exited_early"
    assert [t["status"] for t in r["tests"]] == ["passed", "exited_early", "skipped"]


# ----------------------------------------------------------------------------- exits
@pytest.mark.parametrize("exit_stmt", ["sys.exit(0)", "os._exit(0)", "raise SystemExit", "exit()", "quit()"])
def test_exit_in_the_middle_of_call_tests(pool, exit_stmt):
    prog = f"import os, sys\ndef f(x):\n    if x == 2:\n        {exit_stmt}\n    return x\n"
    r = run(pool, call(prog, "f", [[1], [2], [3]], [1, 2, 3]))
    assert r["status"] == "exited_early" and not r["passed"]
    assert [t["status"] for t in r["tests"]] == ["passed", "exited_early", "skipped"]


@pytest.mark.parametrize("where", ["module", "check"])
def test_exit_in_assert_style(pool, where):
    prog = "import sys\ndef f(x):\n    return x\n" + ("sys.exit(0)\n" if where == "module" else "")
    test = "def check(candidate):\n    assert candidate(1) == 1\n" + ("    import os; os._exit(0)\n" if where == "check" else "")
    test += "    assert candidate(2) == 3\n"
    r = run(pool, asserts(prog, test, "f"))
    assert r["status"] == "exited_early"


def test_stdio_exit_codes(pool):
    assert run(pool, stdio("print(1)\nimport sys\nsys.exit(0)\n", [""], ["1"]))["status"] == "passed"
    assert run(pool, stdio("print(1)\nimport sys\nsys.exit(3)\n", [""], ["1"]))["status"] == "failed"
    assert run(pool, stdio("import os\nprint(1, flush=True)\nos._exit(0)\n", [""], ["1"]))["status"] == "exited_early"


# ----------------------------------------------------------------------------- memory, output, files
def test_memory_bomb(pool):
    prog = "blocks = []\nwhile True:\n    blocks.append(bytes(50 << 20))\n"
    r = run(pool, stdio(prog, [""], [""], timeout_s=5))
    assert r["status"] == "memory_limit"
    r = trace(pool, prog)
    assert r["status"] == "memory_limit"


def test_huge_output(pool):
    r = run(pool, stdio("while True:\n    print('x' * 10000)\n", [""], [""], timeout_s=5))
    assert r["status"] == "output_limit"
    r = run(pool, stdio("import sys\nwhile True:\n    sys.stderr.write('y' * 10000)\n", [""], [""], timeout_s=5))
    assert r["status"] == "output_limit"
    assert trace(pool, "while True:\n    print('x' * 10000)\n")["status"] == "output_limit"


def test_filling_tmp(pool, layers):
    need(layers, "private_tmp")
    prog = "i = 0\nwhile True:\n    open(f'/tmp/fill{i}', 'wb').write(bytes(1 << 20))\n    i += 1\n"
    r = run(pool, stdio(prog, [""], [""], timeout_s=10), budget_s=15)
    assert r["status"] == "failed" and "No space left" in r["tests"][0]["error"]
    # the next job starts with an empty /tmp again
    r = run(pool, stdio("import os\nprint(os.path.exists('/tmp/fill0'))\nopen('/tmp/a', 'wb').write(bytes(1 << 20))\n",
                        [""], ["False"]))
    assert r["status"] == "passed", r
    big = run(pool, stdio("open('big', 'wb').write(bytes(64 << 20))\n", [""], [""]))  # RLIMIT_FSIZE
    assert big["status"] == "failed" and "File too large" in big["tests"][0]["error"]


def test_writes_outside_the_work_directory_are_blocked(pool, layers, tmp_path):
    if not (layers["read_only_root"] or layers["uid_drop"]):
        pytest.skip("neither a read-only root nor an unprivileged uid here")
    here = os.path.dirname(os.path.abspath(__file__))
    targets = [str(tmp_path / "outside.txt"), os.path.join(here, "pwned.txt"), "/etc/pwned.txt"]
    prog = ("import sys\nfor path in sys.stdin.read().split():\n    try:\n        open(path, 'w').write('x')\n"
            "        print('wrote', path)\n    except OSError:\n        print('blocked')\n")
    r = run(pool, stdio(prog, ["\n".join(targets)], ["blocked\nblocked\nblocked"]))
    assert r["status"] == "passed", r
    assert not any(os.path.exists(t) for t in targets)


def test_host_environment_and_home_are_invisible(tmp_path, layers, monkeypatch):
    if not (layers["hidden_home"] or layers["uid_drop"]):
        pytest.skip("home directories are readable by jobs here")
    from tracer.pool import TracerPool

    secret_file = tmp_path / "home" / ".secret"
    secret_file.parent.mkdir()
    secret_file.write_text("hunter2-file")
    monkeypatch.setenv("TRACER_FAKE_SECRET", "hunter2-env")
    monkeypatch.setenv("HOME", str(secret_file.parent))
    prog = ("import os, glob\nfound = []\n"
            "found += [v for v in os.environ.values() if 'hunter2' in v]\n"
            "for path in ['/proc/1/environ', '/proc/self/environ', '/proc/%d/environ' % os.getppid(),"
            f" {str(secret_file)!r}, os.path.expanduser('~/.secret')] + glob.glob('/root/.*') + glob.glob('/home/*/.*'):\n"
            "    try:\n        data = open(path, 'rb').read()\n    except OSError:\n        continue\n"
            "    if b'hunter2' in data:\n        found.append(path)\n"
            "print(found)\n")
    with TracerPool(workers=1) as p:
        r = p.run_tests([stdio(prog, [""], ["[]"])])[0]
    assert r["status"] == "passed", r


def test_network_is_blocked(pool, layers):
    need(layers, "network_isolated")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    prog = ("import socket\nfor host in ['127.0.0.1', '1.1.1.1']:\n    try:\n"
            f"        socket.create_connection((host, {port}), timeout=1)\n        print('connected')\n"
            "    except OSError:\n        print('blocked')\n")
    try:
        r = run(pool, stdio(prog, [""], ["blocked\nblocked"]))
    finally:
        srv.close()
    assert r["status"] == "passed", r


# ----------------------------------------------------------------------------- crashes and recursion
def test_infinite_recursion(pool):
    r = run(pool, call("def f(n):\n    return f(n + 1)\n", "f", [[0]], [0]))
    assert r["status"] == "failed" and "RecursionError" in r["tests"][0]["error"]
    assert trace(pool, "def f(n):\n    return f(n + 1)\nf(0)\n")["status"] == "exception"


def test_segfault_from_setrecursionlimit_and_deep_nesting(pool):
    prog = "import sys, json\nsys.setrecursionlimit(10 ** 8)\njson.loads('[' * 10 ** 6 + ']' * 10 ** 6)\n"
    r = run(pool, stdio(prog, [""], [""], timeout_s=5))
    assert r["status"] == "crashed"
    assert trace(pool, prog)["status"] == "crashed"


def test_syntax_error_and_null_bytes(pool):
    r = run(pool, stdio("def f(:\n    pass\n", ["", ""], ["", ""]))
    assert r["status"] == "syntax_error" and r["line"] == 1
    assert [t["status"] for t in r["tests"]] == ["syntax_error", "syntax_error"]
    assert run(pool, call("x = 1\x00\n", "f", [[]], [1]))["status"] == "syntax_error"
    assert trace(pool, "x = = 1\n")["status"] == "syntax_error"


# ----------------------------------------------------------------------------- hostile values
def test_deep_and_cyclic_returns(pool):
    deep = "def f():\n    x = []\n    for _ in range(10 ** 5):\n        x = [x]\n    return x\n"
    r = run(pool, call(deep, "f", [[]], [[]]))
    assert r["status"] == "failed" and "too deeply" in r["tests"][0]["error"]
    cyc = "def f():\n    a = [1]\n    a.append(a)\n    return a\n"
    r = run(pool, call(cyc, "f", [[]], [[1, []]]))
    assert r["status"] == "failed" and "cyclic" in r["tests"][0]["error"]
    r = trace(pool, "x = []\nfor _ in range(10 ** 5):\n    x = [x]\na = [1]\na.append(a)\n")
    assert r["status"] == "ok" and {"x", "a"} <= set(r["variables"])


HOSTILE_CLASS = ("class Evil:\n"
                 "    def __repr__(self):\n        while True:\n            pass\n"
                 "    def __eq__(self, other):\n        raise RuntimeError('eq')\n"
                 "    def __hash__(self):\n        while True:\n            pass\n"
                 "    def __str__(self):\n        raise RuntimeError('str')\n")


def test_objects_with_hostile_dunders(pool):
    r = run(pool, call(HOSTILE_CLASS + "def f():\n    return Evil()\n", "f", [[]], [1]))
    assert r["status"] == "failed" and "Evil" in r["tests"][0]["error"]
    r = run(pool, call(HOSTILE_CLASS + "def f():\n    return [1, {'k': Evil()}]\n", "f", [[]], [[1, {"k": 1}]]))
    assert r["status"] == "failed"
    r = run(pool, asserts(HOSTILE_CLASS + "def f():\n    return Evil()\n",
                          "def check(candidate):\n    assert candidate() == 1\n", "f"))
    assert r["status"] == "failed"
    r = run(pool, call(HOSTILE_CLASS + "def f():\n    raise ValueError(Evil())\n", "f", [[]], [1]))
    assert r["status"] == "failed" and r["tests"][0]["error"] == "ValueError"
    r = trace(pool, HOSTILE_CLASS + "e = Evil()\ns = {1, 2}\n")
    assert r["status"] == "ok" and "e" in r["variables"]


def test_huge_ints_nan_and_negative_zero(pool):
    r = run(pool, call("def f():\n    return 10 ** 100000\n", "f", [[]], [10 ** 100000]))
    assert r["status"] == "passed"
    r = run(pool, call("def f():\n    return 10 ** 100000 + 1\n", "f", [[]], [10 ** 100000]))
    assert r["status"] == "failed"
    r = run(pool, call("def f():\n    return [float('nan'), -0.0, float('inf')]\n", "f", [[]],
                       [[math.nan, 0.0, math.inf]]))
    assert r["status"] == "passed"
    r = run(pool, stdio("print(10 ** 100000)\n", [""], [""]))  # CPython's own digit limit still applies
    assert r["status"] == "failed" and "ValueError" in r["tests"][0]["error"]
    r = trace(pool, "big = 10 ** 100000\nn = float('nan')\nz = -0.0\n")
    assert r["status"] == "ok" and r["variables"]["z"]["repr"] == "-0.0"


def test_lone_surrogates_and_nul_bytes(pool):
    r = run(pool, call("def f():\n    return '\\ud800a\\x00b'\n", "f", [[]], ["\ud800a\x00b"]))
    assert r["status"] == "passed"
    r = run(pool, stdio("print('a\\x00b')\nprint('\\ud800')\n", [""], ["a\x00b\n\\ud800"]))
    assert r["status"] == "passed", r
    r = trace(pool, "s = '\\ud800\\x00'\nprint(s)\n")
    assert r["status"] == "ok" and "s" in r["variables"]


# ----------------------------------------------------------------------------- forged verdicts
def test_printed_or_injected_verdicts_cannot_pass(pool):
    fake = ('import os\n'
            'print(\'{"k": "end"}\\n{"passed": true, "status": "passed"}\')\n'
            'for fd in range(3, 10):\n'
            '    try:\n'
            '        os.write(fd, b\'{"n": "0", "k": "case", "i": 0, "s": "ok", "v": 2}\\n{"k": "end"}\\n\')\n'
            '    except OSError:\n'
            '        pass\n'
            'def f():\n    return 1\n')
    r = run(pool, call(fake, "f", [[]], [2]))
    assert r["status"] == "failed" and not r["passed"]
    r = run(pool, stdio(fake + "print('PASSED')\n", [""], ["PASSED"]))
    assert r["status"] == "failed"
    r = run(pool, asserts(fake + "import os\nos._exit(0)\n", "def check(c):\n    assert c() == 2\n", "f"))
    assert r["status"] in ("failed", "exited_early") and not r["passed"]
    r = run(pool, asserts(fake, "def check(c):\n    assert c() == 2\n", "f"))
    assert r["status"] == "failed"


def test_closing_the_verdict_channel_fails(pool):
    prog = "import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\ndef f():\n    return 1\n"
    r = run(pool, call(prog, "f", [[]], [1]))
    assert r["status"] == "exited_early"


# ----------------------------------------------------------------------------- tracing specifics
def test_nondeterministic_set_order_is_flagged(pool):
    prog = "s = set(['apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape', 'kiwi'])\norder = list(s)\nprint(order)\n"
    r = pool.trace([{"program": prog, "check_determinism": True},
                    {"program": "x = sorted({3, 1, 2})\nprint(x)\n", "check_determinism": True}])
    assert r[0]["status"] == "ok" and r[0]["nondeterministic"] is True
    assert r[1]["status"] == "ok" and r[1]["nondeterministic"] is False


def test_user_settrace_none(pool):
    r = trace(pool, "import sys\na = 1\nsys.settrace(None)\nb = 2\nprint(a + b)\n")
    assert r["status"] == "ok" and r["tracer_disabled"] is True and r["stdout"] == "3\n"
    assert run(pool, stdio("import sys\nsys.settrace(None)\nprint(3)\n", [""], ["3"]))["status"] == "passed"


def test_ten_megabyte_source(pool):
    prog = "# " + "x" * (10 << 20) + "\ndef f(a):\n    return a * 2\n"
    r = run(pool, call(prog, "f", [[21]], [42], timeout_s=20), budget_s=30)
    assert r["status"] == "passed"
    r = pool.trace([{"program": prog + "y = f(2)\n", "timeout_s": 20}])[0]
    assert r["status"] == "ok" and r["variables"]["y"]["repr"] == "4"


# ----------------------------------------------------------------------------- soak
@pytest.mark.slow
def test_soak_ten_thousand_mixed_jobs(tmp_path):
    from tracer.pool import TracerPool

    kinds = [
        (call("def f(x):\n    return x * 2\n", "f", [[1], [2]], [2, 4]), "passed"),
        (call("def f(x):\n    return x\n", "f", [[1], [2]], [1, 3]), "failed"),
        (asserts("def f(x):\n    return -x\n", "def check(c):\n    assert c(1) == -1\n", "f"), "passed"),
        (asserts("def f(x):\n    return 1 / 0\n", "def check(c):\n    assert c(1) == -1\n", "f"), "failed"),
        (stdio("print(input()[::-1])\n", ["abc\n"], ["cba"]), "passed"),
        (stdio("def f(:\n", [""], [""]), "syntax_error"),
        (call("import sys\ndef f(x):\n    sys.exit(0)\n", "f", [[1]], [1]), "exited_early"),
        (call("import os\nos.write(3, b'junk\\n')\ndef f():\n    return 1\n", "f", [[]], [1]), "failed"),
    ]
    rare = [
        (stdio("while True:\n    pass\n", [""], [""], timeout_s=0.3), "timeout"),
        (stdio("while True:\n    print('x' * 4096)\n", [""], [""]), "output_limit"),
        (call("import os, time\ndef f():\n    if os.fork() == 0:\n        os.setsid()\n"
              "        time.sleep(30)\n    return 1\n", "f", [[]], [1]), "passed"),
    ]
    reqs, want = [], []
    for i in range(10_000):
        req, status = rare[(i // 500) % len(rare)] if i % 500 == 499 else kinds[i % len(kinds)]
        reqs.append({**req, "id": f"s{i}"})
        want.append(status)
    fds_before = set(os.listdir("/proc/self/fd"))
    tmp_before = {p for p in os.listdir("/tmp") if p.startswith("tracer-")}
    t = time.monotonic()
    with TracerPool(workers=4) as p:
        got = []
        for k in range(0, len(reqs), 1000):
            got += p.run_tests(reqs[k:k + 1000])
        assert leftovers(p) == 0
        zygotes = [z.proc for w in p._workers for z in w.zygotes.values()]
    elapsed = time.monotonic() - t
    assert [r["id"] for r in got] == [r["id"] for r in reqs]
    bad = [(r["id"], r["status"], w) for r, w in zip(got, want) if r["status"] != w]
    assert not bad, bad[:10]
    assert all(z.poll() is not None for z in zygotes)
    assert len(os.listdir("/proc/self/fd")) <= len(fds_before)
    assert {q for q in os.listdir("/tmp") if q.startswith("tracer-")} == tmp_before
    print(f"soak: {len(reqs)} jobs in {elapsed:.1f}s ({len(reqs) / elapsed:.0f}/s)")
