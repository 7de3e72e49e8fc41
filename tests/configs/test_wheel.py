"""`coderl train` works from a wheel, not only from the checkout: the presets, their models and their
data ship inside the package. Builds the wheel offline, installs it (no dependencies) into a venv
that reuses this environment's packages, and trains two steps of the `tiny_cpu` preset from a
directory outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# what a wheel build needs, without the checkout's build outputs, runs and caches
SKIP = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "runs", "out",
                              ".pytest_cache", ".ruff_cache", ".venv", "tests", "benchmarks")


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.mark.slow
def test_coderl_train_runs_a_preset_from_the_installed_wheel(tmp_path):
    # build in a copy, so that setuptools' build/ and egg-info never touch the checkout
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=SKIP)
    wheels = tmp_path / "wheels"
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", wheels],
         cwd=src, env=offline, timeout=300)
    (wheel,) = wheels.glob("coderl_jax-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("coderl_jax/configs/default_cpu.py", "coderl_jax/configs/data/tiny_problems.jsonl",
                    "coderl_jax/configs/models/coderl-tiny-steps/model.safetensors",
                    "coderl_jax/configs/models/coderl-tiny-rl25/chat_template.jinja",
                    "coderl_jax/configs/models/Qwen2.5-Coder-7B-Instruct/config.json"):
        assert shipped in names, shipped

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], timeout=120)
    python = venv / "bin" / "python"
    # this environment's pip, installing into the venv; --ignore-installed: the checkout's editable
    # install of the same version is visible through the system site-packages
    _run([python, "-m", "pip", "install", "--no-deps", "--ignore-installed", wheel], env=offline, timeout=300)

    work = tmp_path / "work"  # outside the checkout, so nothing resolves relative to it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CODERL_CACHE"] = str(tmp_path / "cache")
    # the compiled programs: shared with the test run's other runs (the cache never changes a result)
    env["CODERL_COMPILE_CACHE"] = os.environ.get("CODERL_COMPILE_CACHE") or str(
        Path(os.environ.get("CODERL_CACHE", Path.home() / ".cache" / "coderl_jax")) / "xla")
    where = _run([python, "-c", "import coderl_jax; print(coderl_jax.__file__)"], cwd=work, env=env, timeout=120)
    assert Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()), where.stdout

    out = work / "run"
    _run([venv / "bin" / "coderl", "train", "--config", "tiny_cpu", "steps=2", "eval.every=0", f"out_dir={out}"],
         cwd=work, env=env, timeout=600)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward/mean" in r] == [1, 2]
    config = json.loads((out / "config.json").read_text())
    assert Path(config["data"]["train_path"]).resolve().is_relative_to(venv.resolve())  # the wheel's data
