"""tracer.values: the typed JSON walker, its rendering and reconstruction."""

import ast
import collections
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracer.values import canonical_key, is_literal, render, serialize, to_python

REPO = Path(__file__).resolve().parents[2]


def roundtrip_json(typed):
    """The typed form must survive any JSON encoder, including ensure_ascii=False + UTF-8."""
    text = json.dumps(typed, ensure_ascii=False).encode("utf-8")
    back = json.loads(text.decode("utf-8"))
    assert back == typed
    return back


@pytest.mark.parametrize("value", [0, 1, -1, 7, 2**63, -(2**64) - 1, 10**4000, -(10**4200) + 3])
def test_ints_of_any_size_are_exact_decimal_strings(value):
    typed = serialize(value)
    assert typed == {"t": "int", "v": str(value)}
    assert to_python(roundtrip_json(typed)) == value
    assert ast.literal_eval(render(typed)) == value and is_literal(typed)


@pytest.mark.parametrize("exponent", [5000, 100_000])
def test_huge_int_is_summarised_not_converted(exponent):
    start = time.perf_counter()
    typed = serialize(-(10**exponent) - 7)
    assert time.perf_counter() - start < 2.0
    assert typed["t"] == "int" and typed["trunc"] is True and "v" not in typed
    assert typed["sign"] == -1 and typed["digits"] == exponent + 1 and typed["digits_exact"]
    assert typed["bits"] == (10**exponent + 7).bit_length()
    assert typed["tail"] == "00000000000000000007"
    assert not is_literal(typed) and f"{exponent + 1} digits" in render(typed)
    roundtrip_json(typed)


def test_int_respects_lowered_str_digit_limit():
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        typed = serialize(10**1000)  # str() would raise ValueError here
    finally:
        sys.set_int_max_str_digits(old)
    assert typed["trunc"] and typed["digits"] == 1001


def test_bool_is_not_int():
    assert serialize(True) == {"t": "bool", "v": True}
    assert serialize(1) != serialize(True)


@pytest.mark.parametrize("value, text, rendered", [
    (float("nan"), "nan", "float('nan')"),
    (float("inf"), "inf", "float('inf')"),
    (float("-inf"), "-inf", "-float('inf')"),
    (-0.0, "-0.0", "-0.0"),
    (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"),
    (1e300, "1e+300", "1e+300"),
])
def test_floats_exact(value, text, rendered):
    typed = serialize(value)
    assert typed == {"t": "float", "v": text}
    assert render(typed) == rendered
    back = to_python(roundtrip_json(typed))
    if math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value and math.copysign(1, back) == math.copysign(1, value)
    assert is_literal(typed) == math.isfinite(value)


def test_negative_zero_round_trips_through_literal():
    assert math.copysign(1, ast.literal_eval(render(serialize(-0.0)))) == -1


@pytest.mark.parametrize("value", ["plain", "a\x00b", "\ud800", "x\udfffy\x00", "é€😀", "quote'\"\\"])
def test_strings_with_nul_and_lone_surrogates_survive_json_and_literal(value):
    typed = serialize(value)
    back = roundtrip_json(typed)
    assert to_python(back) == value
    assert ast.literal_eval(render(back)) == value
    assert typed["len"] == len(value) and not typed["trunc"]


def test_bytes_and_bytearray():
    typed = serialize(b"\x00\xffab")
    assert to_python(roundtrip_json(typed)) == b"\x00\xffab"
    assert ast.literal_eval(render(typed)) == b"\x00\xffab" and is_literal(typed)
    ba = serialize(bytearray(b"hi"))
    assert ba["t"] == "bytearray" and render(ba) == "bytearray(b'hi')" and not is_literal(ba)
    assert to_python(ba) == bytearray(b"hi")


def test_truncation_of_long_str_bytes_and_containers():
    s = serialize("x" * 50, max_str=10)
    assert s["v"] == "x" * 10 and s["len"] == 50 and s["trunc"]
    assert render(s) == "'xxxxxxxxxx' + ..." and not is_literal(s)
    b = serialize(b"y" * 30, max_items=4)
    assert b["len"] == 30 and b["trunc"] and render(b) == "b'yyyy' + ..."
    lst = serialize(list(range(100)), max_items=3)
    assert lst["len"] == 100 and lst["trunc"] and len(lst["items"]) == 3
    assert render(lst) == "[0, 1, 2, ...]" and not is_literal(lst)
    d = serialize({i: i for i in range(10)}, max_items=2)
    assert d["len"] == 10 and len(d["items"]) == 2 and render(d) == "{0: 0, 1: 1, ...}"


def test_node_budget_bounds_work_on_wide_nested_values():
    wide = [[list(range(1000)) for _ in range(1000)] for _ in range(3)]
    start = time.perf_counter()
    typed = serialize(wide, max_nodes=5000)
    assert time.perf_counter() - start < 1.0
    assert json.dumps(typed).count('"t": "int"') < 5000
    assert not is_literal(typed)


def test_deep_nesting_no_recursion_error():
    value = []
    for _ in range(100_000):
        value = [value]
    typed = serialize(value, max_depth=32)
    node, depth = typed, 0
    while node["items"]:
        node, depth = node["items"][0], depth + 1
    assert depth == 32 and node["trunc"] and node.get("depth_cut") and node["len"] == 1
    assert render(typed).startswith("[[[") and not is_literal(typed)
    json.dumps(typed)


def test_cycles_become_references_to_the_ancestor():
    a = [1]
    a.append(a)
    typed = serialize(a)
    assert typed["items"][1] == {"t": "ref", "kind": "list", "depth": 0}
    assert render(typed) == "[1, [...]]"
    d = {"k": []}
    d["k"].append(d)
    typed = serialize(d)
    assert typed["items"][0][1]["items"][0] == {"t": "ref", "kind": "dict", "depth": 0}
    assert render(typed) == "{'k': [{...}]}"
    shared = [1]
    assert render(serialize([shared, shared])) == "[[1], [1]]"  # shared, not cyclic: no ref


def test_set_order_is_canonical_not_insertion_or_hash():
    assert render(serialize({10, 2, -1, 3.5})) == "{-1, 2, 3.5, 10}"
    assert render(serialize(frozenset({(2, "b"), (1, "z"), (1, "a")}))) == "frozenset({(1, 'a'), (1, 'z'), (2, 'b')})"
    assert render(serialize(set())) == "set()" and ast.literal_eval("set()") == set()
    big = serialize(set(range(5000)), max_items=10)
    assert [x["v"] for x in big["items"]] == [str(i) for i in range(10)] and big["trunc"]
    keys = [canonical_key(serialize(x)) for x in [True, 1.5, "a", (1,), None]]
    assert sorted(keys) == keys


_SEED_PROGRAM = """
import json, sys
sys.path.insert(0, {repo!r})
from tracer.values import serialize
words = {{"apple", "kiwi", "banana", "x" * 30, "y", "zz", "é"}}
pairs = frozenset((w, len(w)) for w in words)
print(json.dumps([serialize(words), serialize(pairs), serialize({{1.5, -2, 7}})]))
"""


def test_set_serialization_identical_under_different_hash_seeds():
    outs = []
    for seed in ("1", "12345"):
        proc = subprocess.run([sys.executable, "-c", _SEED_PROGRAM.format(repo=str(REPO))], capture_output=True,
                              text=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    # and the hash order itself really differs between the seeds for at least one of them
    orders = [subprocess.run([sys.executable, "-c", "print(list({'apple','kiwi','banana','y','zz'}))"],
                             capture_output=True, text=True, env={"PYTHONHASHSEED": s}).stdout for s in ("1", "12345")]
    assert orders[0] != orders[1]


class Hostile:
    """Every dunder the walker must never call raises or loops."""

    def __repr__(self):
        raise AssertionError("__repr__ called")

    def __str__(self):
        raise AssertionError("__str__ called")

    def __eq__(self, other):
        raise AssertionError("__eq__ called")

    def __hash__(self):
        raise AssertionError("__hash__ called")

    def __len__(self):
        while True:
            pass

    def __iter__(self):
        raise AssertionError("__iter__ called")

    def __lt__(self, other):
        raise AssertionError("__lt__ called")

    def __getattr__(self, name):
        raise AssertionError(f"attribute {name} read")


class HostileList(list):
    def __iter__(self):
        raise AssertionError("__iter__ called")

    def __len__(self):
        raise AssertionError("__len__ called")


class HostileDict(dict):
    def items(self):
        raise AssertionError("items called")

    def __iter__(self):
        raise AssertionError("__iter__ called")


class HostileInt(int):
    def __repr__(self):
        raise AssertionError("__repr__ called")

    __str__ = __repr__


def test_hostile_objects_are_opaque_and_never_called():
    h = Hostile()
    values = [h, HostileList([1, 2]), HostileDict(a=1), HostileInt(5), {"k": h}, [h, (h,)], {HostileInt(3)}]
    typed = serialize(values)
    text = render(typed)
    assert text.count("Hostile object>") == 4 and "HostileList object" in text and "HostileDict object" in text
    assert typed["items"][0] == {"t": "object", "type": "Hostile", "module": __name__}
    assert typed["items"][3]["type"] == "HostileInt"
    assert not is_literal(typed)
    json.dumps(typed)


def test_other_objects_are_opaque_with_type_name():
    import os
    for obj, name in [(os, "module"), (len, "builtin_function_or_method"), (lambda: 0, "function"), (int, "type"),
                      (range(3), "range"), (Ellipsis, "ellipsis")]:
        typed = serialize(obj)
        assert typed["t"] == "object" and typed["type"] == name


def test_stdlib_containers():
    counter = serialize(collections.Counter("aab"))
    assert counter["t"] == "dict" and counter["cls"] == "Counter" and render(counter) == "{'a': 2, 'b': 1}"
    assert to_python(counter) == collections.Counter("aab")
    dd = collections.defaultdict(list)
    dd["x"].append(1)
    assert render(serialize(dd)) == "{'x': [1]}"
    od = collections.OrderedDict([(1, 1), (2, 2)])
    od.move_to_end(1)
    assert render(serialize(od)) == "{2: 2, 1: 1}"
    dq = serialize(collections.deque([1, 2]))
    assert render(dq) == "deque([1, 2])" and to_python(dq) == collections.deque([1, 2]) and not is_literal(dq)


def _random_value(rng, depth=0):
    scalars = [lambda: rng.randint(-10**30, 10**30), lambda: rng.choice([0, 1, -1, 7]),
               lambda: rng.uniform(-1e6, 1e6), lambda: rng.choice([0.0, -0.0, 1e-310, 1.5e300]),
               lambda: rng.choice([True, False, None]),
               lambda: "".join(rng.choice("ab'\"\\\n\x00é\ud800😀") for _ in range(rng.randint(0, 6))),
               lambda: bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 4))),
               lambda: complex(rng.randint(1, 5), rng.randint(1, 5))]
    hashables = scalars[:5] + [lambda: "k" + str(rng.randint(0, 99))]
    if depth > 3 or rng.random() < 0.4:
        return rng.choice(scalars)()
    kind = rng.choice(["list", "tuple", "dict", "set"])
    n = rng.randint(0, 4)
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(n)]
    if kind == "tuple":
        return tuple(_random_value(rng, depth + 1) for _ in range(n))
    if kind == "set":
        return {rng.choice(hashables)() for _ in range(n)}
    return {rng.choice(hashables)(): _random_value(rng, depth + 1) for _ in range(n)}


def test_render_literal_eval_round_trip_on_generated_values():
    rng = random.Random(1234)
    checked = 0
    for _ in range(500):
        value = _random_value(rng)
        typed = serialize(value)
        assert is_literal(typed), render(typed)
        back = ast.literal_eval(render(typed))
        # exact type-and-value equality (1 vs 1.0 vs True, -0.0, tuple vs list) via the typed form
        assert serialize(back) == typed
        assert serialize(to_python(roundtrip_json(typed))) == typed
        checked += 1
    assert checked == 500
