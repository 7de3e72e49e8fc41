"""Fixtures for tests/data."""

import pytest
from problem_files import canonical_rows, write_jsonl


@pytest.fixture
def jsonl_file(tmp_path):
    return str(write_jsonl(tmp_path / "problems.jsonl", canonical_rows(6)))


@pytest.fixture(scope="session")
def tokenizer():
    from coderl_jax.models.tiny import byte_tokenizer

    return byte_tokenizer()
