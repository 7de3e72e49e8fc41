"""Shared fixtures: one tracer pool, and small sample files in each benchmark's format."""

from __future__ import annotations

import pytest

from eval_samples import write_all


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory) -> dict:
    """{benchmark name: path} of small files written in each format."""
    return write_all(tmp_path_factory.mktemp("eval_data"))
