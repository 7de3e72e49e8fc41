"""Supervisor-side output checks for the stdio and call test styles (expected values live here only).

stdio: both texts are split into lines, trailing whitespace is stripped from every
line and trailing empty lines are dropped; the line counts must be equal. Two
lines match if they are equal, or if they have the same number of
whitespace-separated tokens and every token pair is equal as text or, when both
parse as numbers, equal as numbers: integers exactly, anything with a decimal
point or exponent within ``FLOAT_TOL`` (absolute or relative: |a-b| <= 1e-6 *
max(1, |b|)).

call: the program's return value arrives in JSON form (tuples as lists, dict keys
as strings, see ``harness.to_plain``) and must equal the expected JSON value:
bool only equals bool, None only None, ints exactly, floats within ``FLOAT_TOL``,
lists element-wise with equal lengths, dicts with equal key sets.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

FLOAT_TOL = 1e-6
_INT = re.compile(r"[+-]?\d+\Z")
_NUM = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_MAX_DEPTH = 200


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= FLOAT_TOL * max(1.0, abs(b))


def _token_equal(got: str, want: str) -> bool:
    if got == want:
        return True
    if _INT.match(got) and _INT.match(want):
        return int(got) == int(want) if max(len(got), len(want)) < 4000 else got.lstrip("+0") == want.lstrip("+0")
    if _NUM.match(got) and _NUM.match(want):
        try:
            return _close(float(got), float(want))
        except OverflowError:
            return False
    return False


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def stdout_matches(got: str, want: str) -> bool:
    g, w = _lines(got), _lines(want)
    if len(g) != len(w):
        return False
    for a, b in zip(g, w):
        if a != b:
            ta, tb = a.split(), b.split()
            if len(ta) != len(tb) or not all(_token_equal(x, y) for x, y in zip(ta, tb)):
                return False
    return True


def _key(k: Any) -> str:
    return k if isinstance(k, str) else json.dumps(k)


def value_matches(got: Any, want: Any, _depth: int = 0) -> bool:
    if _depth > _MAX_DEPTH:
        return False
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is bool and type(want) is bool and got == want
    if want is None or got is None:
        return got is None and want is None
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if isinstance(want, int) and isinstance(got, int):
            return got == want
        try:
            return _close(float(got), float(want))
        except OverflowError:
            return False
    if isinstance(want, str):
        return isinstance(got, str) and got == want
    if isinstance(want, (list, tuple)):
        return (isinstance(got, list) and len(got) == len(want)
                and all(value_matches(a, b, _depth + 1) for a, b in zip(got, want)))
    if isinstance(want, dict):
        if not isinstance(got, dict) or len(got) != len(want):
            return False
        want_n = {_key(k): v for k, v in want.items()}
        return want_n.keys() == got.keys() and all(value_matches(got[k], want_n[k], _depth + 1) for k in got)
    return False
