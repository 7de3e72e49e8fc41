"""A mistake in what the user gave ends `coderl` with one line and exit status 2, not a traceback;
`--traceback` (or CODERL_TRACEBACK=1) shows the trace. Any other exception is a bug: its trace shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coderl_jax import cli
from coderl_jax.data.records import DataError

GOOD = [{"id": f"p{i}", "prompt": f"Read n and print n + {i}.",
         "tests": {"style": "stdio", "inputs": ["1\n"], "outputs": [f"{1 + i}\n"]}} for i in range(4)]
BROKEN = {"id": "broken", "prompt": "Print 1.", "tests": {"style": "call", "inputs": [[]], "outputs": [1]}}  # no fn_name

CONFIG = """
from coderl_jax.optim import OptimConfig
from coderl_jax.train.config import DataConfig, EvalConfig, RolloutConfig, TrainConfig

config = TrainConfig(
    model="tiny-random", out_dir={out!r}, steps=1, seed=0, checkpoint_every=1,
    data=DataConfig(train_path={data!r}, eval_path={data!r}, max_prompt_tokens=192),
    rollout=RolloutConfig(prompts_per_step=4, group_size=2, max_new_tokens=16, temperature=1.0),
    optim=OptimConfig(learning_rate=1e-4, schedule="constant"),
    eval=EvalConfig(every=1, max_problems=10),
)
"""


def test_train_on_a_broken_row_ends_with_one_line(tmp_path):
    """The held-out file is read strictly, so its broken row stops the run: the last line of stderr
    names file and row, and no traceback comes before it (with --traceback one does)."""
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in GOOD[:2] + [BROKEN] + GOOD[2:]))
    config = tmp_path / "broken_row.py"
    config.write_text(CONFIG.format(out=str(tmp_path / "run"), data=str(data)))
    env = {k: v for k, v in os.environ.items() if k != "CODERL_TRACEBACK"}
    env.update(JAX_PLATFORMS="cpu", CODERL_CACHE=str(tmp_path / "cache"), CODERL_DATA_DIR=str(tmp_path / "tfds"))

    def coderl(*flags):
        return subprocess.run([sys.executable, "-m", "coderl_jax.cli", *flags, "train", "--config", str(config)],
                              env=env, capture_output=True, text=True, timeout=600)

    done = coderl()
    assert done.returncode == 2, done.stderr[-3000:]
    # splitlines also splits at "\r": a progress bar that was cleared leaves the line start there
    assert done.stderr.splitlines()[-1] == f"coderl train: {data}:3:tests.fn_name: " \
                                           "call-style tests need fn_name, a Python identifier; got None"
    assert "Traceback" not in done.stderr
    traced = coderl("--traceback")
    assert traced.returncode == 1 and "Traceback (most recent call last)" in traced.stderr
    assert traced.stderr.splitlines()[-1].startswith(f"coderl_jax.data.records.DataError: {data}:3:")


# ------------------------------------------------------------------------------------------------
# the wrapper itself, in-process, on a stand-in subcommand (this module) that raises what it is told

RAISE: list[BaseException] = []


def add_arguments(parser) -> None:
    pass


def main(args) -> int:
    raise RAISE[0]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", (__name__, "raises RAISE[0]"))
    monkeypatch.setenv("CODERL_COMPILE_CACHE", "0")
    monkeypatch.setenv("CODERL_CPU_TUNING", "0")
    monkeypatch.delenv("CODERL_TRACEBACK", raising=False)

    def run(error: BaseException, *flags: str) -> int:
        RAISE[:] = [error]
        return cli.main([*flags, "fake"])

    return run


def _override_error():
    from coderl_jax.train.config_util import ConfigOverrideError

    return ConfigOverrideError("steps=x: expected an int")


@pytest.mark.parametrize("error,line", [
    (DataError("bad", path="f.jsonl", row=3, field="prompt"), "f.jsonl:3:prompt: bad"),
    (FileNotFoundError(2, "No such file or directory", "missing.jsonl"), "missing.jsonl: No such file or directory"),
    (IsADirectoryError(21, "Is a directory", "runs"), "runs: Is a directory"),
    (_override_error(), "steps=x: expected an int"),
    (DataError("no usable problems:\n  f.jsonl:1: bad\n  f.jsonl:2: bad"),
     "no usable problems:; f.jsonl:1: bad; f.jsonl:2: bad"),  # always one line
])
def test_user_errors_are_one_line_and_status_2(fake, capsys, error, line):
    assert fake(error) == 2
    assert capsys.readouterr().err == f"coderl fake: {line}\n"


def test_marked_classes_are_user_errors(fake, capsys):
    from coderl_jax.errors import UserError
    from coderl_jax.plan.planner import PlanError

    class ForkError(UserError, RuntimeError):
        pass

    for error in (PlanError("topology v9:1x1: unknown"), ForkError("your fork says no")):
        assert fake(error) == 2
        assert capsys.readouterr().err == f"coderl fake: {error}\n"


@pytest.mark.parametrize("error", [ValueError("a bug"), KeyError("k"), FileNotFoundError("no filename")])
def test_other_errors_keep_their_traceback(fake, error):
    with pytest.raises(type(error)):
        fake(error)


def test_traceback_flag_and_environment_show_the_trace(fake, monkeypatch):
    error = DataError("bad", path="f.jsonl", row=3)
    with pytest.raises(DataError):
        fake(error, "--traceback")
    monkeypatch.setenv("CODERL_TRACEBACK", "1")
    with pytest.raises(DataError):
        fake(error)
