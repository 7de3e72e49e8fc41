"""Held-out code reasoning and test-output accuracy, with a scripted 'policy'."""

from __future__ import annotations

import json

import pytest

from coderl_jax.alignment.reasoning import reasoning_accuracy, reference_records
from coderl_jax.data.records import Problem


def problem(pid, solution, inp, out):
    return Problem(id=pid, prompt=f"Problem {pid}: read n and print something.",
                   tests={"style": "stdio", "inputs": [inp, "9\n"], "outputs": [out, "0\n"]},
                   metadata={"solution": solution})


PROBLEMS = [
    problem("double", "def solve(n):\n    r = n * 2\n    return r\nprint(solve(int(input())))", "4\n", "8\n"),
    problem("square", "def solve(n):\n    s = n * n\n    return s\nprint(solve(int(input())))", "3\n", "9\n"),
    problem("crash", "print(1 // 0)", "1\n", "0\n"),  # a reference that fails is left out
    Problem(id="nosol", prompt="x", tests={"style": "stdio", "inputs": ["1\n"], "outputs": ["1\n"]}),
]


def test_reference_records_and_accuracies(pool):
    pairs = reference_records(PROBLEMS, pool, k=2)
    assert [p.id for p, _ in pairs] == ["double", "square"]
    assert pairs[0][1].output == "8\n" and pairs[0][1].target_names == ["solve.n", "solve.r"]

    def generate(texts):
        out = []
        for t in texts:
            if "Program:" in t:  # code reasoning: right for "double" (all items), output only for "square"
                if "n * 2" in t:
                    out.append(json.dumps({"final_output": "8", "variables": {"solve.n": 4, "solve.r": 8}}))
                else:
                    out.append("thinking\n" + json.dumps({"final_output": "9", "variables": {"solve.n": 5}}))
            else:  # test output: right for "square" only
                out.append(json.dumps({"final_output": "9" if "square" in t else "7", "variables": {}}))
        return out

    acc = reasoning_accuracy(generate, pairs)
    per_problem = acc.pop("per_problem")
    # items: the output and each target; "square" gets its output right and neither value
    assert acc == pytest.approx({"code_reasoning": 1.0, "state_accuracy": 0.5, "item_accuracy": (1 + 1 / 3) / 2,
                                 "test_output": 0.5, "reasoning_problems": 2})
    assert per_problem["square"] == pytest.approx({"code_reasoning": 1.0, "state_accuracy": 0.0,
                                                   "item_accuracy": 1 / 3, "test_output": 1.0})
    assert per_problem["double"]["test_output"] == 0.0 and per_problem["double"]["item_accuracy"] == 1.0


def test_shortest_input_rule_for_records_and_test_outputs(pool):
    p = Problem(id="double", prompt="Problem double: read n and print 2n.",
                tests={"style": "stdio", "inputs": ["12\n", "3\n"], "outputs": ["24\n", "6\n"]},
                metadata={"solution": "n = int(input())\nr = n * 2\nprint(r)"})
    [(_, first)] = reference_records([p], pool, k=1)
    [(_, short)] = reference_records([p], pool, k=1, record_input="shortest")
    assert (first.stdin, first.output) == ("12\n", "24\n") and (short.stdin, short.output) == ("3\n", "6\n")
    asked = []

    def generate(texts):
        asked.extend(texts)
        return [json.dumps({"final_output": "6", "variables": {"r": 6}}) for _ in texts]

    acc = reasoning_accuracy(generate, [(p, short)], record_input="shortest")
    assert acc["code_reasoning"] == 1.0 and acc["test_output"] == 1.0  # "6" is right for the input 3
    assert "12" not in asked[1] and "3" in asked[1]
    assert reasoning_accuracy(generate, [(p, short)])["test_output"] == 0.0  # the first input's answer is 24
