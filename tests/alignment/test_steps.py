"""Step-level reasoning (alignment/steps.py): lines read from the sandbox's per-line trace."""

from __future__ import annotations

import pytest

from coderl_jax.alignment import steps
from coderl_jax.alignment.answers import parse_answer
from coderl_jax.alignment.harvest import harvest
from coderl_jax.alignment.rewards import score_answer
from coderl_jax.data.records import Problem

LOOP_SUM = """nums = list(map(int, input().split()))
total = 0
for x in nums:
    total += x
print(total)
"""

COMPREHENSION = """def main():
    nums = list(map(int, input().split()))
    evens = [x for x in nums if x % 2 == 0]
    print(sum(evens))


main()
"""

RUNNING_TOTAL = """def solve(nums):
    prefix = []
    run = 0
    for x in nums:
        run += x
        prefix.append(run)
    return prefix


nums = list(map(int, input().split()))
print(solve(nums))
"""

RUNNING_MIN = """def solve(nums):
    low = nums[0]
    for x in nums:
        if x < low:
            low = x
    return low


print(solve(list(map(int, input().split()))))
"""

COUNT_EACH = """s = input()
freq = {}
for ch in s:
    freq[ch] = freq.get(ch, 0) + 1
print(freq)
"""


def record_of(pool, program: str, stdin: str, k: int = 3):
    problem = Problem("p", "Run it.", {"style": "stdio", "inputs": [stdin], "outputs": [""]}, {})
    records, counts = harvest(pool, [problem], [f"```python\n{program}```"], [0.0], k=k)
    assert len(records) == 1, counts
    return records[0]


def reasoning_of(pool, program: str, stdin: str, cfg=steps.StepsConfig(), k: int = 3):
    record = record_of(pool, program, stdin, k)
    (trace,) = steps.trace_steps(pool, [record], cfg=cfg)
    assert trace is not None  # the per-line run reproduces the record
    return record, steps.reasoning_text(record, trace, cfg)


def test_a_loop_sum_shows_every_partial_sum_in_order(pool):
    record, text = reasoning_of(pool, LOOP_SUM, "3 -1 3 4\n")
    # the repeated 3 leaves the loop variable's object unchanged: the iteration still counts
    # lines in the order of each variable's last change: the loop variable's comes at the last item
    assert text.splitlines() == ["nums = [3, -1, 3, 4]", "x = 4", "total: 0; 3 -> 3; -1 -> 2; 3 -> 5; 4 -> 9"]


def test_a_list_comprehension_filter_is_one_step(pool):
    record, text = reasoning_of(pool, COMPREHENSION, "1 4 -3 -4 7\n")
    assert text.splitlines() == ["main.nums = [1, 4, -3, -4, 7]", "main.evens = [4, -4]"]


def test_a_running_total_gives_the_partials_before_the_list(pool):
    record, text = reasoning_of(pool, RUNNING_TOTAL, "2 -5 4\n")
    lines = text.splitlines()
    assert lines[0] == "nums = [2, -5, 4]"
    assert lines.index("solve.run: 0; 2 -> 2; -5 -> -3; 4 -> 1") < lines.index("solve.prefix = [2, -3, 1]")
    assert "solve.x = 4" in lines  # a loop variable gets its line only as a target
    assert set(record.target_names) == {"solve.prefix", "solve.run", "solve.x"}


def test_a_running_min_shows_unchanged_iterations_too(pool):
    record, text = reasoning_of(pool, RUNNING_MIN, "3 5 1 1 4\n", k=2)
    assert record.target_names == ["solve.low", "solve.x"]
    assert "solve.low: 3; 3 -> 3; 5 -> 3; 1 -> 1; 1 -> 1; 4 -> 1" in text.splitlines()
    assert "solve.nums = [3, 5, 1, 1, 4]" not in text  # a parameter only read is not a step


def test_a_count_per_key_gives_each_iterations_entry_then_the_dict(pool):
    _, text = reasoning_of(pool, COUNT_EACH, "abca\n")
    lines = text.splitlines()
    assert lines[0] == "s = 'abca'"
    assert "freq: {}; 'a' -> ['a']=1; 'b' -> ['b']=1; 'c' -> ['c']=1; 'a' -> ['a']=2" in lines
    assert lines[-1] == "freq = {'a': 2, 'b': 1, 'c': 1}"  # the dict after its entries


@pytest.mark.parametrize("program, stdin", [(LOOP_SUM, "3 -1 3 4\n"), (COMPREHENSION, "1 4 -3 -4 7\n"),
                                            (RUNNING_TOTAL, "2 -5 4\n"), (COUNT_EACH, "abca\n")])
def test_the_last_line_parses_to_the_traced_truth(pool, program, stdin):
    from coderl_jax.sft.trainer import align_response

    record, text = reasoning_of(pool, program, stdin)
    response = align_response(record, text)
    assert response.startswith(text + "\n")
    answer = parse_answer(response)
    assert answer is not None and answer.line_start == len(text) + 1
    assert score_answer(record, answer).exact
    parsed = steps.parse_steps(text)
    assert [s.name for s in parsed] == [line.split(" ")[0].rstrip(":") for line in text.splitlines()]


def test_a_run_that_differs_from_the_record_gets_no_reasoning(pool):
    import dataclasses

    record = record_of(pool, LOOP_SUM, "1 2\n")
    wrong = dataclasses.replace(record, output="4\n")
    assert steps.trace_steps(pool, [record, wrong])[1] is None


# ------------------------------------------------------------------------------------------------
# Bounds (no sandbox: a hand-written trace in the tracer's form)


def _int(v):
    return {"t": "int", "v": str(v)}


def _list(vs):
    return {"t": "list", "len": len(vs), "items": [_int(v) for v in vs], "trunc": False}


def test_lines_and_values_stay_within_the_bounds():
    program = "".join(f"v{i} = list(range({i}))\n" for i in range(30)) + "t = 0\nfor x in v29:\n    t += x\n"
    events = [{"scope": "", "line": i + 1, "hit": 1, "changed": {f"v{i}": _list(range(i * 5))}} for i in range(30)]
    events.append({"scope": "", "line": 31, "hit": 1, "changed": {"t": _int(0)}})
    total = 0
    for x in range(60):
        events.append({"scope": "", "line": 32, "hit": x + 1, "changed": {"x": _int(x)}})
        total += x
        events.append({"scope": "", "line": 33, "hit": x + 1, "changed": {"t": _int(total)}})
    events.append({"scope": "", "line": 32, "hit": 61, "changed": {}})
    cfg = steps.StepsConfig(max_lines=6, max_line_chars=60)
    lines = steps.step_lines(program, {"events": events, "variables": {}}, cfg)
    assert len(lines) == 6 and lines[0] == steps.ELLIPSIS_LINE
    assert all(len(line) <= 60 for line in lines), lines
    assert lines[-1].startswith("t: 0; 0 -> 0; ") and lines[-1].endswith(f"; ...; 59 -> {total}")  # the last kept
    assert lines[-2].startswith("v29 = [0, 1, 2") and lines[-2].endswith(", ...]")
    assert steps.step_lines(program, {"events": events, "variables": {}, "events_truncated": True}, cfg) == []


def test_short_value_keeps_a_prefix_that_reads_as_cut():
    from tracer.values import serialize

    assert steps.short_value(serialize([1, 2, 3]), 20) == "[1, 2, 3]"
    assert steps.short_value(serialize(list(range(100))), 20) == "[0, 1, 2, 3, 4, ...]"
    assert steps.short_value(serialize("abcdefghijklmnopqrstuvwxyz"), 12) == "'abcd' + ..."
    assert steps.short_value(serialize({i: i for i in range(50)}), 17) == "{0: 0, 1: 1, ...}"
    assert len(steps.short_value(serialize(10 ** 60), 20)) == 20


def test_parse_steps_splits_outside_quotes_and_brackets():
    parsed = steps.parse_steps("s = 'a = b; c'\nt: 0; 'x; y' -> 1; [1, 2] -> 3\n...")
    assert parsed == [steps.Step("s", "value", value="'a = b; c'"),
                      steps.Step("t", "fold", parts=("0", "'x; y' -> 1", "[1, 2] -> 3"))]
