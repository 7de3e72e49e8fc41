"""The programs a training run calls lower to the same text as those `coderl plan` builds for the
same config and shapes, on 8 simulated CPU devices (multidevice_programs.py, in a subprocess)."""

from __future__ import annotations

from pathlib import Path

from coderl_jax.parallel.simulated import run_pytest_on_simulated_devices


REPO = Path(__file__).resolve().parents[2]


def test_loop_and_plan_programs_are_equal():
    rc, out = run_pytest_on_simulated_devices(Path(__file__).parent / "multidevice_programs.py", pythonpath=[REPO])
    assert rc == 0, out
