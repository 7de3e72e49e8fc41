"""tracer.compare: guarded parsing of predictions and strict / lenient matching."""

import collections
import math
import time

import pytest

from tracer.compare import compare, compare_value, lenient_equal, parse_prediction
from tracer.values import serialize

S = serialize


@pytest.mark.parametrize("text, true, strict, lenient", [
    ("1", 1, True, True),
    ("True", 1, False, True),          # bool != int strictly; True ~ 1 leniently
    ("1", True, False, True),
    ("1.0", 1, False, True),           # int 1 != float 1.0 strictly
    ("1", 1.0, False, True),
    ("(1, 2)", [1, 2], False, True),   # tuple != list strictly
    ("[1, 2]", (1, 2), False, True),
    ("[1, 2]", [1, 2], True, True),
    ("[1, 2]", [2, 1], False, False),
    ("None", None, True, True),
    ("null", None, False, True),       # "null" ~ None leniently (unparsable text compared as text)
    ("'null'", None, False, True),
    ("None", "None", False, True),
    ("0.30000000000000004", 0.1 + 0.2, True, True),
    ("0.3", 0.1 + 0.2, False, True),   # within 1e-9 leniently, not the same repr
    ("0.31", 0.3, False, False),
    ("float('nan')", math.nan, True, True),
    ("float('inf')", math.inf, True, True),
    ("-float('inf')", math.inf, False, False),
    ("-0.0", 0.0, False, True),
    ("{'a': [1, (2, 3)]}", {"a": [1, (2, 3)]}, True, True),
    ("{'a': [1, [2, 3]]}", {"a": [1, (2, 3)]}, False, True),
    ("{'b': 2, 'a': 1}", {"a": 1, "b": 2}, True, True),   # dict order ignored
    ("{'1': 2}", {1: 2}, False, True),                    # JSON-style string keys, leniently
    ("{1, 2, 3}", {3, 2, 1}, True, True),
    ("frozenset({1, 2})", frozenset({1, 2}), True, True),
    ("{1, 2}", frozenset({1, 2}), False, True),
    ("set()", set(), True, True),
    ("'abc'", "abc", True, True),
    ("abc", "abc", False, True),
    ("'a\\x00\\ud800'", "a\x00\ud800", True, True),
    ("b'\\x00'", b"\x00", True, True),
    ("12345678901234567890123", 12345678901234567890123, True, True),
    ("(1+2j)", 1 + 2j, True, True),
    ("[[1], [2]]", [[1], [2, 3]], False, False),
])
def test_strict_and_lenient_table(text, true, strict, lenient):
    assert compare(text, S(true), mode="strict") is strict
    assert compare(text, S(true), mode="lenient") is lenient


def test_strict_float_tolerance_is_relative():
    assert not compare("1.0000001", S(1.0))
    assert compare("1.0000001", S(1.0), float_tol=1e-6)
    assert not compare("1.00001", S(1.0), float_tol=1e-6)
    assert compare("[1e-20]", S([1.0000001e-20]), float_tol=1e-6)  # relative, not absolute
    assert not compare("1", S(1.0), float_tol=1e-6)  # tolerance never makes int equal float


@pytest.mark.parametrize("text", [
    "0 or True", "x or True", "True if x else True", "__import__('os').system('touch /tmp/pwned_by_tracer')",
    "[1] * 10**9", "10**100000", "2 ** 10", "(lambda: 1)()", "f'{1}'", "{**{}}", "[*range(3)]", "...",
    "open('/etc/passwd').read()", "float('1e5')", "1 + 2", "not False", "a", "", "   ", "(1,", "{[1]: 2}", "{[1]}",
])
def test_hostile_or_non_literal_predictions_fail(text):
    start = time.perf_counter()
    ok, _ = parse_prediction(text)
    assert not ok
    assert not compare(text, S(True)) and not compare(text, S(1))
    assert not compare(text, S(True), mode="lenient")
    assert time.perf_counter() - start < 0.5


def test_predictions_are_never_executed(tmp_path):
    marker = tmp_path / "ran"
    text = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    assert not compare(text, S(None)) and not compare(text, S(None), mode="lenient")
    assert not marker.exists()


@pytest.mark.parametrize("text", [
    "(" * 100_000 + "1" + ")" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    "-" * 100_000 + "1",
    "[" * 150 + "]" * 150,          # parses, but deeper than the depth cap
    "1" * 10_000,                   # over Python's int digit limit
    "'" + "a" * 10_000_000 + "'",   # 10 MB
    "[" + "1," * 60_000 + "]",      # too many nodes
])
def test_oversized_predictions_fail_quickly(text):
    start = time.perf_counter()
    assert parse_prediction(text) == (False, None)
    assert not compare(text, S(1), mode="lenient")
    assert time.perf_counter() - start < 1.0


def test_parse_prediction_values_and_types():
    assert parse_prediction(" [1, (2,), {3}, {'a': None}] ") == (True, [1, (2,), {3}, {"a": None}])
    ok, value = parse_prediction("float('nan')")
    assert ok and math.isnan(value)
    assert parse_prediction("-float('inf')") == (True, -math.inf)
    assert parse_prediction("deque([1, 2])") == (True, collections.deque([1, 2]))
    assert parse_prediction("-5") == (True, -5) and parse_prediction("+5") == (True, 5)
    assert parse_prediction("-'a'") == (False, None)


def test_compare_value_json_ish_answers():
    # the model answers in a JSON object, so values arrive already parsed
    assert compare_value([1, 2], S([1, 2]))
    assert not compare_value([1, 2], S((1, 2)))
    assert compare_value([1, 2], S((1, 2)), mode="lenient")
    assert compare_value(None, S(None), mode="lenient") and compare_value("null", S(None), mode="lenient")
    assert compare_value({"1": "a"}, S({1: "a"}), mode="lenient")
    assert compare_value("[1, 2]", S([1, 2]), mode="lenient")  # a literal given as a JSON string
    assert not compare_value("[1, 2]", S([1, 2]))                # strictly a string is a string
    assert compare_value(3.0000000001, S(3), mode="lenient") and not compare_value(3.0000000001, S(3))
    deep = []
    for _ in range(5000):
        deep = [deep]
    assert not compare_value(deep, S([]), mode="lenient") and not compare_value(deep, S([]))
    with pytest.raises(ValueError):
        compare_value(1, S(1), mode="fuzzy")


def test_cut_or_opaque_true_values_never_match():
    assert not compare("[0, 1, 2]", serialize(list(range(5)), max_items=3))
    assert not compare("'aaa'", serialize("aaaa", max_str=3))
    a = [1]
    a.append(a)
    assert not compare("[1, [1]]", serialize(a)) and not compare("[1, [...]]", serialize(a), mode="lenient")
    assert not compare("None", serialize(object())) and not compare("None", serialize(object()), mode="lenient")
    assert not compare("1" + "0" * 100, serialize(10**100, max_int_digits=50))


def test_lenient_equal_matches_reference_rules():
    assert lenient_equal(None, "null") and lenient_equal("None", None) and not lenient_equal(None, 0)
    assert lenient_equal(True, 1) and lenient_equal(1, 1.0 + 5e-10) and not lenient_equal(1, 1.0 + 5e-9)
    assert lenient_equal([1, [2, {"a": 3}]], [1, [2, {"a": 3.0}]])
    assert not lenient_equal({"a": 1}, {"a": 1, "b": 2})
    assert lenient_equal("5", 5)            # str() fallback
    assert lenient_equal(math.nan, math.nan)  # via str(): 'nan' == 'nan'
