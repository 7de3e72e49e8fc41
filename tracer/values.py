"""The tracer's value walker: runtime values -> canonical typed JSON, and back.

``serialize`` turns any Python object into a JSON-safe tree of dicts, lists,
str, bool and None (the *typed form*, documented in docs/tracer-values.md).
It is safe on hostile objects: it dispatches on exact types (``type(x) is
int``), walks builtin containers with the builtin methods only, and never calls
a user-defined ``__repr__``, ``__str__``, ``__eq__``, ``__hash__``, ``__len__``,
``__iter__`` or ``__lt__``. Anything that is not an exact builtin (or one of
four stdlib containers) is an opaque ``{"t": "object", "type": ...}``; that
includes subclasses of builtins, whose overridden methods could run user code.
The walk is iterative (no recursion, so 10**5-deep nesting is fine) and bounded
by depth, items per container, characters per string, digits per int and
nodes in total.

``render`` turns the typed form into the Python-literal text the model reads
and writes; ``is_literal`` says whether that text parses back (with
``ast.literal_eval``) to an equal value. ``to_python`` rebuilds builtin values.
Standard library only.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
from typing import Any

__all__ = ["serialize", "render", "is_literal", "is_complete", "to_python", "canonical_key", "Unrepresentable"]

Typed = dict[str, Any]

# Python 3.11 refuses str() of ints longer than 4300 digits (sys.int_info.default_max_str_digits);
# we keep the same default so a value the program could print is never truncated by us.
DEFAULT_MAX_INT_DIGITS = 4300
_LOG10_2 = math.log10(2.0)
_INT_TAIL_DIGITS = 20
_EXACT_DIGITS_MAX_BITS = 1 << 20  # above this, the digit count of a huge int is log-based (approximate)

_SEQ_KINDS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset", collections.deque: "deque"}
_DICT_CLASSES = {
    dict: None,
    collections.OrderedDict: "OrderedDict",
    collections.defaultdict: "defaultdict",
    collections.Counter: "Counter",
}
_REF_RENDER = {"list": "[...]", "deque": "deque([...])", "tuple": "(...)", "set": "{...}",
               "frozenset": "frozenset({...})", "dict": "{...}"}


def _type_name(tp: type) -> tuple[str, str]:
    """(module, qualname) of a type, read from the type object's C slots (no user code)."""
    qualname = type.__dict__["__qualname__"].__get__(tp, type)
    module = type.__dict__["__module__"].__get__(tp, type)
    return (module if type(module) is str else "?"), (qualname if type(qualname) is str else "?")


def _int_typed(x: int, max_digits: int) -> Typed:
    bits = x.bit_length()
    if bits * _LOG10_2 < max_digits - 1:
        try:
            return {"t": "int", "v": int.__repr__(x)}
        except ValueError:  # the program lowered sys.set_int_max_str_digits
            pass
    mag = -x if x < 0 else x
    digits = int(math.log10(mag)) + 1  # math.log10 works on ints of any size
    exact = bits <= _EXACT_DIGITS_MAX_BITS
    if exact:  # log10 can be off by one next to a power of ten: fix it
        low = 10 ** (digits - 1)
        if mag < low:
            digits -= 1
        elif mag >= low * 10:
            digits += 1
    tail = int.__repr__(mag % 10**_INT_TAIL_DIGITS).rjust(_INT_TAIL_DIGITS, "0")
    return {"t": "int", "trunc": True, "sign": -1 if x < 0 else 1, "bits": bits, "digits": digits,
            "digits_exact": exact, "tail": tail}


def _str_typed(s: str, max_str: int) -> Typed:
    n = len(s)
    cut = s[:max_str] if n > max_str else s
    out: Typed = {"t": "str", "v": cut, "len": n, "trunc": n > max_str}
    if not cut.isascii():
        try:
            cut.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: keep the typed form valid Unicode for any JSON encoder
            out["v"] = cut.encode("unicode_escape").decode("ascii")
            out["enc"] = "unicode_escape"
    return out


def _bytes_typed(b: bytes | bytearray, max_items: int, kind: str) -> Typed:
    n = len(b)
    return {"t": kind, "hex": bytes(b[:max_items]).hex(), "len": n, "trunc": n > max_items}


def _opaque(x: object) -> Typed:
    module, qualname = _type_name(type(x))
    return {"t": "object", "type": qualname, "module": module}


class _Leave:
    """Stack marker: a container's children are done (pop it from the path, sort sets)."""


def serialize(obj: object, *, max_depth: int = 32, max_items: int = 1000, max_str: int = 10_000,
              max_int_digits: int = DEFAULT_MAX_INT_DIGITS, max_nodes: int = 100_000) -> Typed:
    """Return the canonical typed JSON form of ``obj`` (see module and docs/tracer-values.md).

    Limits: containers nested deeper than ``max_depth`` keep their length but no items; a container
    keeps at most ``max_items`` items (sets: the first ``max_items`` in canonical order), a str or
    bytes its first ``max_str`` / ``max_items`` characters / bytes, an int at most
    ``max_int_digits`` digits (beyond: sign, bit length, digit count, last 20 digits), and the whole
    value at most ``max_nodes`` nodes. Every cut sets ``"trunc": true`` on the node it happened in.
    Never raises on any input and never runs user code.
    """
    budget = max_nodes - 1  # nodes still allowed below the root
    root: list[Any] = [None]
    stack: list[tuple] = [(obj, root, 0, 0)]
    on_path: dict[int, int] = {}  # id(container) -> depth, for the containers enclosing the current node
    while stack:
        value, slot, index, depth = stack.pop()
        if value is _Leave:  # (marker, id, node, is_set)
            del on_path[slot]
            if depth:
                node = index
                items = node["items"]
                items.sort(key=canonical_key)
                if len(items) > max_items:
                    del items[max_items:]
                    node["trunc"] = True
            continue
        tp = type(value)
        if value is None:
            slot[index] = {"t": "none"}
        elif tp is bool:
            slot[index] = {"t": "bool", "v": value}
        elif tp is int:
            slot[index] = _int_typed(value, max_int_digits)
        elif tp is float:
            slot[index] = {"t": "float", "v": float.__repr__(value)}
        elif tp is str:
            slot[index] = _str_typed(value, max_str)
        elif tp is complex:
            slot[index] = {"t": "complex", "re": float.__repr__(value.real), "im": float.__repr__(value.imag)}
        elif tp is bytes or tp is bytearray:
            slot[index] = _bytes_typed(value, max_items, tp.__name__)
        elif tp in _SEQ_KINDS or tp in _DICT_CLASSES:
            vid = id(value)
            is_dict = tp in _DICT_CLASSES
            kind = "dict" if is_dict else _SEQ_KINDS[tp]
            if vid in on_path:
                slot[index] = {"t": "ref", "kind": kind, "depth": on_path[vid]}
                continue
            n = len(value)  # exact builtin / stdlib type: C-level length
            node: Typed = {"t": kind, "len": n, "items": [], "trunc": False}
            if is_dict and _DICT_CLASSES[tp]:
                node["cls"] = _DICT_CLASSES[tp]
            slot[index] = node
            if n == 0:
                continue
            if depth >= max_depth:
                node["trunc"] = True
                node["depth_cut"] = True
                continue
            is_set = kind in ("set", "frozenset")
            per_item = 2 if is_dict else 1
            # sets take every element the budget allows, so the kept ones are the canonical first
            take = min(n, budget // per_item) if is_set else min(n, max_items, budget // per_item)
            budget -= take * per_item
            if take < n:
                node["trunc"] = True
            on_path[vid] = depth
            stack.append((_Leave, vid, node, is_set))
            items = node["items"]
            children = []
            if is_dict:
                for key, val in itertools.islice(tp.items(value), take):  # stdlib items(): no user code
                    pair: list[Any] = [None, None]
                    items.append(pair)
                    children.append((key, pair, 0, depth + 1))
                    children.append((val, pair, 1, depth + 1))
            else:
                items.extend([None] * take)
                for i, val in enumerate(itertools.islice(value, take)):
                    children.append((val, items, i, depth + 1))
            children.reverse()
            stack.extend(children)
        else:
            slot[index] = _opaque(value)
    return root[0]


def canonical_key(typed: Typed) -> tuple:
    """Total order on typed values used for set elements: numbers by value (bools first), then
    strings, then tuples element-wise, then anything else by its sorted-key JSON text. Depends only
    on the values, never on hash order or user ``__lt__``."""
    t = typed.get("t")
    if t == "bool":
        return (0, 0, int(typed["v"]))
    if t == "int" and "v" in typed:
        try:
            return (1, 0, int(typed["v"]))
        except ValueError:
            pass
    if t == "float":
        f = float(typed["v"])
        return (1, 1, 0.0) if math.isnan(f) else (1, 0, f)
    if t == "str" and "enc" not in typed:
        return (2, typed["v"])
    if t == "tuple" and not typed["trunc"]:
        return (3, tuple(canonical_key(x) for x in typed["items"]))
    return (9, json.dumps(typed, sort_keys=True))


def _float_text(v: str) -> str:
    if v == "nan":
        return "float('nan')"
    if v in ("inf", "-inf"):
        return ("-" if v[0] == "-" else "") + "float('inf')"
    return v


def _str_value(typed: Typed) -> str:
    v = typed["v"]
    return v.encode("ascii").decode("unicode_escape") if typed.get("enc") == "unicode_escape" else v


def _int_placeholder(typed: Typed) -> str:
    about = "" if typed.get("digits_exact", True) else "~"
    sign = "negative " if typed["sign"] < 0 else ""
    return f"<{sign}int: {about}{typed['digits']} digits, ...{typed['tail']}>"


def render(typed: Typed) -> str:
    """Python-literal text of a typed value (what the model reads and writes).

    Exact for literals (``ast.literal_eval(render(t)) == to_python(t)`` when ``is_literal(t)``).
    Otherwise: nan / inf -> ``float('nan')`` / ``float('inf')`` / ``-float('inf')``; frozenset ->
    ``frozenset({...})``; deque -> ``deque([...])``; bytearray -> ``bytearray(b'...')``; a cut
    container ends with ``...`` (``[1, 2, ...]``, a depth-cut one is ``[...]``); a cut str / bytes
    is ``'abc' + ...``; a cycle back to an enclosing container is ``[...]`` / ``{...}`` as in
    Python's own repr; a huge int is ``<int: 100001 digits, ...00000000000000000000>``; any other
    object is ``<module.Type object>``.
    """
    t = typed["t"]
    if t == "none":
        return "None"
    if t == "bool":
        return "True" if typed["v"] else "False"
    if t == "int":
        return _int_placeholder(typed) if typed.get("trunc") else typed["v"]
    if t == "float":
        return _float_text(typed["v"])
    if t == "complex":
        re, im = float(typed["re"]), float(typed["im"])
        if math.isfinite(re) and math.isfinite(im):
            return complex.__repr__(complex(re, im))
        return f"complex({_float_text(typed['re'])}, {_float_text(typed['im'])})"
    if t == "str":
        return str.__repr__(_str_value(typed)) + (" + ..." if typed["trunc"] else "")
    if t in ("bytes", "bytearray"):
        text = bytes.__repr__(bytes.fromhex(typed["hex"])) + (" + ..." if typed["trunc"] else "")
        return f"bytearray({text})" if t == "bytearray" else text
    if t == "ref":
        return _REF_RENDER[typed["kind"]]
    if t == "object":
        return f"<{typed['module']}.{typed['type']} object>"
    items, cut = typed["items"], typed["trunc"]
    if t == "dict":
        parts = [f"{render(k)}: {render(v)}" for k, v in items]
        body = ", ".join(parts + (["..."] if cut else []))
        return "{" + body + "}"
    parts = [render(x) for x in items] + (["..."] if cut else [])
    body = ", ".join(parts)
    if t == "list":
        return "[" + body + "]"
    if t == "deque":
        return "deque([" + body + "])"
    if t == "tuple":
        return "(" + body + ("," if len(parts) == 1 and not cut else "") + ")"
    if t == "set":
        return "{" + body + "}" if parts else "set()"
    if t == "frozenset":
        return "frozenset({" + body + "})" if parts else "frozenset()"
    raise ValueError(f"unknown typed value kind {t!r}")


def is_literal(typed: Typed) -> bool:
    """True when ``render(typed)`` parses with ``ast.literal_eval`` back to an equal value: no cut,
    no cycle, no opaque object, no nan/inf, no frozenset / deque / bytearray anywhere inside."""
    t = typed["t"]
    if t in ("none", "bool"):
        return True
    if t == "int":
        return not typed.get("trunc")
    if t == "float":
        return math.isfinite(float(typed["v"]))
    if t == "complex":
        re, im = float(typed["re"]), float(typed["im"])
        return math.isfinite(re) and math.isfinite(im) and math.copysign(1, re) > 0 and math.copysign(1, im) > 0
    if t in ("str", "bytes"):
        return not typed["trunc"]
    if t in ("list", "tuple", "set", "dict"):
        if typed["trunc"]:
            return False
        if t == "dict":
            return all(is_literal(k) and is_literal(v) for k, v in typed["items"])
        return all(is_literal(x) for x in typed["items"])
    return False  # ref, object, frozenset, deque, bytearray


def is_complete(typed: Typed) -> bool:
    """True when nothing inside was cut, and there is no cycle and no opaque object: the typed form
    then determines the value (``to_python`` rebuilds it exactly)."""
    stack = [typed]
    while stack:
        node = stack.pop()
        if node.get("trunc") or node["t"] in ("ref", "object"):
            return False
        if node["t"] == "dict":
            for k, v in node["items"]:
                stack += (k, v)
        elif "items" in node:
            stack.extend(node["items"])
    return True


class Unrepresentable:
    """Stands for a value ``to_python`` cannot rebuild (cut, cycle, opaque); equal to nothing."""

    __slots__ = ("typed",)

    def __init__(self, typed: Typed):
        self.typed = typed

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return render(self.typed)


def _has_cut(typed: Typed) -> bool:
    return bool(typed.get("trunc")) or typed["t"] in ("ref", "object")


def to_python(typed: Typed) -> Any:
    """Rebuild the builtin value (OrderedDict / defaultdict(None) / Counter / deque for those
    classes). A cut, cyclic or opaque node becomes an ``Unrepresentable``."""
    t = typed["t"]
    if _has_cut(typed):
        return Unrepresentable(typed)
    if t == "none":
        return None
    if t == "bool":
        return bool(typed["v"])
    if t == "int":
        return int(typed["v"])
    if t == "float":
        return float(typed["v"])
    if t == "complex":
        return complex(float(typed["re"]), float(typed["im"]))
    if t == "str":
        return _str_value(typed)
    if t in ("bytes", "bytearray"):
        data = bytes.fromhex(typed["hex"])
        return bytearray(data) if t == "bytearray" else data
    if t == "dict":
        pairs = [(to_python(k), to_python(v)) for k, v in typed["items"]]
        cls = typed.get("cls")
        if cls == "defaultdict":
            return collections.defaultdict(None, pairs)
        if cls == "Counter":
            return collections.Counter(dict(pairs))
        return collections.OrderedDict(pairs) if cls == "OrderedDict" else dict(pairs)
    items = [to_python(x) for x in typed["items"]]
    if t == "list":
        return items
    if t == "tuple":
        return tuple(items)
    if t == "deque":
        return collections.deque(items)
    if t == "set":
        return set(items)
    if t == "frozenset":
        return frozenset(items)
    raise ValueError(f"unknown typed value kind {t!r}")
