"""Shared fixtures for the sandbox / service tests (the values, compare and tracing tests need none)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def layers(pool) -> dict:
    return pool.sandbox
