"""Compare a model's predicted value with the traced true value.

Predictions are *parsed, never executed*: ``parse_prediction`` accepts only
literal syntax (what ``ast.literal_eval`` accepts, plus ``float('nan')`` /
``float('inf')`` / ``-float('inf')``, ``frozenset({...})``, ``set()`` and
``deque([...])``, so every ``render`` output of a complete value parses back),
checks a size cap on the text and a depth / node cap on the syntax tree before
building anything, and builds the value itself from the checked tree. So
``0 or True``, ``x or True``, ``__import__('os').system('x')`` or
``[1] * 10**9`` are parse failures, i.e. no match.

Two modes (docs/tracer-values.md has the tables):

- ``strict``: the typed forms must agree: bool != int, tuple != list,
  int 1 != float 1.0, set != frozenset, dict key order ignored, floats equal by
  ``repr`` (so nan == nan and 0.0 != -0.0) or, with ``float_tol``, within that
  *relative* tolerance (``math.isclose(a, b, rel_tol=float_tol, abs_tol=0)``).
  A true value with a cut, cycle or opaque object never matches.
- ``lenient``: the paper's official rule: None ~ the strings "null" / "None",
  True ~ 1 (Python equality), numbers within an absolute 1e-9, lists (and
  tuples) and dicts element by element, then ``str(pred) == str(true)``.
"""

from __future__ import annotations

import ast
import collections
import json
import math
from typing import Any

from tracer.values import Typed, Unrepresentable, is_complete, serialize, to_python

__all__ = ["parse_prediction", "compare", "compare_value", "typed_equal", "lenient_equal"]

MAX_PREDICTION_CHARS = 100_000
MAX_PREDICTION_DEPTH = 100
MAX_PREDICTION_NODES = 20_000
LENIENT_ABS_TOL = 1e-9
_NULL_TEXTS = ("null", "None")
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "+inf": math.inf,
                   "infinity": math.inf, "-infinity": -math.inf, "+infinity": math.inf}
_NO_LIMIT = dict(max_depth=MAX_PREDICTION_DEPTH + 1, max_items=MAX_PREDICTION_NODES,
                 max_str=MAX_PREDICTION_CHARS, max_nodes=MAX_PREDICTION_NODES * 4)


class _Reject(Exception):
    pass


def _check_tree(tree: ast.AST, max_depth: int, max_nodes: int) -> None:
    """Iteratively check node count and nesting depth before anything is built."""
    stack = [(tree, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes or depth > max_depth:
            raise _Reject
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _build(node: ast.AST) -> Any:
    """Value of a checked literal tree (depth is bounded by _check_tree, so recursion is fine)."""
    if isinstance(node, ast.Constant):
        if node.value is Ellipsis:
            raise _Reject
        return node.value
    if isinstance(node, ast.List):
        return [_build(x) for x in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_build(x) for x in node.elts)
    if isinstance(node, ast.Set):
        return {_build(x) for x in node.elts}
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):  # {**x}
            raise _Reject
        return {_build(k): _build(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _build(node.operand)
        if type(operand) not in (int, float, complex):
            raise _Reject
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        # literal_eval's only binary operation: real +/- imaginary (complex literals like 1+2j)
        left, right = _build(node.left), _build(node.right)
        if type(left) not in (int, float) or type(right) is not complex:
            raise _Reject
        return left + right if isinstance(node.op, ast.Add) else left - right
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name, args = node.func.id, node.args
        if name == "float" and len(args) == 1 and isinstance(args[0], ast.Constant) and type(args[0].value) is str:
            key = args[0].value.strip().lower()
            if key in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[key]
        if name in ("set", "frozenset", "deque") and len(args) <= 1:
            inner = _build(args[0]) if args else ()
            want = (list,) if name == "deque" else (set, frozenset) if name == "frozenset" else ()
            if args and type(inner) not in want + (tuple, list, set):
                raise _Reject
            return {"set": set, "frozenset": frozenset, "deque": collections.deque}[name](inner)
    raise _Reject


def parse_prediction(text: str, *, max_chars: int = MAX_PREDICTION_CHARS, max_depth: int = MAX_PREDICTION_DEPTH,
                     max_nodes: int = MAX_PREDICTION_NODES) -> tuple[bool, Any]:
    """Parse predicted text as a literal value. Returns ``(True, value)`` or ``(False, None)``.

    Never executes anything; rejects text over ``max_chars`` characters, trees deeper than
    ``max_depth`` or larger than ``max_nodes``, and anything that is not literal syntax.
    """
    if type(text) is not str or len(text) > max_chars:
        return False, None
    try:
        tree = ast.parse(text.strip(), mode="eval")
        _check_tree(tree, max_depth + 1, max_nodes)
        return True, _build(tree.body)
    except (_Reject, SyntaxError, ValueError, TypeError, MemoryError, RecursionError, OverflowError):
        return False, None


def _float_equal(a: str, b: str, float_tol: float | None) -> bool:
    if a == b:  # repr equality: exact, nan == nan, 0.0 != -0.0
        return True
    if float_tol is None:
        return False
    x, y = float(a), float(b)
    return math.isclose(x, y, rel_tol=float_tol, abs_tol=0.0)


def _key_text(typed: Typed) -> str:
    return json.dumps(typed, sort_keys=True)


def typed_equal(pred: Typed, true: Typed, *, float_tol: float | None = None) -> bool:
    """Strict structural equality of two typed values (see module docstring)."""
    t = true["t"]
    if true.get("trunc") or t in ("ref", "object") or pred.get("trunc") or pred["t"] != t:
        return False
    if t in ("none",):
        return True
    if t in ("bool", "int"):
        return pred["v"] == true["v"]
    if t == "float":
        return _float_equal(pred["v"], true["v"], float_tol)
    if t == "complex":
        return _float_equal(pred["re"], true["re"], float_tol) and _float_equal(pred["im"], true["im"], float_tol)
    if t == "str":
        return pred["v"] == true["v"] and pred.get("enc") == true.get("enc")
    if t in ("bytes", "bytearray"):
        return pred["hex"] == true["hex"]
    if len(pred["items"]) != len(true["items"]):
        return False
    if t == "dict":  # order-insensitive, keys matched exactly
        pred_by_key = {_key_text(k): v for k, v in pred["items"]}
        for k, v in true["items"]:
            other = pred_by_key.get(_key_text(k))
            if other is None or not typed_equal(other, v, float_tol=float_tol):
                return False
        return True
    # sequences in order; sets in canonical order (both sides sorted by the same key)
    return all(typed_equal(p, q, float_tol=float_tol) for p, q in zip(pred["items"], true["items"]))


def _is_null(x: Any) -> bool:
    return x is None or (type(x) is str and x.strip() in _NULL_TEXTS)


def _safe_str(x: Any) -> str | None:
    try:
        return str(x).strip()
    except (ValueError, RecursionError):
        return None


def lenient_equal(pred: Any, true: Any, _depth: int = 0) -> bool:
    """The paper's lenient equality on Python values (``true`` from ``to_python``)."""
    if _depth > MAX_PREDICTION_DEPTH or isinstance(true, Unrepresentable):
        return False
    if _is_null(pred) or _is_null(true):
        return _is_null(pred) and _is_null(true)
    numbers = (bool, int, float)
    if type(pred) in numbers and type(true) in numbers:
        try:
            if abs(float(pred) - float(true)) <= LENIENT_ABS_TOL:
                return True
        except OverflowError:
            if pred == true:
                return True
    elif type(pred) in (list, tuple) and type(true) in (list, tuple):
        return len(pred) == len(true) and all(lenient_equal(p, q, _depth + 1) for p, q in zip(pred, true))
    elif isinstance(pred, dict) and isinstance(true, dict):
        # JSON keys are strings: match keys by str() (an int key 1 matches "1")
        pred_by_key = {_safe_str(k): v for k, v in pred.items()}
        true_by_key = {_safe_str(k): v for k, v in true.items()}
        if len(pred_by_key) != len(pred) or len(true_by_key) != len(true) or pred_by_key.keys() != true_by_key.keys():
            return False
        return all(lenient_equal(pred_by_key[k], v, _depth + 1) for k, v in true_by_key.items())
    elif type(pred) in (set, frozenset) and type(true) in (set, frozenset):
        if pred == true:
            return True
    a, b = _safe_str(pred), _safe_str(true)
    return a is not None and a == b


def compare_value(pred: Any, true_value: Typed, *, mode: str = "strict", float_tol: float | None = None) -> bool:
    """Compare an already-parsed predicted value (e.g. from the model's JSON answer) with a typed
    true value. In strict mode a *string* prediction is the string value (it is not parsed again);
    use ``compare`` for predicted text."""
    if mode == "strict":
        return typed_equal(serialize(pred, **_NO_LIMIT), true_value, float_tol=float_tol)
    if mode == "lenient":
        if not is_complete(true_value):
            return False
        if type(pred) is str:  # a JSON answer may hold the Python literal text as a string
            ok, parsed = parse_prediction(pred)
            if ok and lenient_equal(parsed, to_python(true_value)):
                return True
        return lenient_equal(pred, to_python(true_value))
    raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")


def compare(predicted_text: str, true_value: Typed, *, mode: str = "strict", float_tol: float | None = None) -> bool:
    """Does the predicted text denote the true value? Text that does not parse as a literal never
    matches in strict mode; in lenient mode it is compared as a string (the paper's str() rule)."""
    if type(predicted_text) is not str or len(predicted_text) > MAX_PREDICTION_CHARS:
        return False
    ok, value = parse_prediction(predicted_text)
    if mode == "strict":
        return ok and typed_equal(serialize(value, **_NO_LIMIT), true_value, float_tol=float_tol)
    if mode == "lenient":
        if not is_complete(true_value):
            return False
        return lenient_equal(value if ok else predicted_text.strip(), to_python(true_value))
    raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
