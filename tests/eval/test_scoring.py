"""Scoring: HumanEval references pass and wrong programs fail in the sandbox; predictions are parsed,
compared and never executed."""

from __future__ import annotations

import pytest

from coderl_jax.eval.answers import extract_code, predicted_arguments, predicted_output_text
from coderl_jax.eval.benchmarks import load_benchmark
from coderl_jax.eval.scoring import build_program, score_responses
from eval_samples import LCB_CODEGEN_SOLUTIONS


class NoTracer:
    """Stands in for the tracer where nothing may run."""

    def run_tests(self, requests):
        raise AssertionError(f"run_tests called with {len(requests)} requests")

    def trace(self, requests):
        raise AssertionError(f"trace called with {len(requests)} requests: {[r['program'] for r in requests]}")


class Recording:
    def __init__(self, pool):
        self.pool, self.traced = pool, []

    def run_tests(self, requests):
        return self.pool.run_tests(requests)

    def trace(self, requests):
        self.traced += [r["program"] for r in requests]
        return self.pool.trace(requests)


def _passed(results):
    return [[r["passed"] for r in group] for group in results]


def test_humaneval_references_all_pass(pool):
    items = load_benchmark("humaneval")
    res = score_responses(items, [[it.canonical] for it in items], pool, timeout_s=20)
    failed = [(it.id, r[0]["status"], r[0].get("error")) for it, r in zip(items, res) if not r[0]["passed"]]
    assert len(items) == 164 and not failed, failed[:5]


def test_humaneval_wrong_programs_fail(pool):
    items = load_benchmark("humaneval")[::8]  # 21 problems
    canonical_bodies = [it.canonical[len("```python\n") + len(it.raw_prompt):] for it in items]
    responses = [[
        "    return None\n",  # raw mode below: prompt + a body that returns None
        it.raw_prompt,  # the prompt alone: the docstring is the whole body
    ] for it in items]
    res = score_responses(items, responses, pool, raw=True, timeout_s=20)
    assert not any(r["passed"] for group in res for r in group)
    chat = [[f"```python\n{it.raw_prompt}```", "I cannot do that.", f"```python\n{body}```"]
            for it, body in zip(items, canonical_bodies)]
    res = score_responses(items, chat, pool, timeout_s=20)
    assert _passed(res) == [[False, False, True]] * len(items)  # a bare body completes the prompt
    assert {r[0]["status"] for r in res} == {"failed"} and {r[1]["status"] for r in res} <= {"syntax_error", "failed"}


def test_program_building_rules():
    he = load_benchmark("humaneval", limit=1)[0]
    full = "```python\nfrom typing import List\ndef has_close_elements(numbers, threshold):\n    return 1\n```"
    assert build_program(he, full, raw=False) == he.chat_prefix + full[10:-4]
    assert build_program(he, "    return 1\n", raw=True) == he.raw_prompt + "    return 1\n"
    assert build_program(he, "    return 1\ndef extra():\n    pass", raw=True) == he.raw_prompt + "    return 1"
    assert build_program(he, "  \n", raw=False) is None
    assert extract_code("a\n```py\nx = 1\n```\nthen\n```python\ny = 2\n```") == "y = 2"
    assert extract_code("```python\nunclosed = 1\n") == "unclosed = 1" and extract_code("no code") is None


def test_codegen_styles_through_the_sandbox(pool, sample_files):
    lcb = load_benchmark("lcb_codegen", sample_files["lcb_codegen"])
    wrong = "```python\nprint(0)\n```"
    res = score_responses(lcb, [[LCB_CODEGEN_SOLUTIONS[it.id], wrong] for it in lcb], pool)
    assert _passed(res) == [[True, False], [True, False]]
    lc = load_benchmark("leetcode", sample_files["leetcode"])[0]
    bare_method = "```python\ndef addTwo(self, a: int, b: int) -> int:\n    return a + b\n```"  # wrapped in Solution
    exits = "```python\nimport sys\nsys.exit(0)\nclass Solution:\n    pass\n```"
    res = score_responses([lc], [[bare_method, exits]], pool)
    assert _passed(res) == [[True, False]] and res[0][1]["status"] == "exited_early"
    mbpp = load_benchmark("mbpp", sample_files["mbpp"])
    res = score_responses(mbpp, [["```python\ndef larger(a, b):\n    return max(a, b)\n```"],
                                 ["def count_vowels(s):\n    return 3\n"]], pool)
    assert _passed(res) == [[True], [False]]


HOSTILE_VALUES = [
    "x or True", "0 or True", "__import__('os').system('touch {marker}')", "(lambda: 1)()",
    "open('{marker}', 'w').write('x')", "[1] * 10**9", "10**100000", "eval('1')", "exec('import os')",
    "globals()", "f([2, 1, 2])", "...", "",
]


def test_hostile_output_predictions_score_zero_and_run_nothing(tmp_path, sample_files):
    items = load_benchmark("cruxeval_o", sample_files["cruxeval"])
    marker = tmp_path / "pwned"
    responses = []
    for it in items:
        call = it.reference["call"]
        group = [f"[ANSWER]\nassert {call} == {v.format(marker=marker)}\n[/ANSWER]" for v in HOSTILE_VALUES]
        group += [v.format(marker=marker) for v in HOSTILE_VALUES]
        group.append(f"[ANSWER]\nassert {call} == 1; __import__('os').system('touch {marker}')\n[/ANSWER]")
        responses.append(group)
    res = score_responses(items, responses, NoTracer())  # any execution request would raise
    assert not any(r["passed"] for group in res for r in group)
    assert not marker.exists()
    assert {r["status"] for group in res for r in group} <= {"no_answer", "wrong_answer"}


def test_output_prediction_answers_and_modes(sample_files):
    items = load_benchmark("cruxeval_o", sample_files["cruxeval"])
    good = [
        "[THOUGHT]\ncounting...\n[/THOUGHT]\n[ANSWER]\nassert f([2, 1, 2]) == [(2, 2), (2, 2), (1, 1)]\n[/ANSWER]",
        "[ANSWER]\n[(2, 2), (2, 2), (1, 1)]\n[/ANSWER]",  # the bare value
        "[ANSWER]\nassert f([2, 1, 2]) == [\n    (2, 2),\n    (2, 2),\n    (1, 1),\n]\n[/ANSWER]",  # over several lines
        "First [ANSWER]assert f([2, 1, 2]) == 0[/ANSWER], no wait: [ANSWER]assert f([2, 1, 2]) == [(2, 2), (2, 2), "
        "(1, 1)][/ANSWER]",  # the last answer counts
    ]
    bad = ["[ANSWER]\nassert f([2, 1, 2]) == [[2, 2], [2, 2], [1, 1]]\n[/ANSWER]",  # lists are not tuples under ==
           "[ANSWER]\nassert f([2, 1, 2]) == [(2, 2), (1, 1)]\n[/ANSWER]", "The answer is obvious."]
    res = score_responses(items[:1], [good + bad], NoTracer())
    assert _passed(res) == [[True] * len(good) + [False] * len(bad)]
    assert res[0][0]["answer"] == "[(2, 2), (2, 2), (1, 1)]" and res[0][-1]["status"] == "no_answer"
    exec_items = load_benchmark("lcb_execution", sample_files["lcb_execution"])
    one = ["[ANSWER]assert countPairs(nums = [1, 2, 3], target = 4) == 1.0[/ANSWER]", "[ANSWER]True[/ANSWER]"]
    assert _passed(score_responses(exec_items[:1], [one], NoTracer(), mode="python")) == [[True, True]]
    assert _passed(score_responses(exec_items[:1], [one], NoTracer(), mode="strict")) == [[False, False]]
    assert _passed(score_responses(exec_items[:1], [one], NoTracer(), mode="lenient")) == [[True, True]]
    raw = score_responses(exec_items[1:], [["'Ab'\n[/ANSWER]", "'ab'"]], NoTracer(), raw=True)
    assert _passed(raw) == [[True, False]]


def test_test_output_prediction(sample_files):
    items = load_benchmark("lcb_test_output", sample_files["lcb_test_output"])
    res = score_responses(items, [
        ["```python\nassert countPairs([1, 2, 3], 4) == 1\n```",
         "Let me think.\nThe pairs are (1, 2).\nassert countPairs([1, 2, 3], 4) == 1",  # no fence: last assert line
         "```python\nassert countPairs([1, 2, 3], 4) == 2\n```",
         "```python\nassert countPairs([1, 2, 3], 4) == 2 or True\n```"],
        ["```python\nassert flags([1, 2]) == [True, [1, 2], None]\n```",
         "```python\nassert flags([1, 2]) == [true, [1, 2], null]\n```"],  # JSON spelling is not Python
    ], NoTracer())
    assert _passed(res) == [[True, True, False, False], [True, False]]


def test_input_prediction_runs_the_reference_on_parsed_literals(tmp_path, pool, sample_files):
    items = load_benchmark("cruxeval_i", sample_files["cruxeval"])
    marker = tmp_path / "pwned"
    rec = Recording(pool)
    responses = [
        ["[ANSWER]\nassert f([2, 2, 1]) == [(2, 2), (2, 2), (1, 1)]\n[/ANSWER]",  # another valid input
         "[ANSWER]\nassert f([1]) == [(2, 2), (2, 2), (1, 1)]\n[/ANSWER]",  # wrong
         "[ANSWER]\nf([1, 2, 2])\n[/ANSWER]",  # a bare call
         "[ANSWER]\nassert f(None) == [(2, 2), (2, 2), (1, 1)]\n[/ANSWER]",  # the reference raises
         f"[ANSWER]\nassert f(__import__('os').system('touch {marker}')) == 1\n[/ANSWER]",
         "[ANSWER]\nassert f(x or [2, 1, 2]) == 1\n[/ANSWER]",
         "[ANSWER]\nassert g([2, 1, 2]) == 1\n[/ANSWER]",  # not the function asked for
         "[ANSWER]\nassert f(*[[2, 1, 2]]) == 1\n[/ANSWER]"],
        ["[ANSWER]\nassert f(text='hello', n=2) == 'he|llo'\n[/ANSWER]", "[ANSWER]\n'hello', 2\n[/ANSWER]",
         "[ANSWER]\nassert f('hello', 3) == 'he|llo'\n[/ANSWER]"],
        ["[ANSWER]\nassert f({'a': 1}) == {'a': 1, 'k': 1}\n[/ANSWER]"],
    ]
    res = score_responses(items, responses, rec)
    assert _passed(res) == [[True, False, True, False, False, False, False, False], [True, True, False], [True]]
    statuses = [r["status"] for r in res[0]]
    assert statuses[3] == "exception" and statuses[4:] == ["no_answer"] * 4
    assert not marker.exists()
    assert len(rec.traced) == 4 + 3 + 1  # only parsed literal inputs reached the sandbox
    assert all("__import__" not in p and " or " not in p for p in rec.traced)
    assert res[1][0]["answer"] == "f(text='hello', n=2)"


def test_answer_parsing_helpers():
    assert predicted_output_text("[ANSWER]assert f(1) == 'a' + 'b'[/ANSWER]") == "'a' + 'b'"  # then fails to parse
    assert predicted_arguments("[ANSWER]assert f(1, [2], k={'a': (3,)}) == 0[/ANSWER]", "f") == ([1, [2]],
                                                                                              {"k": {"a": (3,)}})
    assert predicted_arguments("[ANSWER]1, 'x'[/ANSWER]", "f") == ([1, "x"], {})
    with pytest.raises(ValueError, match="does not call f"):
        predicted_arguments("[ANSWER]assert h(1) == 2[/ANSWER]", "f")
