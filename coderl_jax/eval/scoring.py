"""Scoring responses: code through the tracer's tests, predictions by parsing and comparing.

- codegen: the program built from the response (docs/eval.md, "programs") runs against the item's
  tests in the tracer sandbox (`run_tests`); it passes when every test passes.
- output_prediction / test_output: the predicted value's text (from the `[ANSWER]` assertion, or
  from the last `\\boxed{...}` for items whose answer_format is "boxed") is parsed with
  `tracer.compare.parse_prediction` and compared with the expected value. The predicted text is
  never executed, so `x or True` is a parse failure, not a pass.
- input_prediction: the predicted arguments are parsed the same way, rendered back as literal text
  (checked to parse back to the same value), and the item's *reference* program is called on them
  inside the sandbox (`trace`); its return value is compared with the expected output.

Comparison modes (`mode`):
- "python" (default): Python's `==` between the parsed prediction and the expected value, both
  plain builtin data: the semantics of the official CRUXEval and LiveCodeBench harnesses, which
  execute `assert f(x) == prediction` (so 1 == 1.0 == True, but (1, 2) != [1, 2]);
- "strict" / "lenient": the tracer comparator's modes (docs/tracer-values.md).
"""

from __future__ import annotations

import re
from typing import Sequence

from coderl_jax.data.responses import extract_code
from coderl_jax.eval.answers import AnswerError, predicted_arguments, predicted_boxed_text, predicted_output_text
from coderl_jax.eval.benchmarks import VALUE_LIMITS, EvalItem
from tracer.compare import compare, compare_value, parse_prediction, typed_equal
from tracer.values import Typed, is_complete, render, serialize, to_python

COMPARE_MODES = ("python", "strict", "lenient")
RESULT_VAR = "_eval_result"
MAX_STORED_CHARS = 20_000  # programs / answers kept in samples.jsonl are cut to this


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:cut]


def scored_text(item: EvalItem, response: str, raw: bool) -> str:
    """What is read from a response: in raw mode raw_prefix + the completion up to a stop string."""
    return item.raw_prefix + cut_at_stops(response, item.raw_stop) if raw else response


def build_program(item: EvalItem, response: str, raw: bool) -> str | None:
    """The program a codegen response stands for, or None when it holds no code."""
    if raw:
        program = scored_text(item, response, raw)
        return program if program.strip() else None
    code = extract_code(response)
    if code is None:
        code = response.strip("\n")
    if not code.strip():
        return None
    if item.entry_point and item.raw_prefix and not re.search(
            rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(item.entry_point)}[ \t]*\(", code, re.MULTILINE):
        return item.raw_prefix + code  # a completion of the function body
    if item.wrap_class and not re.search(r"^class[ \t]+Solution\b", code, re.MULTILINE):
        code = "class Solution:\n" + "".join("    " + line for line in code.splitlines(keepends=True))
    return item.chat_prefix + code


def python_equal(value, expected: Typed) -> bool:
    """Python `==` between a parsed (plain builtin) value and a typed expected value."""
    if not is_complete(expected):
        return False
    try:
        return bool(value == to_python(expected))
    except (RecursionError, MemoryError, TypeError, ValueError):
        return False


def text_matches(predicted_text: str, expected: Typed, mode: str) -> bool:
    if mode == "python":
        ok, value = parse_prediction(predicted_text)
        return ok and python_equal(value, expected)
    return compare(predicted_text, expected, mode=mode)


def typed_matches(actual: Typed, expected: Typed, mode: str) -> bool:
    """A value produced in the sandbox (typed) against the expected one."""
    if mode == "strict":
        return typed_equal(actual, expected)
    if not is_complete(actual):
        return False
    value = to_python(actual)
    if mode == "python":
        return python_equal(value, expected)
    return compare_value(value, expected, mode="lenient")


def literal_text(value) -> str:
    """Literal source text for a parsed value; raises AnswerError unless it parses back to it."""
    typed = serialize(value, **VALUE_LIMITS)
    text = render(typed)
    ok, back = parse_prediction(text)
    if not ok or not typed_equal(serialize(back, **VALUE_LIMITS), typed):
        raise AnswerError("the predicted input cannot be written as a literal")
    return text


def input_program(item: EvalItem, args: list, kwargs: dict) -> str:
    """The reference code, then one call on the literal arguments, its value kept in RESULT_VAR."""
    texts = [literal_text(a) for a in args] + [f"{k}={literal_text(v)}" for k, v in kwargs.items()]
    header = "from collections import deque\n" if any("deque(" in t for t in texts) else ""
    return (f"{header}{item.reference['code'].rstrip()}\n\n"
            f"{RESULT_VAR} = {item.reference['fn_name']}({', '.join(texts)})\n")


def _short(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_STORED_CHARS else text[:MAX_STORED_CHARS] + "...[cut]"


def score_responses(items: Sequence[EvalItem], responses: Sequence[Sequence[str]], tracer, *, raw: bool = False,
                    mode: str = "python", timeout_s: float = 6.0) -> list[list[dict]]:
    """Score responses[i][j] (sample j of items[i]); returns one result dict per sample:
    {"passed": bool, "status": str, "program" | "answer": str, ["error": str]}.
    Codegen and input prediction go to `tracer` (a TracerPool or TracerClient) in one batch each."""
    if mode not in COMPARE_MODES:
        raise ValueError(f"compare mode must be one of {COMPARE_MODES}, got {mode!r}")
    results: list[list[dict]] = [[{} for _ in group] for group in responses]
    run_reqs, run_at, trace_reqs, trace_at = [], [], [], []
    for i, (item, group) in enumerate(zip(items, responses)):
        for j, response in enumerate(group):
            res = results[i][j]
            if item.kind == "codegen":
                program = build_program(item, response, raw)
                res["program"] = _short(program)
                if program is None:
                    res.update(passed=False, status="no_code")
                    continue
                run_reqs.append({"id": f"{i}:{j}", "program": program, "tests": item.tests, "timeout_s": timeout_s})
                run_at.append((i, j))
                continue
            text = scored_text(item, response, raw)
            expected = item.reference["expected"]
            if item.kind in ("output_prediction", "test_output"):
                boxed = item.answer_format == "boxed"
                predicted = predicted_boxed_text(text) if boxed else predicted_output_text(text)
                if predicted is None:
                    res.update(passed=False, status="no_answer", answer=None, error="no \\boxed{...} answer")
                    continue
                res["answer"] = _short(predicted)
                if not parse_prediction(predicted)[0]:
                    res.update(passed=False, status="no_answer", error="the predicted value is not a literal")
                    continue
                ok = text_matches(predicted, expected, mode)
                res.update(passed=ok, status="passed" if ok else "wrong_answer")
                continue
            try:  # input_prediction
                args, kwargs = predicted_arguments(text, item.reference["fn_name"])
                program = input_program(item, args, kwargs)
            except AnswerError as e:
                res.update(passed=False, status="no_answer", error=str(e))
                continue
            res["answer"] = _short(program.rsplit("\n", 2)[-2].split(" = ", 1)[1])  # the call, as run
            trace_reqs.append({"id": f"{i}:{j}", "program": program, "stdin": "", "timeout_s": timeout_s,
                               "targets": [RESULT_VAR]})
            trace_at.append((i, j))
    if run_reqs:
        for (i, j), out in zip(run_at, tracer.run_tests(run_reqs)):
            results[i][j].update(passed=bool(out.get("passed")), status=out.get("status", "sandbox_error"))
            if not out.get("passed"):
                detail = out.get("error") or next((t.get("error") for t in out.get("tests", []) if t.get("error")),
                                                  None)
                if detail:
                    results[i][j]["error"] = _short(str(detail))
    if trace_reqs:
        for (i, j), out in zip(trace_at, tracer.trace(trace_reqs)):
            res, expected = results[i][j], items[i].reference["expected"]
            var = (out.get("variables") or {}).get(RESULT_VAR)
            if out.get("status") != "ok" or var is None:
                res.update(passed=False, status=out.get("status") if out.get("status") != "ok" else "no_result")
                if out.get("exception"):
                    res["error"] = _short(f"{out['exception'].get('type')}: {out['exception'].get('message')}")
                continue
            ok = typed_matches(var["value"], expected, mode)
            res.update(passed=ok, status="passed" if ok else "wrong_answer")
    return results
