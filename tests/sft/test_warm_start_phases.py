"""The default run's warm start is made in phases (each `coderl sft --init` continuing the last),
then stored in bfloat16; docs/models.md documents the whole chain as one command. Its phases must
be the ones that made the committed model, as its sft.json records them (the last phase's
arguments, and each earlier phase's under "init"); only the scratch directories differ."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "coderl_jax" / "configs" / "models"
# the phased warm starts; a chain may start from another committed model (coderl-tiny-states
# continues coderl-tiny-steps), whose phases its sft.json records before its own
NAMES = ("coderl-tiny-steps", "coderl-tiny-states")
PATHS = ("out", "init")  # scratch directories: named by the chain, recorded where they were made


def documented_chain(name: str) -> list[list[str]]:
    section = (REPO / "docs" / "models.md").read_text().split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```bash\n(.*?)\n```", section, re.S)
    assert m, f"docs/models.md: no command block in the {name} section"
    text = m.group(1).replace("\\\n", " ")
    return [shlex.split(part) for part in text.split("&&") if part.strip()]


def parse_sft(argv: list[str]) -> dict:
    from coderl_jax.sft.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def recorded_phases(name: str) -> list[dict]:
    """The recorded arguments of every phase, first to last."""
    info = json.loads((MODELS / name / "sft.json").read_text())
    phases = []
    while info is not None:
        phases.append(info["args"])
        info = info.get("init")
    return phases[::-1]


@pytest.mark.parametrize("name", NAMES)
def test_documented_phases_are_the_recorded_ones(name):
    chain = documented_chain(name)
    assign, *commands = chain
    assert len(assign) == 1 and assign[0].startswith("W="), "the chain starts by naming its scratch directory"
    scratch = assign[0][2:]
    sft_cmds = [c for c in commands if c[:2] == ["coderl", "sft"]]
    export, copy = commands[len(sft_cmds):]
    documented = [parse_sft([a.replace("$W", scratch) for a in c[2:]]) for c in sft_cmds]
    recorded = recorded_phases(name)
    assert len(recorded) >= len(documented) >= 2
    first_init = documented[0].get("init")
    if first_init is None:  # the chain starts from a random model
        assert len(documented) == len(recorded) and recorded[0].get("init") is None
    else:  # it starts from a committed model, whose own phases come first in the record
        base = Path(first_init)
        assert base.parent.as_posix() == "coderl_jax/configs/models" and base.name in NAMES
        assert recorded[:-len(documented)] == recorded_phases(base.name)
        assert Path(recorded[-len(documented)]["init"]).parts[-4:] == ("coderl_jax", "configs", "models", base.name)
    recorded = recorded[-len(documented):]
    for i, (doc, rec) in enumerate(zip(documented, recorded)):
        # options newer than a phase are absent from its record (their defaults did not exist yet);
        # the top command's own --traceback is recorded but is not an option of `coderl sft`
        assert {k: v for k, v in doc.items() if k not in PATHS} == \
               {k: v for k, v in {**doc, **rec}.items() if k not in PATHS and k in doc}, f"phase {i + 1}"
        if i:  # each phase continues the one before it
            assert doc["init"] == documented[i - 1]["out"] and rec["init"] == recorded[i - 1]["out"]
    # the last phase is stored in bfloat16 as the committed directory, with its sft.json
    last = documented[-1]["out"].replace(scratch, "$W")
    assert export[:2] == ["coderl", "export"]
    assert export[export.index("--model") + 1] == last
    assert export[export.index("--out") + 1] == f"coderl_jax/configs/models/{name}"
    assert export[export.index("--dtype") + 1] == "bfloat16"
    assert copy == ["cp", f"{last}/sft.json", f"coderl_jax/configs/models/{name}/"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_weights_are_bfloat16_and_the_recorded_size(name):
    from coderl_jax.models.hf_io import load_hf

    config = json.loads((MODELS / name / "config.json").read_text())
    assert config["torch_dtype"] == "bfloat16"
    info = json.loads((MODELS / name / "sft.json").read_text())
    cfg, params = load_hf(MODELS / name)
    assert sum(x.size for x in __import__("jax").tree.leaves(params)) == info["model"]["params"]
    assert (cfg.hidden_size, cfg.num_layers) == (info["model"]["hidden"], info["model"]["layers"])
