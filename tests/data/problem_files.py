"""Helpers for tests/data: small problem files in each accepted layout."""

import json

STDIO = {"style": "stdio", "inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
CALL = {"style": "call", "fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [3, 7]}
ASSERT = {"style": "assert", "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
          "entry_point": "add"}


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def verl_row(i, ground_truth, content=None, source="codecontests"):
    """One row as verl's data_preprocess scripts and PRIME's Eurus-2-RL-Data write it."""
    return {
        "data_source": source,
        "prompt": [{"role": "system", "content": "You are a coder."},
                   {"role": "user", "content": f"Solve problem {i}." if content is None else content}],
        "ability": "code",
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": {"split": "train", "index": i},
    }


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def canonical_rows(n):
    styles = [STDIO, CALL, ASSERT]
    return [{"id": f"p{i:03d}", "prompt": f"Problem {i}: add two numbers.", "tests": styles[i % 3],
             "metadata": {"difficulty": "easy", "n": i}} for i in range(n)]
