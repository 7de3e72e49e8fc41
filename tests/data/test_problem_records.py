"""Problem records: validation of the three tracer test styles, JSON round trip, error locations."""

import pytest
from problem_files import ASSERT, CALL, STDIO

from coderl_jax.data import DataError, Problem, ReadReport, check_tests


@pytest.mark.parametrize("tests", [STDIO, CALL, ASSERT])
def test_round_trip_each_style(tests):
    p = Problem("x1", [{"role": "user", "content": "hi"}], tests, {"source": "unit"})
    assert Problem.from_json(p.to_json()) == p
    assert p.tests == tests


def test_call_style_accepts_keyword_arguments():
    t = check_tests({"style": "call", "fn_name": "f", "inputs": [{"a": 1}], "outputs": [2], "extra": 1})
    assert t == {"style": "call", "fn_name": "f", "inputs": [{"a": 1}], "outputs": [2]}


@pytest.mark.parametrize("tests, field", [
    ({"style": "unit"}, "tests.style"),
    ({"style": "stdio", "inputs": ["1"], "outputs": []}, "tests.outputs"),
    ({"style": "stdio", "inputs": [], "outputs": []}, "tests.inputs"),
    ({"style": "stdio", "inputs": [1], "outputs": ["1"]}, "tests.inputs[0]"),
    ({"style": "call", "fn_name": "not a name", "inputs": [[1]], "outputs": [1]}, "tests.fn_name"),
    ({"style": "call", "fn_name": "f", "inputs": [1], "outputs": [1]}, "tests.inputs[0]"),
    ({"style": "assert", "test": "", "entry_point": "f"}, "tests.test"),
    ({"style": "assert", "test": "assert 1"}, "tests.entry_point"),
    ("stdio", "tests"),
])
def test_bad_tests_name_the_field(tests, field):
    with pytest.raises(DataError) as e:
        check_tests(tests)
    assert e.value.field == field and e.value.reason == "bad_tests"


@pytest.mark.parametrize("prompt, reason", [
    ("   ", "empty_prompt"), ([], "empty_prompt"), (3, "bad_prompt"),
    ([{"role": "user"}], "bad_prompt"), ([{"role": "robot", "content": "x"}], "bad_prompt"),
    ([{"role": "system", "content": "sys"}, {"role": "user", "content": " "}], "empty_prompt"),
])
def test_bad_prompts(prompt, reason):
    with pytest.raises(DataError) as e:
        Problem("a", prompt, STDIO)
    assert e.value.reason == reason


def test_error_text_and_report():
    err = DataError("boom", field="tests.fn_name").located("f.parquet", 7)
    assert str(err) == "f.parquet:7:tests.fn_name: boom"
    report = ReadReport("f.parquet", max_examples=1)
    report.add_error(err)
    report.add_error(DataError("again", reason="empty_prompt").located("f.parquet", 9))
    assert report.num_skipped == 2 and report.examples == [str(err)]
    assert ReadReport.from_dict(report.to_dict()) == report
    assert "bad_tests: 1" in report.summary() and "empty_prompt: 1" in report.summary()


def test_values_are_normalised_to_json():
    import datetime

    p = Problem("a", "x", {"style": "call", "fn_name": "f", "inputs": [(1, 2)], "outputs": [(3,)]},
                {"contest_date": datetime.date(2024, 5, 1)})
    assert p.tests["inputs"] == [[1, 2]] and p.metadata == {"contest_date": "2024-05-01"}
    assert Problem.from_json(p.to_json()) == p
    with pytest.raises(DataError) as e:
        Problem("a", "x", STDIO, {"obj": object()})
    assert (e.value.field, e.value.reason) == ("metadata", "bad_metadata")
