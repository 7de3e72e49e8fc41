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
    assert counts == {"considered": 10, "harvested": 2, "no_code": 1, "unsupported_tests": 1, "call_style": 0,
                      "error": 1, "timeout": 1, "silent": 1, "nondeterministic": 1, "duplicate": 2, "long_output": 0,
                      "too_long": 0}
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


def official_targets(pool, code: str, k: int = 3) -> tuple[list[str], list]:
    records, counts = harvest(pool, [STDIO], [fence(code)], [0.0], k=k, targets="official", max_value_chars=0)
    assert counts["harvested"] == 1, counts
    [record] = records
    assert record.program == code  # the order line is traced, never shown
    return record.target_names, [t["json"] for t in record.targets]


def test_official_targets_on_traced_programs(pool):
    # n, a, b, c defined in this order; n reassigned last: official a, b, c; the last rule b, c, n
    code = "n = int(input())\na = 2\nb = [1, 2]\nc = 'x'\nn = n + 1\nprint(n)"
    assert official_targets(pool, code) == (["a", "b", "c"], [2, [1, 2], "x"])
    [last], _ = harvest(pool, [STDIO], [fence(code)], [0.0], k=3, targets="last")
    assert last.target_names == ["b", "c", "n"]
    # function locals are never seen: a `def main()` program has no official targets
    assert official_targets(pool, WRONG) == ([], [])
    # runtime first-definition order, not source order: `a` is first bound on the loop's second pass
    assert official_targets(pool, "for i in range(3):\n    if i > 0:\n        a = i\n    b = i\nprint(a, b)",
                            k=0)[0] == ["i", "b", "a"]
    # a global bound inside a function counts from the call; "_" names, Counters and objects are not
    # simple; a set is asked as a sorted list
    code = ("import collections\nx = 1\ndef f():\n    global g\n    g = 7\n_t = 3\ncnt = collections.Counter('ab')\n"
            "class P:\n    pass\np = P()\ns = {3, 1, 2}\nf()\nprint(x)")
    assert official_targets(pool, code, k=0) == (["x", "s", "g"], [1, [1, 2, 3], 7])


def test_harvest_calls_switch(pool):
    code = fence("def double(xs):\n    out = [x * 3 for x in xs]\n    return out")
    records, counts = harvest(pool, [CALL], [code], [0.0], harvest_calls=True)
    assert counts["call_style"] == 0 and records[0].call == "double([1, 2])"
    records, counts = harvest(pool, [CALL, STDIO], [code, fence(WRONG)], [0.0, 0.0], harvest_calls=False)
    assert counts["call_style"] == 1 and counts["harvested"] == 1 and records[0].source == "p_stdio"


def test_output_and_value_caps_make_records_easier(pool):
    from coderl_jax.alignment.probe import build_probe_records

    long_out = "n = int(input())\nxs = list(range(n * 3))\nk = n\nprint(xs)"  # prints 12 numbers
    short_out = "n = int(input())\nxs = list(range(n * 3))\nk = n\nprint(k)"
    both = [fence(long_out), fence(short_out)]
    records, counts = harvest(pool, [STDIO, STDIO], both, [0.0, 0.0], k=3)
    assert counts["long_output"] == 0 and len(records) == 2  # no cap: both kept, the list asked about
    assert "xs" in records[0].target_names
    records, counts = harvest(pool, [STDIO, STDIO], both, [0.0, 0.0], k=3, max_value_chars=8, max_output_chars=8)
    assert counts["long_output"] == 1 and counts["harvested"] == 1
    assert records[0].output == "4\n" and records[0].target_names == ["n", "k"]  # xs renders in 38 characters
    rows = [{"id": "long", "program": long_out, "stdin": "4\n"}, {"id": "short", "program": short_out, "stdin": "4\n"}]
    # the left-out first row is replaced by the next one, up to the limit
    assert [r.source for r in build_probe_records(rows, pool, k=3, targets="last", limit=1)] == ["long"]
    assert [r.source for r in build_probe_records(rows, pool, k=3, targets="last", max_output_chars=8,
                                                  limit=1)] == ["short"]


def test_task_and_probe_follow_the_config_switches(pool, byte_tok):
    from coderl_jax.alignment import AlignmentTask, alignment_prompt
    from coderl_jax.alignment.config import AlignmentConfig
    from coderl_jax.alignment.probe import build_probe_records

    encode = lambda texts: [byte_tok.encode(t, add_special_tokens=False) for t in texts]  # noqa: E731
    code = "n = int(input())\na = 2\nb = [1, 2]\nc = 'x'\nn = n + 1\nprint(n)"
    calls = fence("def double(xs):\n    return [x * 3 for x in xs]")
    paper = AlignmentConfig(mode="coderl", targets="official", harvest_calls=False, prompt="official",
                            max_value_chars=0, check_determinism=False)
    for cfg, names, call_style in ((paper, ["a", "b", "c"], 1.0),
                                   (AlignmentConfig(mode="coderl"), ["b", "c", "n"], 0.0)):
        task = AlignmentTask(cfg, byte_tok, prompts_per_step=2, group_size=2, seed=0, encode_prompts=encode,
                             max_prompt_tokens=4096)
        m = task.harvest(pool, [STDIO, CALL], [fence(code), calls], [0.0, 0.0], step=1)
        assert m["harvest/dropped_call_style"] == call_style
        record = task.buffer.pool()[0]
        assert record.target_names == names
        assert byte_tok.decode(task.prompt_ids([record])[0]) == alignment_prompt(record, cfg.prompt)
    probe = build_probe_records([{"id": "q", "program": code, "stdin": "4\n"}], pool, k=3, targets="official")
    assert probe[0].target_names == ["a", "b", "c"] and probe[0].program == code


def test_record_input_switch_picks_the_shortest_input(pool):
    from coderl_jax.data.records import record_input_index

    assert record_input_index(["1 2 3\n", "4\n", "5\n"], "first") == 0
    assert record_input_index(["1 2 3\n", "4\n", "5\n"], "shortest") == 1  # the first of equals
    assert record_input_index([[[1, 2, 3]], [[1]]], "shortest") == 1  # call arguments by their repr
    try:
        record_input_index(["1\n"], "longest")
    except ValueError as e:
        assert "record input rule" in str(e)
    else:
        raise AssertionError("an unknown rule must be refused")
    long_first = Problem(id="p_long", prompt="Read n, print the sum 1..n.",
                         tests={"style": "stdio", "inputs": ["12\n", "3\n"], "outputs": ["78\n", "6\n"]})
    [first], _ = harvest(pool, [long_first], [fence(WRONG)], [0.0], record_input="first")
    [short], _ = harvest(pool, [long_first], [fence(WRONG)], [0.0], record_input="shortest")
    assert (first.stdin, first.output) == ("12\n", "66\n") and (short.stdin, short.output) == ("3\n", "3\n")
    [call], _ = harvest(pool, [CALL], [fence("def double(xs):\n    return [x * 3 for x in xs]")], [0.0],
                        record_input="shortest")
    assert call.call == "double([3])" and call.output == "[9]\n"
