"""The `coderl` entry point's process settings: where XLA's persistent compilation cache goes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("from coderl_jax.cli import enable_compile_cache; got = enable_compile_cache(); import jax; "
         "print(repr(got), repr(jax.config.jax_compilation_cache_dir))")


def _probe(**env) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("CODERL_COMPILE_CACHE", "CODERL_CACHE")}
    full.update(env, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("env,expected", [
    ({"CODERL_COMPILE_CACHE": "/tmp/xla_here"}, "/tmp/xla_here"),
    ({"CODERL_CACHE": "/tmp/coderl_cache"}, "/tmp/coderl_cache/xla"),
    ({"CODERL_COMPILE_CACHE": "0"}, None),
])
def test_compile_cache_location(env, expected):
    got, configured = _probe(**env).split(" ", 1)
    assert got == repr(expected) and configured == repr(expected)
