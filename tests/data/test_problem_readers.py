"""JSONL and verl/PRIME parquet readers: every accepted layout, bad rows, strict mode, length limit."""

import json

import pytest
from problem_files import ASSERT, CALL, STDIO, canonical_rows, verl_row, write_jsonl, write_parquet

from coderl_jax.data import DataError, read_problems


def test_canonical_jsonl(jsonl_file):
    problems, report = read_problems(jsonl_file)
    assert [p.to_dict() for p in problems] == canonical_rows(6)
    assert (report.rows, report.kept, report.num_skipped) == (6, 6, 0)


def test_jsonl_aliases(tmp_path):
    rows = [
        # HumanEval
        {"task_id": "HumanEval/0", "prompt": "def add(a, b):\n", "test": ASSERT["test"], "entry_point": "add"},
        # MBPP
        {"task_id": 11, "text": "Add two numbers.", "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
         "test_setup_code": "import math"},
        # APPS / TACO
        {"problem_id": "apps-1", "question": "Read two ints.", "difficulty": "interview",
         "input_output": json.dumps({"inputs": [["1 2"], "3 4\n"], "outputs": ["3\n", ["7"]]})},
        # LiveCodeBench functional + stdin cases
        {"question_id": "lcb-1", "question_content": "Add.", "starter_code": "class Solution: ...",
         "metadata": json.dumps({"func_name": "add"}),
         "public_test_cases": json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}]),
         "private_test_cases": json.dumps([{"input": "[1]\n[2]", "output": "[1, 2]", "testtype": "functional"}])},
        {"question_id": "lcb-2", "question_content": "Echo.",
         "public_test_cases": [{"input": "5\n", "output": "5\n", "testtype": "stdin"}]},
        # verl row in JSONL, ground truth as an object
        {"id": "v", **verl_row(0, {k: CALL[k] for k in ("inputs", "outputs", "fn_name")})},
    ]
    problems, report = read_problems(write_jsonl(tmp_path / "aliases.jsonl", rows))
    assert report.num_skipped == 0, report.summary()
    by_id = {p.id: p for p in problems}
    assert by_id["HumanEval/0"].tests == ASSERT
    mbpp = by_id["11"].tests
    assert mbpp == {"style": "assert", "entry_point": "add",
                    "test": "import math\n\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n"}
    assert by_id["11"].prompt == "Add two numbers."
    assert by_id["apps-1"].tests == {"style": "stdio", "inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
    assert by_id["apps-1"].metadata == {"difficulty": "interview"}
    assert by_id["lcb-1"].tests == {"style": "call", "fn_name": "add", "inputs": [[1, 2], [[1], [2]]],
                                    "outputs": [3, [1, 2]]}
    assert by_id["lcb-1"].metadata == {"func_name": "add", "starter_code": "class Solution: ..."}
    assert by_id["lcb-2"].tests == {"style": "stdio", "inputs": ["5\n"], "outputs": ["5\n"]}
    assert by_id["v"].tests == CALL and by_id["v"].metadata["source"] == "codecontests"


def test_verl_parquet(tmp_path):
    rows = [
        verl_row(0, json.dumps({"inputs": STDIO["inputs"], "outputs": STDIO["outputs"]})),
        verl_row(1, json.dumps({"inputs": CALL["inputs"], "outputs": CALL["outputs"], "fn_name": "add"}),
                 source="leetcode"),
        verl_row(2, json.dumps(ASSERT)),
        # PRIME / LiveCodeBench: call style with the arguments as JSON text
        verl_row(3, json.dumps({"inputs": ["1\n2", "3\n4"], "outputs": ["3", "7"], "fn_name": "add"})),
    ]
    path = write_parquet(tmp_path / "train.parquet", rows)
    problems, report = read_problems(path)
    assert report.kept == 4 and report.num_skipped == 0
    assert [p.tests for p in problems] == [STDIO, CALL, ASSERT, CALL]
    assert [p.id for p in problems] == ["train-0", "train-1", "train-2", "train-3"]
    p = problems[1]
    assert p.prompt == rows[1]["prompt"]
    assert p.metadata == {"source": "leetcode", "ability": "code", "extra_info": {"split": "train", "index": 1}}


def _bad_rows():
    good = canonical_rows(1)[0]
    return [
        good,                                                          # line 1: fine
        "{not json",                                                   # 2 unreadable_row
        "[1, 2]",                                                      # 3 unreadable_row
        {"id": "a", "tests": STDIO},                                   # 4 missing_field prompt
        {"id": "b", "prompt": "  ", "tests": STDIO},                   # 5 empty_prompt
        {"id": "c", "prompt": [{"role": "user", "content": 1}], "tests": STDIO},  # 6 bad_prompt
        {"id": "d", "prompt": "x"},                                    # 7 missing_field tests
        {"id": "e", "prompt": "x", "tests": "{oops"},                  # 8 bad_tests (unparsable)
        {"id": "f", "prompt": "x", "reward_model": {"ground_truth": "{\"inputs\": [\"1\"]}"}},  # 9 bad_tests
        {**good},                                                      # 10 duplicate_id
        {"id": "g", "prompt": "x", "tests": STDIO, "metadata": [1]},   # 11 bad_metadata
        {"id": "h", "prompt": "x", "tests": CALL},                     # 12 fine
    ]


def test_bad_rows_are_counted_and_located(tmp_path):
    path = str(write_jsonl(tmp_path / "bad.jsonl", _bad_rows()))
    problems, report = read_problems(path, max_examples=20)
    assert [p.id for p in problems] == ["p000", "h"]
    assert report.rows == 12 and report.kept == 2
    assert dict(report.skipped) == {"unreadable_row": 2, "missing_field": 2, "empty_prompt": 1, "bad_prompt": 1,
                                    "bad_tests": 2, "duplicate_id": 1, "bad_metadata": 1}
    assert report.examples[0].startswith(f"{path}:2: invalid JSON")
    expected_prefixes = [f"{path}:4:prompt:", f"{path}:5:prompt:", f"{path}:6:prompt[0].content:",
                         f"{path}:7:tests:", f"{path}:8:tests:", f"{path}:9:reward_model.ground_truth.outputs:",
                         f"{path}:10:id:", f"{path}:11:metadata:"]
    for prefix, example in zip(expected_prefixes, report.examples[2:]):
        assert example.startswith(prefix), (prefix, example)
    # the default keeps only the first few examples but every count
    _, short = read_problems(path)
    assert len(short.examples) == 5 and short.skipped == report.skipped


def test_strict_mode_raises_at_first_bad_row(tmp_path):
    path = str(write_jsonl(tmp_path / "bad.jsonl", _bad_rows()))
    with pytest.raises(DataError) as e:
        read_problems(path, strict=True)
    assert (e.value.path, e.value.row, e.value.reason) == (path, 2, "unreadable_row")


def test_bad_parquet_rows(tmp_path):
    rows = [verl_row(0, json.dumps({"inputs": ["1"], "outputs": ["1"]})),
            verl_row(1, "{not json"),
            verl_row(2, json.dumps({"inputs": ["1"], "outputs": ["1"]}), content="   ")]
    path = str(write_parquet(tmp_path / "bad.parquet", rows))
    problems, report = read_problems(path)
    assert len(problems) == 1
    assert report.examples[0].startswith(f"{path}:1:reward_model.ground_truth: not valid JSON")
    assert report.examples[1].startswith(f"{path}:2:prompt: ")
    with pytest.raises(DataError, match=r"bad\.parquet:1:reward_model\.ground_truth"):
        read_problems(path, strict=True)


def test_prompt_length_limit(tmp_path, tokenizer):
    rows = [{"id": "short", "prompt": "hi", "tests": STDIO}, {"id": "long", "prompt": "x" * 50, "tests": STDIO}]
    path = str(write_jsonl(tmp_path / "len.jsonl", rows))
    problems, report = read_problems(path, tokenizer=tokenizer, max_prompt_tokens=21)  # "hi" renders to 21
    assert [p.id for p in problems] == ["short"] and report.skipped == {"prompt_too_long": 1}
    assert report.examples[0].startswith(f"{path}:2:prompt: prompt has 69 tokens, over the limit of 21")
    problems, _ = read_problems(path, tokenizer=tokenizer, max_prompt_tokens=21, system="S")
    assert problems == []
    with pytest.raises(ValueError, match="needs a tokenizer"):
        read_problems(path, max_prompt_tokens=10)


def test_whole_file_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_problems(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown file type"):
        read_problems(tmp_path / "x.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot open parquet"):
        read_problems(tmp_path / "broken.parquet")


def test_iter_jsonl_rows_arrays_gzip_and_bad_rows(tmp_path):
    import gzip

    from coderl_jax.data.readers import iter_jsonl

    path = write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}, "", "{oops", "[1]", {"b": 2}])
    with pytest.raises(DataError) as e:
        list(iter_jsonl(path))
    assert (e.value.path, e.value.row, e.value.reason) == (str(path), 3, "unreadable_row")
    seen = []
    assert list(iter_jsonl(path, on_bad_row=seen.append)) == [(1, {"a": 1}), (5, {"b": 2})]
    assert [(err.row, err.message.split(":")[0]) for err in seen] == [(3, "invalid JSON"),
                                                                       (4, "row is a JSON list, expected an object")]
    with gzip.open(tmp_path / "rows.jsonl.gz", "wt") as f:
        f.write('\n[{"a": 1},\n {"b": 2}]\n')  # one JSON array: items from 0
    assert list(iter_jsonl(tmp_path / "rows.jsonl.gz")) == [(0, {"a": 1}), (1, {"b": 2})]
    (tmp_path / "latin1.jsonl").write_bytes(b'{"a": 1}\n{"b": "\xe9"}\n')
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not UTF-8"):
        list(iter_jsonl(tmp_path / "latin1.jsonl"))


def test_training_and_evaluation_read_a_bad_row_alike(tmp_path):
    """The same broken file gives the same located error whether the trainer's reader (strict) or
    a benchmark loader reads it."""
    from coderl_jax.eval.benchmarks import load_benchmark

    path = str(write_jsonl(tmp_path / "bad.jsonl", ["", "{oops", canonical_rows(1)[0]]))
    errors = []
    for read in (lambda: read_problems(path, strict=True), lambda: load_benchmark("problems", path),
                 lambda: load_benchmark("cruxeval_o", path)):
        with pytest.raises(DataError) as e:
            read()
        errors.append(str(e.value))
    assert errors == [f"{path}:2: invalid JSON: Expecting property name enclosed in double quotes at column 2"] * 3
