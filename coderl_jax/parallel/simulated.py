"""Run a pytest file on N simulated CPU devices, in a fresh process.

XLA_FLAGS=--xla_force_host_platform_device_count=N must be set before JAX starts, so tests of the
sharded code paths (tests/parallel, tests/rl) put their multi-device cases in a file that the
normal run does not collect and run it through this helper.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_pytest_on_simulated_devices(path: str | Path, *, devices: int = 8, pythonpath=(), timeout: float = 600):
    """(returncode, stdout tail + stderr tail) of `pytest -q path` with `devices` CPU devices."""
    path = Path(path)
    extra = [str(p) for p in pythonpath] + [os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(filter(None, extra))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
         str(path)], capture_output=True, text=True, env=env, timeout=timeout, cwd=path.parent)
    print(proc.stdout[-5000:])
    return proc.returncode, proc.stdout[-5000:] + proc.stderr[-3000:]
