"""Harvest on crafted rollouts: failing, passing, crashing, silent, duplicate, timing-out programs."""

from __future__ import annotations

import numpy as np

from coderl_jax.alignment import harvest
from coderl_jax.alignment.harvest import runnable
from coderl_jax.data.records import Problem

STDIO = Problem(id="p_stdio", prompt="Read n, print the sum 1..n.",
                tests={"style": "stdio", "inputs": ["4\n", "5\n"], "outputs": ["10\n", "15\n"]})
CALL = Problem(id="p_call", prompt="Return the doubled list.",
               tests={"style": "call", "fn_name": "double", "inputs": [[[1, 2]], [[3]]], "outputs": [[2, 4], [6]]})
ASSERT = Problem(id="p_assert", prompt="def f(): ...", tests={"style": "assert", "test": "assert f() == 1",
                                                              "entry_point": "f"})


def fence(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


WRONG = "def main():\n    n = int(input())\n    total = 0\n    for i in range(n):\n        total += i\n    print(total)\nmain()"
WRONG_TOO = "n = int(input())\nacc = 0\nfor i in range(n):\n    acc = acc + i\nprint(acc)"  # same output as WRONG
RIGHT = "n = int(input())\nprint(n * (n + 1) // 2)"


def test_harvest_keeps_failed_programs_with_their_own_output(pool):
    rollouts = [
        (STDIO, fence(WRONG), 0.0),            # kept: prints 6 (wrong), locals of main traced
        (STDIO, fence(RIGHT), 1.0),            # passed: never considered
        (STDIO, fence("n = int(input())\nprint(1 // (n - 4))"), 0.0),  # ZeroDivisionError on the first input
        (STDIO, fence("n = int(input())\nm = n + 1"), 0.0),             # silent
        (STDIO, fence(WRONG), 0.0),            # the same program again: duplicate before tracing
        (STDIO, fence(WRONG_TOO), 0.0),        # another program, same (input, output): duplicate
        (STDIO, "I don't know.", 0.0),         # no code
        (STDIO, fence("while True:\n    pass"), 0.0),  # timeout
        (STDIO, fence("import random\nprint(random.random())"), 0.0),  # nondeterministic
        (ASSERT, fence("def f():\n    return 2"), 0.0),  # assert tests: nothing to run it on
        (CALL, fence("def double(xs):\n    out = [x * 3 for x in xs]\n    k = len(out)\n    return out"), 0.0),
    ]
    problems, responses, rewards = zip(*rollouts)
    records, counts = harvest(pool, problems, responses, rewards, k=3, targets="last", step=7, timeout_s=1.0)
    assert counts == {"considered": 10, "harvested": 2, "no_code": 1, "unsupported_tests": 1, "error": 1,
                      "timeout": 1, "silent": 1, "nondeterministic": 1, "duplicate": 2, "too_long": 0}
    stdio, call = records
    assert stdio.output == "6\n" and stdio.stdin == "4\n" and stdio.source == "p_stdio" and stdio.step == 7
    # the last three defined variables, function locals included (the official code sees none here)
    assert stdio.target_names == ["main.n", "main.i", "main.total"]
    assert [t["json"] for t in stdio.targets] == [4, 3, 6]
    assert call.call == "double([1, 2])" and call.program.endswith("print(double([1, 2]))\n")
    assert call.output == "[3, 6]\n"
    assert call.target_names == ["double.xs", "double.out", "double.k"]
    assert [t["json"] for t in call.targets] == [[1, 2], [3, 6], 2]


def test_prompt_limit_and_target_strategies(pool):
    records, counts = harvest(pool, [STDIO], [fence(WRONG)], [0.0], k=3, prompt_fits=lambda r: False)
    assert records == [] and counts["too_long"] == 1
    records, _ = harvest(pool, [STDIO], [fence(WRONG)], [0.0], k=0, targets="all")
    assert records[0].target_names == ["main.n", "main.i", "main.total"]
    records, _ = harvest(pool, [STDIO], [fence(WRONG)], [0.0], k=1, targets="loop", rng=np.random.default_rng(0))
    assert len(records[0].targets) == 1


def test_runnable_builds_the_call_driver():
    prog, stdin, call = runnable("class Solution:\n    def f(self, a, b):\n        return a + b",
                                 {"style": "call", "fn_name": "f", "inputs": [{"a": 1, "b": "x"}], "outputs": [0]})
    assert call == "Solution().f(a=1, b='x')" and prog.endswith("print(Solution().f(a=1, b='x'))\n") and stdin == ""
    assert runnable("x", {"style": "stdio", "inputs": [], "outputs": []}) is None
