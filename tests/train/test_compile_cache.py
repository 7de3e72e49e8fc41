"""`compile_cache_dir`: a run's compiled programs go to the directory its config names."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import jax, jax.numpy as jnp
from coderl_jax.train.loop import use_compile_cache
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
use_compile_cache({directory!r})
print(jax.jit(lambda x: jnp.sin(x) * 3 + 1)(jnp.arange(5.0)).sum())
"""


def test_the_configured_directory_receives_the_compiled_program(tmp_path):
    target = tmp_path / "xla"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(directory=str(target))], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert target.is_dir() and any(target.iterdir())
