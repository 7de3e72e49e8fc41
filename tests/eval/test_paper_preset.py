"""The paper's evaluation: the `paper` preset's settings, the boxed code-reasoning benchmark and
its answers (parsed, never executed), and `coderl eval --preset paper` end to end on sample files."""

from __future__ import annotations

import json

import pytest

from coderl_jax import cli
from coderl_jax.eval import runner
from coderl_jax.eval.answers import boxed_text, predicted_boxed_text
from coderl_jax.eval.benchmarks import BENCHMARKS, EvalItem, load_benchmark
from coderl_jax.eval.presets import EvalPreset, get_preset
from coderl_jax.eval.scoring import score_responses
from tracer.values import serialize


class NoTracer:
    def run_tests(self, requests):
        raise AssertionError("nothing may run")

    trace = run_tests


def _key(s) -> tuple:
    return s.n, s.k, s.temperature, s.top_p, s.max_new_tokens


def test_paper_preset_settings():
    paper = get_preset("paper")
    assert paper.benchmarks == ["humaneval", "leetcode", "lcb_codegen", "lcb_execution_boxed", "lcb_test_output"]
    got = {name: _key(runner.settings_for(name, "paper")) for name in paper.benchmarks}
    assert got == {
        "humaneval": (1, (1,), 0.0, 1.0, 4096),  # greedy, 4,096 new tokens
        "leetcode": (1, (1,), 0.0, 1.0, 8192),  # greedy, 8,192
        "lcb_codegen": (10, (1,), 0.2, 0.95, 4096),  # n=10 at T=0.2, top-p 0.95
        "lcb_execution_boxed": (1, (1,), 0.0, 1.0, 4096),  # code reasoning: greedy, one sample
        "lcb_test_output": (10, (1,), 0.2, 0.95, 4096),
    }
    # the benchmarks' own defaults are not the paper's: without the preset HumanEval gets 1,024 tokens
    assert runner.settings_for("humaneval").max_new_tokens == 1024
    assert runner.settings_for("leetcode", "paper", max_new_tokens=100, n=None).max_new_tokens == 100  # explicit wins
    assert runner.date_window("lcb_codegen", "paper", None, None) == ("2023-05-01", "2024-11-01")
    assert runner.date_window("lcb_codegen", "paper", "2024-01-01", None) == ("2024-01-01", None)
    assert runner.date_window("humaneval", "paper", None, None) == (None, None)
    with pytest.raises(ValueError, match="preset 'paper' has no setting for benchmark 'mbpp'"):
        runner.settings_for("mbpp", "paper")
    with pytest.raises(ValueError, match="unknown evaluation preset 'papr'"):
        runner.settings_for("humaneval", "papr")
    with pytest.raises(ValueError, match="unknown benchmark 'humaneva'"):
        EvalPreset("x", "", {"humaneva": {}})
    with pytest.raises(ValueError, match="dates for benchmarks it does not run"):
        EvalPreset("x", "", {"humaneval": {}}, {"lcb_codegen": ("2023-05-01", "2024-11-01")})


@pytest.mark.parametrize("field,value,message", [
    ("temperature", -0.1, "temperature must be >= 0"), ("top_p", 0.0, r"top_p must be in \(0, 1\]"),
    ("top_p", 1.5, r"top_p must be in \(0, 1\]"), ("max_new_tokens", 0, "max_new_tokens must be >= 1"),
    ("timeout_s", 0, "timeout_s must be > 0"), ("n", 0, "n must be >= 1"),
])
def test_bad_settings_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        runner.settings_for("humaneval", "paper", **{field: value})


def test_boxed_benchmark_items(sample_files):
    assert BENCHMARKS["lcb_execution_boxed"].defaults == dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=4096)
    a, b = load_benchmark("lcb_execution_boxed", sample_files["lcb_execution"])
    assert (a.id, a.kind, a.answer_format, b.answer_format) == ("sample_900", "output_prediction", "boxed", "boxed")
    assert a.reference["expected"] == serialize(1) and a.reference["fn_name"] == "countPairs"
    system, user = a.prompt
    assert system["role"] == "system" and user["role"] == "user"
    text = user["content"]
    # the code, then the input call, then the request for a boxed answer; no [ANSWER] format
    assert text.index("def countPairs") < text.index("Input: countPairs(nums = [1, 2, 3], target = 4)") < text.index(
        "\\boxed{output}")
    assert "[ANSWER]" not in text and a.raw_prefix == "" and a.raw_stop == ()
    assert a.canonical.endswith("\\boxed{1}") and b.canonical.endswith("\\boxed{'Ab'}")
    with pytest.raises(ValueError, match="answer_format must be one of"):
        EvalItem(id="x", benchmark="b", kind="output_prediction", prompt=[], raw_prompt="", answer_format="json")


def test_boxed_answers_are_parsed_never_executed(sample_files):
    a, b = load_benchmark("lcb_execution_boxed", sample_files["lcb_execution"])
    responses = [
        "The pairs: only (1, 2).\n\\boxed{1}",
        "Maybe \\boxed{2}. No: the final answer is \\boxed{1}",  # the last box counts
        "\\boxed{assert countPairs(nums = [1, 2, 3], target = 4) == 1}",  # an assertion in the box
        "\\boxed{1.0}",  # Python ==, as the official harness
        "\\boxed{2}",
        "\\boxed{0 or 1}",  # not a literal: never evaluated
        "[ANSWER]\nassert countPairs(nums = [1, 2, 3], target = 4) == 1\n[/ANSWER]",  # not boxed
        "The answer is 1.",
    ]
    res = score_responses([a], [responses], NoTracer())
    assert [r["passed"] for r in res[0]] == [True, True, True, True, False, False, False, False]
    assert [r["status"] for r in res[0][4:]] == ["wrong_answer", "no_answer", "no_answer", "no_answer"]
    assert res[0][-1]["error"] == "no \\boxed{...} answer"
    res = score_responses([b], [["\\boxed{'Ab'}", "\\boxed{`'Ab'`}", "\\boxed{\"Ab\"}", "\\boxed{Ab}"]], NoTracer())
    assert [r["passed"] for r in res[0]] == [True, True, True, False]


def test_boxed_text_extraction():
    assert boxed_text("x \\boxed{{'a': {1, 2}}} y") == "{'a': {1, 2}}"  # nested braces balance
    assert boxed_text("\\boxed{'}'}") == "'}'"  # a brace inside a string does not close the box
    assert boxed_text("it's \\boxed{3}") == "3" and boxed_text("\\boxed{it's {1}}") == "it's {1}"
    assert boxed_text("\\boxed{1} and an unclosed \\boxed{2") == "1"
    assert boxed_text("no box") is None and predicted_boxed_text("no box") is None
    assert predicted_boxed_text("\\boxed{f(1) == [1, 2]}") == "[1, 2]"


def test_cli_paper_preset_oracle(tmp_path, sample_files, capsys):
    out = tmp_path / "out"
    rc = cli.main(["eval", "--preset", "paper", "--benchmark", "leetcode,lcb_execution_boxed,lcb_test_output",
                   "--path", f"leetcode={sample_files['leetcode']}",
                   "--path", f"lcb_execution_boxed={sample_files['lcb_execution']}",
                   "--path", f"lcb_test_output={sample_files['lcb_test_output']}",
                   "--oracle", "canonical", "--out", str(out), "--workers", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    benchmarks = json.loads((out / "summary.json").read_text())["benchmarks"]
    assert {name: s["pass@1"] for name, s in benchmarks.items()} == {
        "leetcode": 1.0, "lcb_execution_boxed": 1.0, "lcb_test_output": 1.0}
    tokens = {name: json.loads((out / name / "config.json").read_text())["settings"]["max_new_tokens"]
              for name in benchmarks}
    assert tokens == {"leetcode": 8192, "lcb_execution_boxed": 4096, "lcb_test_output": 4096}
    capsys.readouterr()
    # without --benchmark the preset's five run; a missing path is a clear error before anything runs
    rc = cli.main(["eval", "--preset", "paper", "--oracle", "canonical", "--out", str(tmp_path / "o2")])
    assert rc == 2 and "'leetcode' reads a local file" in capsys.readouterr().err
    rc = cli.main(["eval", "--oracle", "canonical", "--out", str(tmp_path / "o3")])
    assert rc == 2 and "give --benchmark NAME[,NAME] or --preset NAME" in capsys.readouterr().err


def test_preset_date_window_filters_lcb_codegen(sample_files):
    first, last = runner.date_window("lcb_codegen", "paper", None, None)
    items = load_benchmark("lcb_codegen", sample_files["lcb_codegen"], start_date=first, end_date=last)
    assert [i.id for i in items] == ["9100"]  # 2024-03-02 is inside the paper's window, 2023-04-01 is not
