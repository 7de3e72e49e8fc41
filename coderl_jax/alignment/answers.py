"""Parsing the policy's answer: the JSON object on the last line, and where each value sits.

Rules (the official code's, made precise): the answer is the last non-empty line of the response,
after dropping trailing lines that are only a code fence (```), so an answer wrapped in a
```json block counts. It must be a JSON object holding both "final_output" and "variables", the
latter an object; anything else is no answer. Predictions are parsed, never executed.

`parse_answer` also returns the character span of every predicted value in the response, which
spans.py turns into token masks (per-variable credit).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")
_FENCE_LINE = re.compile(r"^\s*```\s*$")


@dataclasses.dataclass(frozen=True)
class Answer:
    final_output: Any
    variables: dict[str, Any]
    line_start: int  # character offset of the answer line in the response
    output_span: tuple[int, int]  # [start, end) of the final_output value in the response
    variable_spans: dict[str, tuple[int, int]]  # name -> [start, end) of its predicted value


def _skip_ws(s: str, i: int) -> int:
    return _WS.match(s, i).end()


def object_spans(s: str, i: int = 0) -> tuple[dict[str, tuple[int, int]], int]:
    """Spans of the values of the JSON object starting at s[i] == "{": ({key: (start, end)}, end).
    Raises ValueError on malformed input. For a repeated key the last one wins (as json.loads)."""
    if i >= len(s) or s[i] != "{":
        raise ValueError("not an object")
    spans: dict[str, tuple[int, int]] = {}
    i = _skip_ws(s, i + 1)
    if s.startswith("}", i):
        return spans, i + 1
    while True:
        key, i = _DECODER.raw_decode(s, i)
        if not isinstance(key, str):
            raise ValueError("object key is not a string")
        i = _skip_ws(s, i)
        if not s.startswith(":", i):
            raise ValueError("expected ':'")
        start = _skip_ws(s, i + 1)
        _, end = _DECODER.raw_decode(s, start)
        spans[key] = (start, end)
        i = _skip_ws(s, end)
        if s.startswith(",", i):
            i = _skip_ws(s, i + 1)
        elif s.startswith("}", i):
            return spans, i + 1
        else:
            raise ValueError("expected ',' or '}'")


def answer_line_bounds(response: str) -> tuple[int, int] | None:
    """[start, end) of the answer line: the last non-empty line that is not a bare code fence."""
    end = len(response)
    while True:
        stripped_end = len(response[:end].rstrip())
        if stripped_end == 0:
            return None
        start = response.rfind("\n", 0, stripped_end) + 1
        line = response[start:stripped_end]
        if _FENCE_LINE.match(line):
            end = start
            continue
        return start, stripped_end


def parse_answer(response: str) -> Answer | None:
    """The answer on the response's last line, or None when there is no valid one."""
    bounds = answer_line_bounds(response)
    if bounds is None:
        return None
    start, end = bounds
    lead = _skip_ws(response, start)
    line = response[lead:end]
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(obj, dict) and "final_output" in obj and isinstance(obj.get("variables"), dict)):
        return None
    try:
        top, _ = object_spans(response, lead)
        var_spans, _ = object_spans(response, top["variables"][0])
    except (ValueError, KeyError, RecursionError):  # json.loads accepted it, so this is not expected
        return None
    return Answer(final_output=obj["final_output"], variables=obj["variables"], line_start=start,
                  output_span=top["final_output"], variable_spans=var_spans)
