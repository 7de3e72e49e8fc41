"""Harvest: failed code rollouts -> traced programs -> alignment records.

For every code rollout whose reward is <= 0 (the official rule), the program (the last code block)
is run by the tracer on the first test input of its problem:

    stdio tests   the first input on stdin
    call tests    with `harvest_calls=True` (the default), the program with `print(fn(*first_args))`
                  appended (`Solution().fn` when the program defines class Solution), so the
                  call's locals are traced; with `harvest_calls=False` (the official code, whose
                  call-style programs print nothing and are dropped as silent) not harvested
    assert tests  not harvested (there is no input to run on)

Dropped, each counted by reason: no code block, unsupported tests, call-style tests when
`harvest_calls` is off, runtime error or other abnormal end, timeout (5 s), empty stdout, output
that differs between two runs (the tracer's determinism check), a duplicate (input, actual output)
within the step, an alignment prompt over the token limit. The label is the program's own stdout,
never the expected output.
"""

from __future__ import annotations

import collections
from typing import Callable, Sequence

import numpy as np

from coderl_jax.alignment.records import AlignmentRecord
from coderl_jax.alignment.targets import choose_targets, needs_events, traced_program
from coderl_jax.data.records import record_input_index
from coderl_jax.data.responses import extract_code

DROP_REASONS = ("no_code", "unsupported_tests", "call_style", "error", "timeout", "silent", "nondeterministic",
                "duplicate", "long_output", "too_long")


def output_fits(stdout: str, max_output_chars: int) -> bool:
    """Whether a program's output is short enough to be asked about (<= 0: any length, the official)."""
    return max_output_chars <= 0 or len(stdout.strip()) <= max_output_chars


def runnable(program: str, tests: dict, record_input: str = "first") -> tuple[str, str, str] | None:
    """(program to trace, stdin, call) for the problem's test input chosen by `record_input`
    (`record_input_index`), or None."""
    style = tests.get("style")
    inputs = tests.get("inputs") or []
    pick = record_input_index(inputs, record_input)
    if style == "stdio" and inputs and isinstance(inputs[pick], str):
        return program, inputs[pick], ""
    if style == "call" and inputs and tests.get("fn_name"):
        args = inputs[pick]
        if isinstance(args, dict):
            arg_text = ", ".join(f"{k}={v!r}" for k, v in args.items())
        elif isinstance(args, list):
            arg_text = ", ".join(repr(a) for a in args)
        else:
            return None
        fn = tests["fn_name"]
        target = f"Solution().{fn}" if "class Solution" in program else fn
        call = f"{target}({arg_text})"
        return f"{program.rstrip()}\n\nprint({call})\n", "", call
    return None


def harvest(tracer, problems: Sequence, responses: Sequence[str], rewards: Sequence[float], *, k: int = 3,
            targets: str = "last", step: int = 0, rng: np.random.Generator | None = None, timeout_s: float = 5.0,
            check_determinism: bool = True, max_value_chars: int = 200, max_output_chars: int = 0,
            harvest_calls: bool = True, record_input: str = "first",
            prompt_fits: Callable[[AlignmentRecord], bool] | None = None) -> tuple[list[AlignmentRecord], dict]:
    """Records from the failed rollouts, and counts: {"considered", "harvested", "<reason>": n}."""
    rng = rng or np.random.default_rng(step)
    counts = collections.Counter({r: 0 for r in DROP_REASONS})
    jobs, seen_runs = [], set()
    for problem, response, reward in zip(problems, responses, rewards):
        if reward > 0:
            continue
        counts["considered"] += 1
        code = extract_code(response)
        if code is None:
            counts["no_code"] += 1
            continue
        if not harvest_calls and problem.tests.get("style") == "call":
            counts["call_style"] += 1
            continue
        run = runnable(code, problem.tests, record_input)
        if run is None:
            counts["unsupported_tests"] += 1
            continue
        if run in seen_runs:  # the same program on the same input: the same output, a duplicate
            counts["duplicate"] += 1
            continue
        seen_runs.add(run)
        jobs.append((problem, run))
    per_line = needs_events(targets)
    requests = [{"id": str(i), "program": traced_program(prog, targets), "stdin": stdin, "timeout_s": timeout_s,
                 "per_line": per_line, "check_determinism": check_determinism}
                for i, (_, (prog, stdin, _)) in enumerate(jobs)]
    results = tracer.trace(requests) if requests else []
    records, seen_outputs = [], set()
    for (problem, (prog, stdin, call)), res in zip(jobs, results):
        status = res.get("status")
        if status != "ok":
            counts["timeout" if status == "timeout" else "error"] += 1
            continue
        stdout = res.get("stdout") or ""
        if not stdout.strip():
            counts["silent"] += 1
            continue
        if res.get("nondeterministic"):
            counts["nondeterministic"] += 1
            continue
        if not output_fits(stdout, max_output_chars):
            counts["long_output"] += 1
            continue
        chosen = choose_targets(res, k, targets, rng=rng, max_value_chars=max_value_chars)
        record = AlignmentRecord(program=prog, stdin=stdin, output=stdout, call=call, source=str(problem.id),
                                 step=step, targets=chosen)
        if record.key() in seen_outputs:
            counts["duplicate"] += 1
            continue
        if prompt_fits is not None and not prompt_fits(record):
            counts["too_long"] += 1
            continue
        seen_outputs.add(record.key())
        records.append(record)
    counts["harvested"] = len(records)
    return records, dict(counts)
