"""The tfds builder: problem files -> array_record, read back equal, rebuilt only on change."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from problem_files import STDIO, canonical_rows, verl_row, write_jsonl, write_parquet

from coderl_jax.data import DataError, Problem, read_problems
from coderl_jax.data.builder import MANIFEST, build_problem_dataset, open_split


@pytest.fixture
def sources(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", canonical_rows(7) + ["{broken"])
    test = write_parquet(tmp_path / "held_out.parquet",
                         [verl_row(i, json.dumps({"inputs": ["1\n"], "outputs": [f"{i}\n"]})) for i in range(3)])
    return str(train), str(test)


def _read_split(path, split):
    source = open_split(path, split)
    out = []
    for i in range(len(source)):
        ex = source[i]
        problem = Problem.from_json(ex["problem"])
        assert ex["id"].decode() == problem.id
        out.append(problem)
    return out


def test_build_and_read_back(tmp_path, sources):
    train, test = sources
    ds = build_problem_dataset(train, tmp_path / "tfds", test_path=test)
    assert ds.built and ds.splits == {"train": 7, "test": 3}
    assert ds.reports["train"].skipped == {"unreadable_row": 1} and ds.reports["test"].num_skipped == 0
    files = os.listdir(ds.path)
    assert any(".array_record" in f for f in files) and MANIFEST in files
    # records come back equal and in file order
    assert _read_split(ds.path, "train") == read_problems(train)[0]
    assert _read_split(ds.path, "test") == read_problems(test)[0]
    # the data_dir alone finds the one build in it
    assert [p.id for p in _read_split(tmp_path / "tfds", "test")] == ["held_out-0", "held_out-1", "held_out-2"]
    with pytest.raises(DataError, match="no split 'validation'"):
        open_split(ds.path, "validation")


def test_rebuild_only_when_source_changes(tmp_path, sources):
    train, _ = sources
    first = build_problem_dataset(train, tmp_path / "tfds")
    again = build_problem_dataset(train, tmp_path / "tfds")
    assert not again.built and again.path == first.path and again.reports == first.reports
    with open(train, "a") as f:
        f.write(json.dumps({"id": "new", "prompt": "p", "tests": STDIO}) + "\n")
    changed = build_problem_dataset(train, tmp_path / "tfds")
    assert changed.built and changed.path != first.path and changed.splits == {"train": 8}
    with pytest.raises(DataError, match="several prepared datasets"):
        open_split(tmp_path / "tfds", "train")


def test_build_options(tmp_path, sources, tokenizer):
    train, _ = sources
    with pytest.raises(DataError, match=r"train\.jsonl:8"):
        build_problem_dataset(train, tmp_path / "tfds", strict=True)
    varied = write_jsonl(tmp_path / "varied.jsonl", [{"id": f"v{n}", "prompt": "x" * n, "tests": STDIO}
                                                     for n in (1, 10, 20, 30)])
    limited = build_problem_dataset(varied, tmp_path / "tfds", tokenizer=tokenizer, max_prompt_tokens=35)  # 19 + len
    assert limited.splits == {"train": 2} and limited.reports["train"].skipped == {"prompt_too_long": 2}
    # another limit is another build; the same limit finds the first one again
    assert build_problem_dataset(varied, tmp_path / "tfds", tokenizer=tokenizer, max_prompt_tokens=50).built
    assert not build_problem_dataset(varied, tmp_path / "tfds", tokenizer=tokenizer, max_prompt_tokens=35).built
    with pytest.raises(DataError, match="no usable problems"):
        build_problem_dataset(varied, tmp_path / "tfds", tokenizer=tokenizer, max_prompt_tokens=5)
    with pytest.raises(DataError, match="no such file"):
        build_problem_dataset(tmp_path / "nope.jsonl", tmp_path / "tfds")


def test_no_tensorflow_needed(tmp_path, sources):
    """Build, read through tfds and iterate through grain in a fresh process: TensorFlow never loads."""
    train, _ = sources
    code = textwrap.dedent(f"""
        import sys
        from coderl_jax.data import make_problem_iterator
        it = make_problem_iterator({train!r}, data_dir={str(tmp_path / 'tfds')!r}, num_epochs=1,
                                   shard_index=0, shard_count=1)
        ids = sorted(p.id for p in it)
        assert ids == ["p%03d" % i for i in range(7)], ids
        assert "tensorflow" not in sys.modules
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]
