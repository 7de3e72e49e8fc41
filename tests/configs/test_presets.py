"""The presets shipped in coderl_jax/configs: `--config` takes a name or a path, loading one writes
nothing, and `prepare_data` writes exactly the suite files the pre-package configs wrote."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coderl_jax.train.config_util import ConfigOverrideError, apply_overrides, load_config, load_config_file
from coderl_jax.train.data_setup import prepare_data

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL = sorted(REPO.glob("configs/*.py"))

# sha256 of the files that importing configs/default_cpu.py (and grpo_cpu.py) wrote into
# $CODERL_CACHE/suite_seed0 before the suite became part of the config: the default run must read
# these bytes
SUITE_SEED0_SHA256 = {
    "train.jsonl": "e4e16b984c82d4ad07d9034a8b7ab7f55cc57f0e8adfd171e1395daaaa9829af",
    "heldout.jsonl": "7eac202cb91b02ba44a87289e981bc0a314f8ceb23b691e61e3dd2ff28cf9949",
    "probe.jsonl": "dc8b05b0a37d7fec185c7232f6cff4a6fae03d45337c63e119fb97252fae3b63",
    "sft.jsonl": "a71dcf453895a92bff754e0afbafcae4fe49e34b078aabd52f2e44b64df06f62",  # grpo_cpu's rl_reserve 0.25
    "rl.jsonl": "e27506b61e5f53d52e68e0abee47c52c919a56c77765b1d0e6197cf8228974de",
}
# the default run's probe: the first 100 held-out programs on their shortest inputs
PROBE_SHORTEST_SHA256 = "fc20185c281b0cce9ea1b142f62911a559b0051cdcfcb58b727382fa8f28fb81"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_loading_every_preset_and_config_file_writes_nothing(tmp_path):
    """In a fresh interpreter (the presets are not yet imported), with the cache, the home directory
    and the working directory all empty temporary directories."""
    cache, home, cwd = tmp_path / "cache", tmp_path / "home", tmp_path / "cwd"
    for d in (cache, home, cwd):
        d.mkdir()
    script = ("import sys\n"
              "from coderl_jax.train.config_util import load_config, preset_names\n"
              "names = preset_names()\n"
              "for name in names + sys.argv[1:]:\n"
              "    load_config(name).validate()\n"
              "print(len(names))\n")
    env = {**os.environ, "CODERL_CACHE": str(cache), "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", script, *map(str, TOP_LEVEL)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == 11  # 5 CPU/GPU presets and the six pod configs
    assert [p for p in tmp_path.rglob("*") if p not in (cache, home, cwd)] == []


@pytest.mark.parametrize("path", TOP_LEVEL, ids=[p.stem for p in TOP_LEVEL])
def test_top_level_config_files_are_the_presets(path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert load_config_file(path) == load_config(path.stem) == load_config(f"configs/{path.name}")


def test_a_name_that_is_neither_a_file_nor_a_preset_lists_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigOverrideError, match="did you mean default_cpu.*presets: default_cpu, grpo_cpu, states_cpu, tiny_cpu"):
        load_config("default_cp")
    with pytest.raises(ConfigOverrideError, match="neither a config file nor a preset.*qwen25_coder_7b_v5p64"):
        load_config("nothing/like/this")
    with pytest.raises(ConfigOverrideError, match="missing.py: config file not found"):
        load_config("missing.py")
    (tmp_path / "default_cpu").mkdir()  # a directory of that name does not hide the preset
    assert load_config("default_cpu").steps == 40
    (tmp_path / "mine.py").write_text("import dataclasses\nfrom coderl_jax.configs.tiny_cpu import config\n"
                                      "config = dataclasses.replace(config, steps=7)\n")
    assert load_config("mine.py").steps == 7


def test_prepare_data_writes_the_default_runs_files_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    base = load_config("default_cpu").validate()
    assert (base.data.train_path, base.data.eval_path, base.alignment.probe_path) == ("", "", "")
    cfg = prepare_data(base)
    suite = tmp_path / "suite_seed0"
    assert (cfg.data.train_path, cfg.data.eval_path, cfg.alignment.probe_path) == (
        str(suite / "train.jsonl"), str(suite / "heldout.jsonl"), str(suite / "probe_shortest.jsonl"))
    assert sorted(p.name for p in suite.iterdir()) == ["heldout.jsonl", "probe_shortest.jsonl", "train.jsonl"]
    for name in ("train.jsonl", "heldout.jsonl"):
        assert _sha(suite / name) == SUITE_SEED0_SHA256[name], name
    assert _sha(suite / "probe_shortest.jsonl") == PROBE_SHORTEST_SHA256
    # only the paths changed
    assert dataclasses.replace(cfg, data=base.data, alignment=base.alignment) == base
    # the probe: the first 100 held-out problems' reference solution and shortest input
    probe = [json.loads(line) for line in (suite / "probe_shortest.jsonl").read_text().splitlines()]
    heldout = [json.loads(line) for line in (suite / "heldout.jsonl").read_text().splitlines()]
    assert len(probe) == 100 and probe[5]["id"] == heldout[5]["id"]
    assert probe[5]["program"] == heldout[5]["metadata"]["solution"]
    assert [r["stdin"] for r in probe] == [min(p["tests"]["inputs"], key=len) for p in heldout[:100]]
    assert sum(r["stdin"] != p["tests"]["inputs"][0] for r, p in zip(probe, heldout)) > 25

    # idempotent: a prepared config comes back as is; preparing afresh rewrites nothing
    assert prepare_data(cfg) is cfg
    mtimes = {p.name: p.stat().st_mtime_ns for p in suite.iterdir()}
    assert prepare_data(load_config("default_cpu")) == cfg
    assert {p.name: p.stat().st_mtime_ns for p in suite.iterdir()} == mtimes


def test_the_probe_of_first_inputs_has_its_own_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    base = load_config("default_cpu").validate()
    cfg = prepare_data(dataclasses.replace(
        base, alignment=dataclasses.replace(base.alignment, record_input="first"),
        data=dataclasses.replace(base.data, suite=dataclasses.replace(base.data.suite, probe_programs=32))))
    suite = tmp_path / "suite_seed0"
    assert cfg.alignment.probe_path == str(suite / "probe.jsonl")
    # the first 32 held-out programs on their first inputs, as the official rule and older runs have it
    assert _sha(suite / "probe.jsonl") == SUITE_SEED0_SHA256["probe.jsonl"]
    probe = [json.loads(line) for line in (suite / "probe.jsonl").read_text().splitlines()]
    heldout = [json.loads(line) for line in (suite / "heldout.jsonl").read_text().splitlines()]
    assert [r["stdin"] for r in probe] == [p["tests"]["inputs"][0] for p in heldout[:32]]


def test_grpo_preset_trains_on_the_rl_split_beside_the_defaults_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    cfg = prepare_data(load_config("grpo_cpu").validate())
    suite = tmp_path / "suite_seed0"
    assert (cfg.data.train_path, cfg.data.eval_path, cfg.alignment.probe_path) == (
        str(suite / "rl.jsonl"), str(suite / "heldout.jsonl"), str(suite / "probe.jsonl"))
    assert {p.name: _sha(p) for p in suite.iterdir()} == SUITE_SEED0_SHA256


def test_prepare_data_keeps_explicit_paths_and_follows_suite_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("CODERL_CACHE", str(tmp_path / "cache"))
    tiny = load_config("tiny_cpu")
    assert tiny.data.suite is None and prepare_data(tiny) is tiny  # no suite: nothing to do
    assert not (tmp_path / "cache").exists()

    mine = tmp_path / "mine.jsonl"
    cfg = apply_overrides(load_config("default_cpu"), [f"data.train_path={mine}", "data.suite.seed=1",
                                                       "data.suite.n_train=40", "data.suite.n_heldout=12",
                                                       "data.suite.probe_programs=5"]).validate()
    cfg = prepare_data(cfg)
    suite = tmp_path / "cache" / "suite_seed1_40_12"
    assert cfg.data.train_path == str(mine)  # given explicitly: kept
    assert cfg.data.eval_path == str(suite / "heldout.jsonl")
    assert len((suite / "heldout.jsonl").read_text().splitlines()) == 12
    assert len((suite / "probe_shortest.jsonl").read_text().splitlines()) == 5

    with pytest.raises(ValueError, match="train_split='rl'.*need data.suite.rl_reserve"):
        apply_overrides(load_config("default_cpu"), ["data.suite.train_split=rl"]).validate()
    with pytest.raises(ValueError, match="data.train_path is empty"):
        apply_overrides(load_config("tiny_cpu"), ["data.train_path="]).validate()


def test_ablation_arms_get_prepared_data(tmp_path, monkeypatch):
    """`coderl ablate` scores the warm start on data.eval_path before any training runs."""
    from coderl_jax.experiments.ablation import arm_config

    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    cfg = arm_config("default_cpu", "grpo", 3, tmp_path / "run", 2, ["eval.max_problems=5"])
    assert (cfg.seed, cfg.steps, cfg.alignment.mode, cfg.eval.max_problems) == (3, 2, "off", 5)
    assert cfg.data.eval_path == str(tmp_path / "suite_seed0" / "heldout.jsonl")
    assert _sha(cfg.data.eval_path) == SUITE_SEED0_SHA256["heldout.jsonl"]


def test_coderl_train_print_config_takes_a_preset_name(tmp_path):
    env = {**os.environ, "CODERL_CACHE": str(tmp_path / "cache"), "CODERL_COMPILE_CACHE": "0"}
    proc = subprocess.run([sys.executable, "-m", "coderl_jax.cli", "train", "--config", "grpo_cpu", "--print-config",
                           "steps=3"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    assert printed["steps"] == 3 and printed["data"]["suite"]["train_split"] == "rl"
    assert not (tmp_path / "cache").exists()
    proc = subprocess.run([sys.executable, "-m", "coderl_jax.cli", "train", "--config", "grpo_cpo"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "did you mean grpo_cpu" in proc.stderr
