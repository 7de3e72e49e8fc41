"""Problem data: records, readers (JSONL, verl/PRIME parquet), chat templates, a tfds
array_record builder, a checkpointable grain pipeline and the embedded task suite (`suite`).

Importing this package is cheap; tensorflow-datasets and grain load on first use of the
builder or pipeline names.
"""

from coderl_jax.data.chat import count_prompt_tokens, prompt_messages, render_prompt
from coderl_jax.data.readers import problem_from_row, read_problems, tests_from_row, write_jsonl
from coderl_jax.data.records import DataError, Problem, ReadReport, check_prompt, check_tests

_LAZY = {
    "CoderlProblems": "coderl_jax.data.builder",
    "ProblemDataset": "coderl_jax.data.builder",
    "build_problem_dataset": "coderl_jax.data.builder",
    "open_split": "coderl_jax.data.builder",
    "ProblemIterator": "coderl_jax.data.pipeline",
    "make_problem_iterator": "coderl_jax.data.pipeline",
    "build_suite_dataset": "coderl_jax.data.suite",
    "generate_suite": "coderl_jax.data.suite",
    "write_suite": "coderl_jax.data.suite",
}

__all__ = ["DataError", "Problem", "ReadReport", "check_prompt", "check_tests", "count_prompt_tokens",
           "problem_from_row", "prompt_messages", "read_problems", "render_prompt", "tests_from_row",
           "write_jsonl", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
