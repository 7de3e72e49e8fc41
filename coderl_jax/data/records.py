"""The problem record, its validation, and the report that readers fill in.

A `Problem` is one coding task: an `id`, a `prompt` (plain text, or chat messages
``[{"role": ..., "content": ...}, ...]``), a `tests` object in one of the tracer's three styles,
and free-form `metadata` (source, difficulty, starter code, ...). The tests object is exactly the
tracer's contract (docs/tracer.md):

    {"style": "stdio",  "inputs": [str, ...], "outputs": [str, ...]}
    {"style": "call",   "fn_name": str, "inputs": [[arg, ...] | {kw: arg}, ...], "outputs": [value, ...]}
    {"style": "assert", "test": str, "entry_point": str}

Every check raises `DataError`, which names the place (file, row, field) so that a person can
open the file at that row. Readers catch it per row, count it in a `ReadReport` and move on
(or re-raise in strict mode).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any, Sequence

from coderl_jax.errors import UserError

TEST_STYLES = ("stdio", "call", "assert")
CHAT_ROLES = ("system", "user", "assistant", "tool")

# Reasons a row is rejected; ReadReport.skipped counts rows per reason.
REASONS = (
    "unreadable_row",   # not valid JSON / not an object
    "missing_field",    # no prompt or no tests under any accepted name
    "bad_prompt",       # prompt of the wrong type or malformed chat messages
    "empty_prompt",     # prompt (or every message content) is blank
    "bad_tests",        # tests missing pieces, wrong types, unparsable JSON
    "prompt_too_long",  # rendered prompt longer than the token limit
    "duplicate_id",     # an id seen earlier in the same file
    "bad_metadata",     # metadata that is not a JSON object
)
# Whole-file and pipeline errors (raised, never counted): "unreadable_file", "bad_state".


class DataError(UserError, ValueError):
    """Bad input data, located: ``path:row:field: message`` (row is None for whole-file errors)."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 field: str | None = None, reason: str = "bad_tests"):
        self.message, self.path, self.row, self.field, self.reason = message, path, row, field, reason
        super().__init__(f"{self.where}: {message}" if self.where else message)

    @property
    def where(self) -> str:
        parts = [self.path or "<input>"] if (self.path or self.row is not None or self.field) else []
        if self.row is not None:
            parts.append(str(self.row))
        if self.field:
            parts.append(self.field)
        return ":".join(parts)

    def located(self, path: str | None = None, row: int | None = None) -> "DataError":
        """The same error with the file and row filled in (those already set are kept)."""
        return DataError(self.message, path=self.path or path, row=self.row if self.row is not None else row,
                         field=self.field, reason=self.reason)


@dataclasses.dataclass
class Problem:
    id: str
    prompt: str | list[dict[str, str]]
    tests: dict[str, Any]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.id = _check_id(self.id)
        self.prompt = check_prompt(self.prompt)
        self.tests = _as_json(check_tests(self.tests), "tests", "bad_tests")
        if not isinstance(self.metadata, dict):
            raise DataError(f"metadata must be a JSON object, got {type(self.metadata).__name__}",
                            field="metadata", reason="bad_metadata")
        self.metadata = _as_json(self.metadata, "metadata", "bad_metadata")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "tests": self.tests, "metadata": self.metadata}

    def to_json(self) -> str:
        """Canonical JSONL line (no newline); `Problem.from_json` inverts it exactly."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Problem":
        d = json.loads(text)
        return cls(d["id"], d["prompt"], d["tests"], d.get("metadata") or {})


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):  # datetime / date / time, e.g. parquet timestamp columns
        return value.isoformat()
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _as_json(value: Any, field: str, reason: str) -> Any:
    """`value` as plain JSON data (tuples become lists, dates ISO strings): what a round trip
    through `Problem.to_json` gives back, so stored and re-read problems compare equal."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, default=_json_default))
    except (TypeError, ValueError, RecursionError) as e:
        raise DataError(f"not JSON-serialisable: {e}", field=field, reason=reason) from None


def _check_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"id must be a string or an integer, got {type(value).__name__}",
                        field="id", reason="missing_field")
    value = str(value)
    if not value.strip():
        raise DataError("id is empty", field="id", reason="missing_field")
    return value


def check_prompt(prompt: Any, field: str = "prompt") -> str | list[dict[str, str]]:
    """A non-empty string, or a non-empty list of {"role", "content"} messages with string values."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError("prompt is empty", field=field, reason="empty_prompt")
        return prompt
    if not isinstance(prompt, (list, tuple)):
        raise DataError(f"prompt must be a string or a list of chat messages, got {type(prompt).__name__}",
                        field=field, reason="bad_prompt")
    if not prompt:
        raise DataError("prompt has no messages", field=field, reason="empty_prompt")
    messages = []
    for i, m in enumerate(prompt):
        where = f"{field}[{i}]"
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError("chat message must be an object with 'role' and 'content'", field=where,
                            reason="bad_prompt")
        if m["role"] not in CHAT_ROLES:
            raise DataError(f"unknown role {m['role']!r} (expected one of {', '.join(CHAT_ROLES)})",
                            field=f"{where}.role", reason="bad_prompt")
        if not isinstance(m["content"], str):
            raise DataError(f"content must be a string, got {type(m['content']).__name__}",
                            field=f"{where}.content", reason="bad_prompt")
        messages.append({"role": m["role"], "content": m["content"]})
    if not any(m["content"].strip() for m in messages if m["role"] != "system"):
        raise DataError("every non-system message is empty", field=field, reason="empty_prompt")
    return messages


def check_tests(tests: Any, field: str = "tests") -> dict[str, Any]:
    """Validate a tracer tests object and return a clean copy holding only the contract's keys."""
    if not isinstance(tests, dict):
        raise DataError(f"tests must be an object, got {type(tests).__name__}", field=field)
    style = tests.get("style")
    if style not in TEST_STYLES:
        raise DataError(f"tests.style must be one of {', '.join(TEST_STYLES)}, got {style!r}",
                        field=f"{field}.style")
    if style == "assert":
        out = {"style": "assert"}
        for key in ("test", "entry_point"):
            if not isinstance(tests.get(key), str):
                raise DataError(f"assert-style tests need a string {key!r}", field=f"{field}.{key}")
            out[key] = tests[key]
        if not out["test"].strip():
            raise DataError("assert-style test code is empty", field=f"{field}.test")
        return out
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    for key, value in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(value, list):
            raise DataError(f"{style}-style tests need a list {key!r}, got {type(value).__name__}",
                            field=f"{field}.{key}")
    if not inputs:
        raise DataError("no test cases", field=f"{field}.inputs")
    if len(inputs) != len(outputs):
        raise DataError(f"{len(inputs)} inputs but {len(outputs)} outputs", field=f"{field}.outputs")
    if style == "stdio":
        for key, values in (("inputs", inputs), ("outputs", outputs)):
            for i, v in enumerate(values):
                if not isinstance(v, str):
                    raise DataError(f"stdio test {key} must be strings, got {type(v).__name__}",
                                    field=f"{field}.{key}[{i}]")
        return {"style": "stdio", "inputs": list(inputs), "outputs": list(outputs)}
    fn_name = tests.get("fn_name")
    if not isinstance(fn_name, str) or not fn_name.isidentifier():
        raise DataError(f"call-style tests need fn_name, a Python identifier; got {fn_name!r}",
                        field=f"{field}.fn_name")
    for i, args in enumerate(inputs):
        if not isinstance(args, (list, tuple, dict)):
            raise DataError(f"call arguments must be a list (positional) or an object (keywords), "
                            f"got {type(args).__name__}", field=f"{field}.inputs[{i}]")
    return {"style": "call", "fn_name": fn_name, "inputs": list(inputs), "outputs": list(outputs)}


@dataclasses.dataclass
class ReadReport:
    """What a reader kept and skipped. `examples` holds the first few errors as ``path:row:field: msg``."""

    path: str = ""
    rows: int = 0
    kept: int = 0
    skipped: Counter = dataclasses.field(default_factory=Counter)
    examples: list[str] = dataclasses.field(default_factory=list)
    max_examples: int = 5

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def add_error(self, err: DataError) -> None:
        self.skipped[err.reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(err))

    def merge(self, other: "ReadReport") -> "ReadReport":
        out = ReadReport(", ".join(p for p in (self.path, other.path) if p), self.rows + other.rows,
                         self.kept + other.kept, self.skipped + other.skipped, max_examples=self.max_examples)
        out.examples = (self.examples + other.examples)[: self.max_examples]
        return out

    def summary(self) -> str:
        line = f"{self.path or '<input>'}: {self.rows} rows, kept {self.kept}, skipped {self.num_skipped}"
        if self.skipped:
            line += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) + ")"
        return "\n  ".join([line, *self.examples])

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "kept": self.kept, "skipped": dict(self.skipped),
                "examples": list(self.examples), "max_examples": self.max_examples}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReadReport":
        return cls(d["path"], d["rows"], d["kept"], Counter(d["skipped"]), list(d["examples"]),
                   d.get("max_examples", 5))


RECORD_INPUTS = ("first", "shortest")


def shortest_first(inputs: Sequence) -> list[int]:
    """The indices of test inputs from the shortest rendering to the longest (stable for equals)."""
    return sorted(range(len(inputs)), key=lambda i: len(inputs[i] if isinstance(inputs[i], str) else repr(inputs[i])))


def record_input_index(inputs: Sequence, rule: str = "first") -> int:
    """Which test input a record runs on: the first (the official rule), or with "shortest" the
    one with the shortest rendering (the first of equals), whose values are the smallest to state."""
    if rule not in RECORD_INPUTS:
        raise ValueError(f"record input rule must be one of {RECORD_INPUTS}, got {rule!r}")
    return shortest_first(inputs)[0] if rule == "shortest" and inputs else 0
