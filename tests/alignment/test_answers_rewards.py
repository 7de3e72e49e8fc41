"""Prompt and answer round trip; rewards on crafted answers equal hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coderl_jax.alignment import AlignmentRecord, alignment_prompt, answer_line, parse_answer, score_answer
from tracer.values import serialize


def record(**targets) -> AlignmentRecord:
    return AlignmentRecord(program="def main():\n    total = 0\n    ...\nmain()\n", stdin="3\n", output="6\n",
                           targets=tuple({"name": k, "value": serialize(v), "json": json.loads(json.dumps(v))}
                                         for k, v in targets.items()))


REC = record(**{"n": 3, "main.total": 6, "main.seen": [1, 2, 3]})  # K = 3: four items with the output


def test_prompt_names_program_input_and_qualified_targets():
    text = alignment_prompt(REC)
    assert "def main():" in text and "```python" in text and "3" in text
    for name in ("`n`", "`main.total`", "`main.seen`"):
        assert name in text
    assert "final_output" in text and "variables" in text and "last line" in text


def test_official_prompt_layout_carries_the_official_content_in_its_order():
    rec = record(a=2, b=[1, 2])
    compact, text = alignment_prompt(rec), alignment_prompt(rec, "official")
    assert compact == alignment_prompt(rec, "compact")
    # compact: instructions first; official: task, program, input, variables, instructions, example
    assert compact.index("last line") < compact.index("Program:") < compact.index("Input (stdin)") < compact.index(
        "Variables: `a`, `b`")
    marks = ["predict", "final_output", "final values", "Program:", "def main():", "Input (stdin)", "3",
             "Variables: `a`, `b`.", "step by step", "JSON out of the reasoning", "last line only",
             "Example of a last line"]
    at = [text.index(m, text.index(marks[i - 1]) if i else 0) for i, m in enumerate(marks)]
    assert at == sorted(at)
    example = text.rsplit("\n", 1)[1]  # the example is a valid answer line
    assert parse_answer(example) is not None and "f.x" not in text  # no qualified names to explain here
    assert "`f.x`" in alignment_prompt(REC, "official")  # ...but there are in REC
    with pytest.raises(ValueError, match="alignment.prompt"):
        alignment_prompt(rec, "verl")


def test_true_answer_round_trips_to_the_top_reward():
    line = answer_line(REC)
    assert json.loads(line) == {"final_output": "6", "variables": {"n": 3, "main.total": 6, "main.seen": [1, 2, 3]}}
    response = "Let me think.\nThe loop adds 1, 2, 3.\n" + line
    a = parse_answer(response)
    assert a is not None and a.line_start == response.index("{")
    for variant, reward in (("official", 1.0), ("fraction", 1.0), ("strict", 1.0)):
        s = score_answer(REC, a, variant)
        assert s.reward == pytest.approx(reward) and s.items == (True,) * 4


@pytest.mark.parametrize("response,official,fraction,strict", [
    # partly right: output and n right, total wrong, seen missing: 0.1 + 0.9 * 2/4
    ('think\n{"final_output": "6", "variables": {"n": 3, "main.total": 7}}', 0.1 + 0.9 * 2 / 4, 2 / 4, 0.0),
    # lenient equality: 6 (int) for the output "6", "3" (str) for 3, a tuple-like list: all right
    ('{"final_output": 6, "variables": {"n": "3", "main.total": 6.0, "main.seen": [1, 2, 3]}}', 1.0, 1.0, 0.0),
    # valid JSON, every item wrong: the format bonus only
    ('{"final_output": "x", "variables": {}}', 0.1, 0.0, 0.0),
    # an answer inside a trailing ```json fence counts
    ('reasoning\n```json\n{"final_output": "6", "variables": {"n": 3, "main.total": 6, "main.seen": [1, 2, 3]}}\n```\n',
     1.0, 1.0, 1.0),
    # invalid JSON on the last line
    ('{"final_output": "6", "variables": {"n": 3,}}', 0.0, 0.0, 0.0),
    # the JSON is not on the last line
    ('{"final_output": "6", "variables": {"n": 3}}\nThat is my answer.', 0.0, 0.0, 0.0),
    # missing keys / wrong types
    ('{"final_output": "6"}', 0.0, 0.0, 0.0),
    ('{"variables": {"n": 3}}', 0.0, 0.0, 0.0),
    ('{"final_output": "6", "variables": [3]}', 0.0, 0.0, 0.0),
    ('[{"final_output": "6", "variables": {}}]', 0.0, 0.0, 0.0),
    # prose before the JSON on the same line
    ('Answer: {"final_output": "6", "variables": {"n": 3}}', 0.0, 0.0, 0.0),
    ("", 0.0, 0.0, 0.0),
])
def test_rewards_on_crafted_answers(response, official, fraction, strict):
    a = parse_answer(response)
    assert score_answer(REC, a, "official").reward == pytest.approx(official)
    assert score_answer(REC, a, "fraction").reward == pytest.approx(fraction)
    assert score_answer(REC, a, "strict").reward == pytest.approx(strict)


def test_strict_and_lenient_differ_on_types():
    rec = record(flag=True, x=1)
    a = parse_answer('{"final_output": "6", "variables": {"flag": 1, "x": true}}')
    assert score_answer(rec, a, "official").items == (True, True, True)
    assert score_answer(rec, a, "strict").items == (True, False, False)


def test_predictions_are_data_never_code():
    # an expression that would be true if evaluated is just a string that is not the value
    a = parse_answer('{"final_output": "6", "variables": {"n": "n or True", "main.total": "__import__(\'os\')"}}')
    assert score_answer(REC, a, "official").items == (True, False, False, False)


def test_value_spans_point_at_the_values():
    response = 'r\n{"final_output": "6", "variables": {"n": 3, "main.seen": [1, 2, 3]}}'
    a = parse_answer(response)
    s, e = a.output_span
    assert response[s:e] == '"6"'
    assert {k: response[s:e] for k, (s, e) in a.variable_spans.items()} == {"n": "3", "main.seen": "[1, 2, 3]"}


def test_record_json_round_trip():
    assert AlignmentRecord.from_dict(json.loads(json.dumps(REC.to_dict()))) == REC
    with pytest.raises(ValueError, match="output"):
        AlignmentRecord.from_dict({"program": "x", "stdin": "", "targets": []})


def test_alignment_metrics_measure_the_spread_within_groups():
    from types import SimpleNamespace

    from coderl_jax.alignment.task import alignment_metrics

    rewards = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 1.0, 0.1, 1.0])
    score = SimpleNamespace(accuracy=0.5, exact=False, parsed=True)
    scored = SimpleNamespace(scores=[score] * 8)
    completions = [SimpleNamespace(token_ids=[1, 2, 3])] * 8
    m = alignment_metrics(scored, completions, rewards, group_size=4)
    # group 1: all equal (std 0, no GRPO signal); group 2: 0.1 / 1.0 twice each, std 0.45
    assert m["reward/align/group_std"] == pytest.approx(0.225)
    assert m["reward/align/zero_variance_frac"] == 0.5
    m2 = alignment_metrics(scored, completions, rewards, group_size=2)  # groups (0.1, 1.0) twice
    assert m2["reward/align/group_std"] == pytest.approx((0 + 0 + 0.45 + 0.45) / 4)
    assert m2["reward/align/zero_variance_frac"] == 0.5
