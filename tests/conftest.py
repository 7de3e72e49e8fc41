"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pool():
    """One sandboxed tracer pool (2 workers) for the whole session; a zygote that misbehaves in a
    hostile test is replaced by the pool itself."""
    from tracer.pool import TracerPool

    with TracerPool(workers=2) as p:
        yield p
