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

REPO = Path(__file__).resolve().parents[2]
NAME = "coderl-tiny-steps"
MODEL = REPO / "coderl_jax" / "configs" / "models" / NAME
PATHS = ("out", "init")  # scratch directories: named by the chain, recorded where they were made


def documented_chain() -> list[list[str]]:
    section = (REPO / "docs" / "models.md").read_text().split(f"## `{NAME}`", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```bash\n(.*?)\n```", section, re.S)
    assert m, f"docs/models.md: no command block in the {NAME} section"
    text = m.group(1).replace("\\\n", " ")
    return [shlex.split(part) for part in text.split("&&") if part.strip()]


def parse_sft(argv: list[str]) -> dict:
    from coderl_jax.sft.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def recorded_phases() -> list[dict]:
    """The recorded arguments of every phase, first to last."""
    info = json.loads((MODEL / "sft.json").read_text())
    phases = []
    while info is not None:
        phases.append(info["args"])
        info = info.get("init")
    return phases[::-1]


def test_documented_phases_are_the_recorded_ones():
    chain = documented_chain()
    assign, *commands = chain
    assert len(assign) == 1 and assign[0].startswith("W="), "the chain starts by naming its scratch directory"
    scratch = assign[0][2:]
    sft_cmds = [c for c in commands if c[:2] == ["coderl", "sft"]]
    export, copy = commands[len(sft_cmds):]
    documented = [parse_sft([a.replace("$W", scratch) for a in c[2:]]) for c in sft_cmds]
    recorded = recorded_phases()
    assert len(documented) == len(recorded) >= 2
    for i, (doc, rec) in enumerate(zip(documented, recorded)):
        # options newer than a phase are absent from its record (their defaults did not exist yet);
        # the top command's own --traceback is recorded but is not an option of `coderl sft`
        assert {k: v for k, v in doc.items() if k not in PATHS} == \
               {k: v for k, v in {**doc, **rec}.items() if k not in PATHS and k in doc}, f"phase {i + 1}"
        if i:  # each phase continues the one before it
            assert doc["init"] == documented[i - 1]["out"] and rec["init"] == recorded[i - 1]["out"]
    assert recorded[0].get("init") is None
    # the last phase is stored in bfloat16 as the committed directory, with its sft.json
    last = documented[-1]["out"].replace(scratch, "$W")
    assert export[:2] == ["coderl", "export"]
    assert export[export.index("--model") + 1] == last
    assert export[export.index("--out") + 1] == f"coderl_jax/configs/models/{NAME}"
    assert export[export.index("--dtype") + 1] == "bfloat16"
    assert copy == ["cp", f"{last}/sft.json", f"coderl_jax/configs/models/{NAME}/"]


def test_committed_weights_are_bfloat16_and_the_recorded_size():
    from coderl_jax.models.hf_io import load_hf

    config = json.loads((MODEL / "config.json").read_text())
    assert config["torch_dtype"] == "bfloat16"
    info = json.loads((MODEL / "sft.json").read_text())
    cfg, params = load_hf(MODEL)
    assert sum(x.size for x in __import__("jax").tree.leaves(params)) == info["model"]["params"]
    assert (cfg.hidden_size, cfg.num_layers) == (info["model"]["hidden"], info["model"]["layers"])
