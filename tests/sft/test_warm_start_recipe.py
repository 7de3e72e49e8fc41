"""The default run's warm start re-creates from its documented command (docs/models.md), cut short.

`coderl-tiny-early` is `coderl sft` with the settings its committed `sft.json` records. The run
here is that command with only the steps cut, to the first step of the recorded loss curve: the
tokenizer is learnt from every training example (so the data stays as the recipe has it) and does
not depend on the steps, so its files must equal the committed ones byte for byte; the learning rate
is constant after warmup, so the first logged steps are the recipe's own and their mean loss must
match the recorded curve (within a tolerance: float sums differ across CPUs). Most of the time
goes to the training steps and to tracing the 3,000 reference programs for the alignment examples.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NAME = "coderl-tiny-early"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
EXACT = ("step", "tokens", "row_lengths", "lr")  # integer counts and the schedule: the same on every CPU
LOSSES = ("loss", "loss/code", "loss/align")

pytestmark = pytest.mark.slow


def committed_dir() -> Path:
    # the committed models moved from configs/models to coderl_jax/configs/models
    for root in (REPO / "coderl_jax" / "configs" / "models", REPO / "configs" / "models"):
        if (root / NAME / "sft.json").is_file():
            return root / NAME
    raise AssertionError(f"no committed {NAME}/sft.json under coderl_jax/configs/models or configs/models")


def documented_command() -> list[str]:
    """The `coderl sft` command of the model's section in docs/models.md, as argv."""
    section = (REPO / "docs" / "models.md").read_text().split(f"## `{NAME}`", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```bash\n(coderl sft .*?)\n```", section, re.S)
    assert m, f"docs/models.md: no `coderl sft` command in the {NAME} section"
    argv = shlex.split(m.group(1).replace("\\\n", " "))
    assert argv[:2] == ["coderl", "sft"]
    return argv[2:]


def parse_sft(argv: list[str]) -> dict:
    from coderl_jax.sft.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def with_legacy_options(argv: list[str], recorded_args: dict) -> list[str]:
    """`argv` with the value that made the committed model for each option added after it was made
    (cli.LEGACY_ARGS: its sft.json does not record them) that `argv` does not set."""
    from coderl_jax.sft.cli import LEGACY_ARGS

    for key, value in LEGACY_ARGS.items():
        flag = "--" + key.replace("_", "-")
        if key not in recorded_args and flag not in argv:
            argv = argv + [flag, value]
    return argv


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    i = argv.index(flag)
    return argv[:i + 1] + [value] + argv[i + 2:]


def test_documented_command_re_creates_the_committed_warm_start(tmp_path):
    model = committed_dir()
    recorded = json.loads((model / "sft.json").read_text())
    argv = with_legacy_options(documented_command(), recorded["args"])
    documented = parse_sft(argv)
    # the documented command is the one that made the committed model (its output directory aside;
    # options newer than the model take its legacy value, or their default where it has no effect)
    assert {k: v for k, v in documented.items() if k != "out"} == \
           {k: v for k, v in {**documented, **recorded["args"]}.items() if k != "out"}

    first = recorded["history"][0]
    # cutting the steps leaves the first ones as they were only if the learning rate does not
    # depend on the total number of steps (a cosine schedule would)
    assert documented["schedule"] in ("constant", "warmup_constant")
    assert first["step"] == documented["log_every"] < documented["steps"]
    out = tmp_path / "out"
    short = with_flag(with_flag(argv, "--out", str(out)), "--steps", str(first["step"])) + ["--no-eval", "--quiet"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", CODERL_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "coderl_jax.cli", "sft", *short], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    for name in TOKENIZER_FILES:
        assert (out / name).read_bytes() == (model / name).read_bytes(), name
    ran = json.loads((out / "sft.json").read_text())
    # the examples, their counts and token lengths; a harvest drop reason added after the model was
    # made (call_style) counts 0 here and is absent from its record
    harvest = {k: v for k, v in ran["data"]["harvest"].items() if v or k in recorded["data"]["harvest"]}
    assert {**ran["data"], "harvest": harvest} == recorded["data"]
    assert ran["sft"] == {**recorded["sft"], "steps": first["step"]}
    (got,) = ran["history"]
    assert {k: got[k] for k in EXACT} == {k: first[k] for k in EXACT}
    assert {k: got[k] for k in LOSSES} == pytest.approx({k: first[k] for k in LOSSES}, rel=0.02)
