"""tracer.tracing: variable values at their last definition, run in this process (or a child)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tracer.compare import compare
from tracer.tracing import run_program_plain, trace_program

REPO = Path(__file__).resolve().parents[2]


def trace(src, stdin="", **kw):
    result = trace_program(textwrap.dedent(src), stdin, **kw)
    json.dumps(result)  # the whole result is JSON-safe
    return result


def reprs(result):
    return {name: v["repr"] for name, v in result["variables"].items()}


def test_module_level_program(capsys):
    r = trace("""
        import math
        from math import pi
        n = int(input())
        xs = [i * i for i in range(n)]
        total = sum(xs)
        half = total / 2
        __hidden__ = 1
        def helper(): pass
        class K: pass
        print(total)
    """, "4\n")
    assert capsys.readouterr().out == "14\n"
    assert r["status"] == "ok" and r["exception"] is None and not r["tracer_disabled"]
    assert reprs(r) == {"n": "4", "xs": "[0, 1, 4, 9]", "total": "14", "half": "7.0"}
    assert [v["line"] for v in r["variables"].values()] == [4, 5, 6, 7]
    assert [v["order"] for v in r["variables"].values()] == [0, 1, 2, 3]
    assert compare(r["variables"]["xs"]["repr"], r["variables"]["xs"]["value"])


def test_main_function_locals_are_qualified():
    r = trace("""
        def main():
            data = input().split()
            count = 0
            for w in data:
                if len(w) > 1:
                    count += 1
            print(count)
        main()
    """, "a bb ccc\n")
    v = r["variables"]
    assert v["main.count"]["repr"] == "2" and v["main.count"]["line"] == 7
    assert v["main.data"]["repr"] == "['a', 'bb', 'ccc']" and v["main.w"]["repr"] == "'ccc'"
    assert v["main.w"]["order"] < v["main.count"]["order"]  # the loop's last binding of w came before the count


def test_recursion_reports_last_completed_call():
    r = trace("""
        def fact(n):
            sub = fact(n - 1) if n > 1 else 1
            result = n * sub
            return result
        out = fact(6)
    """)
    v = reprs(r)
    assert v["fact.n"] == "6" and v["fact.result"] == "720" and v["out"] == "720"  # outermost call finishes last


def test_several_calls_keep_the_last_one_only():
    r = trace("""
        def f(x):
            if x:
                only_first = 1
            y = x * 10
            return y
        f(1)
        f(0)
    """)
    assert reprs(r) == {"f.x": "0", "f.y": "0"}  # only_first was not assigned in the last completed call


def test_class_solution_method_locals():
    r = trace("""
        class Solution:
            MOD = 10**9 + 7
            def twoSum(self, nums, target):
                seen = {}
                for i, v in enumerate(nums):
                    if target - v in seen:
                        return [seen[target - v], i]
                    seen[v] = i
        print(Solution().twoSum([3, 2, 4], 6))
    """)
    v = reprs(r)
    assert v["Solution.MOD"] == "1000000007"
    assert v["Solution.twoSum.seen"] == "{3: 0, 2: 1}" and v["Solution.twoSum.i"] == "2"
    assert v["Solution.twoSum.nums"] == "[3, 2, 4]" and v["Solution.twoSum.self"] == "<__main__.Solution object>"


def test_nested_functions_and_globals():
    r = trace("""
        calls = 0
        def outer():
            acc = []
            def inner(k):
                global calls
                calls += 1
                x = k * 2
                acc.append(x)
            for k in range(3):
                inner(k)
            return acc
        res = outer()
    """)
    v = reprs(r)
    assert v["outer.inner.x"] == "4" and v["outer.acc"] == "[0, 2, 4]" and v["calls"] == "3"
    assert r["variables"]["calls"]["line"] == 7  # last assigned inside inner via `global`


def test_values_are_snapshots_not_live_references():
    r = trace("""
        def build():
            items = [1]
            return items
        got = build()
        got.append(2)
    """)
    assert reprs(r)["build.items"] == "[1]" and reprs(r)["got"] == "[1, 2]"


def test_loop_carried_variables():
    r = trace("""
        a, b = 0, 1
        for _ in range(10):
            a, b = b, a + b
        big = a ** 50
    """)
    v = r["variables"]
    assert v["a"]["repr"] == "55" and v["b"]["repr"] == "89" and v["a"]["line"] == 4
    assert v["big"]["repr"] == str(55 ** 50) and v["big"]["order"] == max(x["order"] for x in v.values())


def test_exception_inside_function():
    r = trace("""
        def f(xs):
            total = 0
            for x in xs:
                total += 10 // x
            return total
        before = 1
        f([1, 2, 0, 4])
        after = 2
    """)
    assert r["status"] == "exception"
    assert r["exception"] == {"type": "ZeroDivisionError", "message": "integer division or modulo by zero", "line": 5}
    v = reprs(r)
    assert v["f.total"] == "15" and v["f.x"] == "0" and v["before"] == "1" and "after" not in v


def test_stdin_via_input_read_and_buffer():
    r = trace("""
        import sys
        first = input()
        second = sys.stdin.readline().strip()
        rest = sys.stdin.read()
    """, "one\ntwo\nthree\nfour\n")
    assert reprs(r) == {"first": "'one'", "second": "'two'", "rest": "'three\\nfour\\n'"}
    r = trace("import sys\nraw = sys.stdin.buffer.readline()\nnums = list(map(int, sys.stdin.buffer.read().split()))\n",
              "head\n1 2\n3\n")
    assert reprs(r) == {"raw": "b'head\\n'", "nums": "[1, 2, 3]"}
    r = trace("import sys\nall_ = sys.stdin.read()\n", "x y\n")
    assert reprs(r) == {"all_": "'x y\\n'"}
    assert trace("x = input()\n")["exception"]["type"] == "EOFError"


def test_user_settrace_none_is_detected_and_partial_result_kept():
    r = trace("""
        import sys
        x = 1
        def f():
            y = 2
            return y
        f()
        sys.settrace(None)
        z = 3
        def g():
            w = 4
            return w
        g()
    """)
    assert r["status"] == "ok" and r["tracer_disabled"]
    v = reprs(r)
    assert v["x"] == "1" and v["f.y"] == "2" and v["z"] == "3"  # z: module globals are read at the end anyway
    assert "g.w" not in v  # calls after the switch-off are not seen


def test_callers_trace_function_is_restored():
    calls = []

    def outer_tracer(frame, event, arg):
        calls.append(event)

    sys.settrace(outer_tracer)
    try:
        trace("x = 1\n")
        assert sys.gettrace() is outer_tracer
    finally:
        sys.settrace(None)


def test_threading_settrace_does_not_break_tracing():
    r = trace("import threading\nthreading.settrace(None)\nx = 5\n")
    assert reprs(r) == {"x": "5"} and not r["tracer_disabled"]


def test_infinite_recursion_is_an_exception_with_variables():
    r = trace("""
        level = 0
        def down(n):
            depth = n
            return down(n + 1)
        down(0)
    """)
    assert r["status"] == "exception" and r["exception"]["type"] == "RecursionError"
    assert reprs(r)["level"] == "0" and reprs(r)["down.depth"] == "0"  # outermost frame, from the traceback


def test_system_exit():
    r = trace("import sys\nx = 1\nsys.exit(0)\ny = 2\n")
    assert r["status"] == "ok" and r["exit_code"] == 0 and reprs(r) == {"x": "1"}
    r = trace("import sys\nx = 1\nsys.exit(3)\n")
    assert r["status"] == "exception" and r["exit_code"] == 3 and r["exception"]["type"] == "SystemExit"
    assert r["exception"]["line"] == 3
    r = trace("raise SystemExit('bye')\n")
    assert r["status"] == "exception" and r["exit_code"] == 1


def test_syntax_errors():
    r = trace("x = (\n")
    assert r["status"] == "syntax_error" and r["exception"]["line"] == 1 and r["variables"] == {}
    assert trace("x = 1\x00\n")["status"] == "syntax_error"
    assert trace("return 5\n")["status"] == "syntax_error"


def test_hostile_objects_are_not_touched():
    r = trace("""
        class Bad:
            def __repr__(self): raise RuntimeError('repr')
            def __str__(self): raise RuntimeError('str')
            def __eq__(self, o): raise RuntimeError('eq')
            def __hash__(self): raise RuntimeError('hash')
            def __len__(self):
                while True:
                    pass
            def __iter__(self):
                while True:
                    yield 1
        class BadExc(Exception):
            def __str__(self):
                while True:
                    pass
        b = Bad()
        box = [b, {'k': b}]
        raise BadExc(b)
    """)
    assert r["status"] == "exception" and r["exception"]["type"] == "BadExc"
    assert r["exception"]["message"] == "<__main__.Bad object>"
    assert reprs(r) == {"b": "<__main__.Bad object>", "box": "[<__main__.Bad object>, {'k': <__main__.Bad object>}]"}


def test_odd_values():
    r = trace("""
        a = [1]
        a.append(a)
        big = 10 ** 100000
        n, z, inf = float('nan'), -0.0, float('-inf')
        s = 'a\\ud800\\x00b'
        deep = []
        for _ in range(100000):
            deep = [deep]
        st = {'pear', 'apple', 'fig'}
    """)
    v = reprs(r)
    assert v["a"] == "[1, [...]]" and v["big"].startswith("<int: 100001 digits")
    assert (v["n"], v["z"], v["inf"]) == ("float('nan')", "-0.0", "-float('inf')")
    assert v["s"] == "'a\\ud800\\x00b'" and v["st"] == "{'apple', 'fig', 'pear'}"
    assert v["deep"].startswith("[[[[") and r["variables"]["deep"]["value"]["len"] == 1


def test_targets_restrict_recorded_names():
    r = trace("def main():\n    a = 1\n    b = 2\nx = 3\nmain()\n", targets=["main.b", "x"])
    assert reprs(r) == {"x": "3", "main.b": "2"}


def test_generators_and_comprehensions():
    r = trace("""
        def gen(n):
            for i in range(n):
                sq = i * i
                yield sq
        out = [v + 1 for v in gen(4)]
        m = max(w for w in out if (last := w) > 0)
    """)
    v = reprs(r)
    assert v["gen.sq"] == "9" and v["gen.i"] == "3" and v["out"] == "[1, 2, 5, 10]"
    assert v["m"] == "10" and v["last"] == "10" and "v" not in v and "w" not in v


def test_per_line_events_and_cap():
    src = """
        total = 0
        items = []
        for i in range(5):
            total += i
            items.append(i)
    """
    r = trace(src, per_line=True)
    events = r["events"]
    assert not r["events_truncated"]
    by_line = {}
    for e in events:
        by_line.setdefault(e["line"], []).append(e)
    assert [e["hit"] for e in by_line[5]] == [1, 2, 3, 4, 5]
    assert [e["changed"]["total"]["v"] for e in by_line[5]] == ["0", "1", "3", "6", "10"]
    assert [e["changed"]["items"]["len"] for e in by_line[6]] == [1, 2, 3, 4, 5]  # in-place mutation seen
    assert by_line[4][-1]["changed"] == {}  # the loop's final header visit binds nothing
    capped = trace(src, per_line=True, max_events=4)
    assert len(capped["events"]) == 4 and capped["events_truncated"]
    assert capped["variables"] == r["variables"]
    assert trace(src)["events"] == []


def test_per_line_function_scope_names():
    r = trace("def main():\n    c = 0\n    c += 2\nmain()\n", per_line=True)
    changed = [e["changed"] for e in r["events"] if e["scope"] == "main"]
    assert changed == [{"main.c": {"t": "int", "v": "0"}}, {"main.c": {"t": "int", "v": "2"}}]


def test_run_program_plain(capsys):
    plain = run_program_plain("print(input()[::-1])\n", "abc\n")
    assert plain == {"status": "ok", "exception": None, "exit_code": None}
    assert capsys.readouterr().out == "cba\n"
    assert run_program_plain("1/0\n")["exception"]["type"] == "ZeroDivisionError"


def test_trace_in_child_process_restores_nothing_needed():
    """A fresh interpreter, as the sandbox child runs it; stdout is the program's own."""
    code = ("import json, sys\nsys.path.insert(0, %r)\nfrom tracer.tracing import trace_program\n"
            "r = trace_program('x = int(input())\\nprint(x * 2)\\n', '21\\n')\n"
            "sys.stderr.write(json.dumps(r))\n") % str(REPO)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "42\n"
    assert json.loads(proc.stderr)["variables"]["x"]["repr"] == "21"


def test_many_calls_stay_fast():
    import time
    start = time.perf_counter()
    r = trace("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nx = fib(16)\n")
    assert reprs(r) == {"fib.n": "16", "x": "987"}
    assert time.perf_counter() - start < 5.0
