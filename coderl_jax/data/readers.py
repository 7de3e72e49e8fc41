"""Readers for problem files: our JSONL, and verl / PRIME parquet.

Both readers turn each row (a JSON object, or a parquet row as a dict) into a `Problem` with
`problem_from_row`, so every alias below works in both formats.

**Canonical JSONL** (`.jsonl`, `.json` holding one object per line), what `Problem.to_json` writes:

    {"id": "two-sum", "prompt": "Write ...", "tests": {"style": "call", "fn_name": "f",
     "inputs": [[1, 2]], "outputs": [3]}, "metadata": {"difficulty": "easy"}}

**verl / PRIME parquet** (`.parquet`), the layout of verl's `examples/data_preprocess/*.py` and of
PRIME's Eurus-2-RL-Data code rows:

    data_source: "codecontests"                       -> metadata["source"]
    prompt:      [{"role": "system", ...}, {"role": "user", "content": "..."}]
    ability:     "code"                               -> metadata["ability"]
    reward_model: {"style": "rule", "ground_truth": '{"inputs": ["1 2\\n"], "outputs": ["3\\n"]}'}
    extra_info:  {"split": "train", "index": 0, ...}  -> metadata["extra_info"]

`ground_truth` is a JSON string or an object. With `fn_name` it is call style, otherwise stdio.
An object that already has a tracer `style` is taken as is.

**Field aliases** (first one present wins):

- id: `id`, `task_id`, `problem_id`, `question_id`, `name`; default `<file stem>-<row>`.
- prompt: `prompt`, `messages`, `question`, `question_content` (LiveCodeBench), `problem`,
  `text` (MBPP), `instruction`. A string, or chat messages.
- tests:
  - `tests`: a tracer tests object; or `{"inputs", "outputs"[, "fn_name"]}`; or a
    LiveCodeBench case list `[{"input", "output", "testtype"}]`; any of these as a JSON string;
  - `reward_model.ground_truth` (verl, above);
  - `input_output` (APPS / TACO: a JSON string `{"inputs", "outputs"[, "fn_name"]}`);
  - `test` + `entry_point` (HumanEval) -> assert style;
  - `test_list` [+ `test_setup_code`] (MBPP) -> assert style; entry point from `entry_point`
    or the first `assert name(...)`;
  - `public_test_cases` + `private_test_cases` (LiveCodeBench; functional cases take `fn_name`
    from `metadata.func_name`).
- metadata: the `metadata` object (or JSON string), plus `data_source` (as `source`), `source`,
  `ability`, `difficulty`, `starter_code`, `extra_info`, `split`, `platform`, `contest_date`,
  `tags`. Other columns are ignored.

**Input/output conversions.** stdio inputs/outputs given as lists of lines are joined with
newlines (plus a final newline). Call style: an argument list or keyword object is used as is;
a string input is LiveCodeBench's encoding, one JSON value per line, and then its expected
output is JSON text too. APPS call-style outputs are passed through unchanged (APPS sometimes
wraps a return value in a one-element list; no heuristic is applied).

**Files**: `.jsonl` / `.json` / `.ndjson` (JSON lines, or one JSON array), optionally gzipped
(`.gz`), and `.parquet`; `iter_rows` reads them, for training data and for every benchmark of
`coderl_jax.eval` alike.

**Rows** are numbered as an editor shows them: JSONL rows by their 1-based line number, array
items and parquet rows by their 0-based index (as pyarrow and pandas number them). Errors read
``path:row:field: message``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from coderl_jax.data.chat import count_prompt_tokens
from coderl_jax.data.records import DataError, Problem, ReadReport, check_tests

ID_FIELDS = ("id", "task_id", "problem_id", "question_id", "name")
PROMPT_FIELDS = ("prompt", "messages", "question", "question_content", "problem", "text", "instruction")
META_FIELDS = {"data_source": "source", "source": "source", "ability": "ability", "difficulty": "difficulty",
               "starter_code": "starter_code", "extra_info": "extra_info", "split": "split",
               "platform": "platform", "contest_date": "contest_date", "tags": "tags"}
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_problems(path: str | os.PathLike, *, tokenizer: Any = None, max_prompt_tokens: int | None = None,
                  system: str | None = None, raw_prompts: bool = False, strict: bool = False,
                  max_examples: int = 5) -> tuple[list[Problem], ReadReport]:
    """Read a JSONL or parquet problem file (chosen by suffix, `iter_rows`).

    Bad rows are skipped and counted in the returned report, which keeps the first
    `max_examples` errors; with `strict=True` the first bad row raises `DataError` instead.
    With `max_prompt_tokens`, prompts whose rendered length (`render_prompt` with `tokenizer`,
    `system`, `raw_prompts`) exceeds it are rejected as `prompt_too_long`.
    """
    path = str(path)
    if max_prompt_tokens is not None and tokenizer is None:
        raise ValueError("max_prompt_tokens needs a tokenizer")
    report = ReadReport(path=path, max_examples=max_examples)
    problems: list[Problem] = []
    seen: set[str] = set()
    stem = Path(path).name.split(".")[0]

    def skip(error: DataError) -> None:
        report.rows += 1
        report.add_error(error)

    for row_no, row in iter_rows(path, on_bad_row=None if strict else skip):
        report.rows += 1
        try:
            problem = problem_from_row(row, default_id=f"{stem}-{row_no}")
            if problem.id in seen:
                raise DataError(f"duplicate id {problem.id!r}", field="id", reason="duplicate_id")
            if max_prompt_tokens is not None:
                n = count_prompt_tokens(problem, tokenizer, system=system, raw=raw_prompts)
                if n > max_prompt_tokens:
                    raise DataError(f"prompt has {n} tokens, over the limit of {max_prompt_tokens}",
                                    field="prompt", reason="prompt_too_long")
        except DataError as e:
            e = e.located(path, row_no)
            if strict:
                raise e from None
            report.add_error(e)
            continue
        seen.add(problem.id)
        problems.append(problem)
        report.kept += 1
    return problems, report


# ------------------------------------------------------------------------------------------------
# Rows: the one reader of problem and benchmark files (coderl_jax.eval.benchmarks reads with it too)

BadRowHandler = Callable[[DataError], None]


def iter_rows(path: str | os.PathLike, *, on_bad_row: BadRowHandler | None = None) -> Iterator[tuple[int, dict]]:
    """(row number, row) for each row of a JSONL file (`iter_jsonl`) or a parquet file (rows as
    dicts, numbered from 0), chosen by suffix. A missing file or an unknown suffix raises
    `DataError`; bad rows are handled as `iter_jsonl` says."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataError("no such file", path=path, reason="unreadable_file")
    name = path.lower().removesuffix(".gz")
    if name.endswith(JSONL_SUFFIXES):
        return iter_jsonl(path, on_bad_row=on_bad_row)
    if name.endswith(PARQUET_SUFFIXES) and not path.lower().endswith(".gz"):
        return _parquet_rows(path)
    raise DataError(f"unknown file type (expected {', '.join(JSONL_SUFFIXES)}, optionally .gz, or "
                    f"{', '.join(PARQUET_SUFFIXES)})", path=path, reason="unreadable_file")


def iter_jsonl(path: str | os.PathLike, *, on_bad_row: BadRowHandler | None = None) -> Iterator[tuple[int, dict]]:
    """(line number from 1, object) for each non-blank line of a JSON-lines file, gzipped when its
    name ends in .gz. A file whose first non-blank character is `[` is one JSON array instead, its
    items numbered from 0.

    A file that cannot be opened, decoded (UTF-8, named by line) or, for an array, parsed raises
    `DataError` (reason `unreadable_file`). A row that is not valid JSON or not a JSON object raises
    `DataError` naming the file and row (reason `unreadable_row`); with `on_bad_row`, the error
    goes to `on_bad_row(error)` instead and reading goes on."""
    path = str(path)
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", path=path, reason="unreadable_file") from None

    def bad(row_no: int, message: str) -> None:
        error = DataError(message, path=path, row=row_no, reason="unreadable_row")
        if on_bad_row is None:
            raise error
        on_bad_row(error)

    with f:
        lines = _numbered_lines(f, path)
        first = next(((n, line) for n, line in lines if line.strip()), None)
        if first is None:
            return
        if first[1].lstrip().startswith("["):  # one JSON array, not JSON lines
            try:
                numbered = enumerate(json.loads(first[1] + "".join(line for _, line in lines)))
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON: {e.msg} at line {first[0] + e.lineno - 1}", path=path,
                                reason="unreadable_file") from None
        else:
            numbered = _parsed(itertools.chain([first], lines), bad)
        for row_no, row in numbered:
            if isinstance(row, dict):
                yield row_no, row
            else:
                bad(row_no, f"row is a JSON {type(row).__name__}, expected an object")


def _parsed(lines: Iterator[tuple[int, str]], bad: Callable[[int, str], None]) -> Iterator[tuple[int, Any]]:
    for line_no, line in lines:
        if line.strip():
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as e:
                bad(line_no, f"invalid JSON: {e.msg} at column {e.colno}")


def _numbered_lines(f, path: str) -> Iterator[tuple[int, str]]:
    line_no = 0
    while True:
        try:
            raw = f.readline()
        except (OSError, EOFError, zlib.error) as e:  # a damaged .gz
            raise DataError(f"cannot read after line {line_no}: {e}", path=path, reason="unreadable_file") from None
        if not raw:
            return
        line_no += 1
        try:
            yield line_no, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"not UTF-8 ({e.reason} at byte {e.start})", path=path, row=line_no,
                            reason="unreadable_file") from None


def _parquet_rows(path: str) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise DataError(f"cannot open parquet file: {e}", path=path, reason="unreadable_file") from None
    row_no = 0
    for batch in pf.iter_batches(batch_size=512):
        for row in batch.to_pylist():
            yield row_no, row
            row_no += 1


def _first(row: dict, names: tuple[str, ...]) -> tuple[str | None, Any]:
    for name in names:
        if row.get(name) is not None:
            return name, row[name]
    return None, None


def _maybe_json(value: Any, field: str) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON: {e.msg} at position {e.pos}", field=field) from None
    return value


def problem_from_row(row: dict, *, default_id: str) -> Problem:
    """One Problem from one row in any accepted layout; raises `DataError` naming the field."""
    metadata = _metadata_from_row(row)
    id_field, pid = _first(row, ID_FIELDS)
    prompt_field, prompt = _first(row, PROMPT_FIELDS)
    if prompt_field is None:
        raise DataError(f"no prompt (looked for {', '.join(PROMPT_FIELDS)})", field="prompt",
                        reason="missing_field")
    tests = tests_from_row(row, metadata)
    try:
        return Problem(pid if id_field else default_id, prompt, tests, metadata)
    except DataError as e:
        # Problem validates with the canonical field names; report the row's own column.
        field = e.field
        if field and prompt_field != "prompt" and field.startswith("prompt"):
            field = prompt_field + field[len("prompt"):]
        if field == "id" and id_field:
            field = id_field
        raise DataError(e.message, field=field, reason=e.reason) from None


def _metadata_from_row(row: dict) -> dict:
    meta = row.get("metadata")
    if meta is None:
        meta = {}
    elif isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta.strip() else {}
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON: {e.msg}", field="metadata", reason="bad_metadata") from None
    if not isinstance(meta, dict):
        raise DataError(f"metadata must be an object, got {type(meta).__name__}", field="metadata",
                        reason="bad_metadata")
    meta = dict(meta)
    for key, name in META_FIELDS.items():
        if row.get(key) is not None and name not in meta:
            meta[name] = row[key]
    return meta


def tests_from_row(row: dict, metadata: dict | None = None) -> dict:
    """The tracer tests object of a row, from whichever accepted field holds it."""
    metadata = metadata or {}
    if row.get("tests") is not None:
        return _tests_from_value(_maybe_json(row["tests"], "tests"), "tests", metadata)
    if row.get("reward_model") is not None:
        rm = _maybe_json(row["reward_model"], "reward_model")
        if not isinstance(rm, dict) or rm.get("ground_truth") is None:
            raise DataError("reward_model has no ground_truth", field="reward_model.ground_truth",
                            reason="missing_field")
        field = "reward_model.ground_truth"
        return _tests_from_value(_maybe_json(rm["ground_truth"], field), field, metadata)
    if row.get("input_output") is not None:
        return _tests_from_value(_maybe_json(row["input_output"], "input_output"), "input_output", metadata)
    if row.get("test") is not None:
        entry = row.get("entry_point")
        if not isinstance(entry, str):
            raise DataError("HumanEval-style 'test' needs an 'entry_point'", field="entry_point",
                            reason="missing_field")
        return check_tests({"style": "assert", "test": row["test"], "entry_point": entry}, "test")
    if row.get("test_list") is not None:
        return _mbpp_tests(row)
    if row.get("public_test_cases") is not None or row.get("private_test_cases") is not None:
        cases = []
        for field in ("public_test_cases", "private_test_cases"):
            value = _maybe_json(row.get(field) or [], field)
            if not isinstance(value, list):
                raise DataError(f"expected a list of test cases, got {type(value).__name__}", field=field)
            cases.extend(value)
        return _tests_from_value(cases, "public_test_cases", metadata)
    raise DataError("no tests (looked for tests, reward_model.ground_truth, input_output, test, test_list, "
                    "public_test_cases)", field="tests", reason="missing_field")


def _tests_from_value(value: Any, field: str, metadata: dict) -> dict:
    if isinstance(value, list):
        return _io_tests(_lcb_cases(value, field, metadata), field)
    if not isinstance(value, dict):
        raise DataError(f"tests must be an object, got {type(value).__name__}", field=field)
    if "style" in value and value["style"] in ("stdio", "call", "assert"):
        return check_tests(value, field)
    return _io_tests(value, field)


def _lcb_cases(cases: list, field: str, metadata: dict) -> dict:
    """LiveCodeBench cases [{"input", "output", "testtype"}] -> {"inputs", "outputs"[, "fn_name"]}."""
    out: dict[str, Any] = {"inputs": [], "outputs": []}
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or "input" not in case or "output" not in case:
            raise DataError("test case must be an object with 'input' and 'output'", field=f"{field}[{i}]")
        if case.get("testtype") == "functional":
            fn_name = metadata.get("func_name") or metadata.get("fn_name")
            if not fn_name:
                raise DataError("functional test cases need metadata.func_name", field=f"{field}[{i}]")
            out["fn_name"] = fn_name
        out["inputs"].append(case["input"])
        out["outputs"].append(case["output"])
    return out


def _io_tests(value: dict, field: str) -> dict:
    """APPS / PRIME / TACO {"inputs", "outputs"[, "fn_name"]} -> a tracer stdio or call tests object."""
    inputs, outputs = value.get("inputs"), value.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        missing = "inputs" if not isinstance(inputs, list) else "outputs"
        raise DataError(f"expected a list {missing!r}", field=f"{field}.{missing}")
    if len(inputs) != len(outputs):
        raise DataError(f"{len(inputs)} inputs but {len(outputs)} outputs", field=f"{field}.outputs")
    fn_name = value.get("fn_name") or value.get("func_name")
    if fn_name:
        args_list, expected = [], []
        for i, (args, out) in enumerate(zip(inputs, outputs)):
            if isinstance(args, str):  # LiveCodeBench: one JSON value per line, output JSON too
                args = [_maybe_json(line, f"{field}.inputs[{i}]") for line in args.splitlines() if line.strip()]
                out = _maybe_json(out, f"{field}.outputs[{i}]")
            args_list.append(args)
            expected.append(out)
        return check_tests({"style": "call", "fn_name": fn_name, "inputs": args_list, "outputs": expected}, field)
    return check_tests({"style": "stdio", "inputs": [_text(x) for x in inputs],
                        "outputs": [_text(x) for x in outputs]}, field)


def _text(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return "\n".join(value) + "\n"
    return value


_ASSERT_CALL = re.compile(r"assert\s+(?:not\s+)?\(?\s*(?:math\.isclose\(\s*|set\(\s*)?([A-Za-z_]\w*)\s*\(")


def _mbpp_tests(row: dict) -> dict:
    asserts = row["test_list"]
    if isinstance(asserts, str):
        asserts = [asserts]
    if not isinstance(asserts, list) or not asserts or not all(isinstance(a, str) for a in asserts):
        raise DataError("test_list must be a non-empty list of assert statements", field="test_list")
    entry = row.get("entry_point")
    if not entry:
        m = _ASSERT_CALL.search(asserts[0])
        if not m:
            raise DataError("cannot find the tested function in the first assert", field="test_list[0]")
        entry = m.group(1)
    setup = row.get("test_setup_code") or ""
    test = (setup.rstrip() + "\n\n" if setup.strip() else "") + "\n".join(asserts) + "\n"
    return check_tests({"style": "assert", "test": test, "entry_point": entry}, "test_list")


def write_jsonl(problems: list[Problem], path: str | os.PathLike) -> None:
    """Write problems in the canonical JSONL format."""
    with open(path, "w", encoding="utf-8") as f:
        for p in problems:
            f.write(p.to_json() + "\n")
