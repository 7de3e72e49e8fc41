"""The ablation's orchestration and table (the runs and evaluations themselves are the loop's and
eval's, tested elsewhere): arms get their switches, finished runs are reused, mean ± std is right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coderl_jax.experiments.ablation import run_ablation, seeds_needed

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "tiny_cpu.py")


def test_ablation_applies_arms_aggregates_and_resumes(tmp_path):
    trained = []
    scored = []

    def fake_train(cfg):
        trained.append((cfg.alignment.mode, cfg.seed, cfg.steps, Path(cfg.out_dir).relative_to(tmp_path).as_posix()))

    def fake_score(cfg, model, out_dir, *, samples, temperature, seed):
        scored.append((str(model), samples, temperature))
        base = {"off": 0.2, "coderl": 0.3, "only": 0.1}[cfg.alignment.mode]
        bump = 0.0 if Path(model).name != "checkpoints" else 0.1  # trained runs beat the warm start
        return {"pass@1": base + bump + 0.02 * seed, "code_reasoning": 0.5 + 0.1 * seed, "state_accuracy": 0.25,
                "test_output": 0.05 * seed,
                "per_problem": {"a": {"pass@1": base + bump}, "b": {"pass@1": base * (1 + seed) + bump},
                                "c" if cfg.alignment.mode == "off" else "d": {"pass@1": 1.0}}}

    out = run_ablation(CONFIG, arms=["grpo", "coderl", "align_only"], seeds=[0, 1], out=tmp_path / "abl", steps=3,
                       overrides=["rollout.group_size=2"], eval_samples=3, eval_temperature=0.5,
                       train_fn=fake_train, score_fn=fake_score)
    assert sorted(trained) == sorted([("off", 0, 3, "abl/grpo/seed_0"), ("off", 1, 3, "abl/grpo/seed_1"),
                                      ("coderl", 0, 3, "abl/coderl/seed_0"), ("coderl", 1, 3, "abl/coderl/seed_1"),
                                      ("only", 0, 3, "abl/align_only/seed_0"), ("only", 1, 3, "abl/align_only/seed_1")])
    assert all(s[1:] == (3, 0.5) for s in scored) and len(scored) == 8  # 2 warm-start + 6 runs
    agg = out["aggregate"]
    # coderl: pass@1 = 0.4 and 0.42 -> mean 0.41, std (ddof 1) 0.01414
    assert agg["coderl"]["pass@1"][0] == pytest.approx(0.41)
    assert agg["coderl"]["pass@1"][1] == pytest.approx(0.0141421, rel=1e-4)
    assert agg["warm start"]["pass@1"][0] == pytest.approx(0.21)  # evaluated with the first arm's config
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| coderl | 41.0 ± 1.4 | 55.0 ± 7.1 | — | 25.0 ± 0.0 | 2.5 ± 3.5 |" in table
    # paired with grpo: by seed, 0.1 on both seeds; by problem (only a and b are in both), a: 0.1 on
    # both seeds, b: 0.1 * (1 + seed) -> 0.15 averaged: mean 0.125, standard error 0.025
    paired = out["paired"]["coderl"]["pass@1"]
    assert paired["by_seed"][0] == pytest.approx(0.1) and paired["by_seed"][1] == pytest.approx(0.0, abs=1e-12)
    assert paired["by_problem"] == pytest.approx((0.125, 0.025, 2))
    assert "by_problem" not in out["paired"]["coderl"]["code_reasoning"]
    assert "grpo" not in out["paired"] and "warm start" not in out["paired"]
    assert "| coderl | +10.0 ± 0.0 / +12.5 ± 2.5 | +0.0 ± 0.0 / — |" in table
    saved = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert saved["seeds"] == [0, 1]
    # align_only - grpo, code reasoning: 0 on both seeds -> never; pass@1 by seed: (0.1 + 0.02 s) - (0.3 +
    # 0.02 s) = -0.2 on both seeds, no spread -> the minimum of 2 seeds either way
    assert saved["seeds_needed"]["align_only"]["code_reasoning"] == {"observed": None, "effect": 2}
    assert "| align_only | 2 / 2 | never / 2 |" in table
    assert (tmp_path / "abl" / "ablation.png").read_bytes()[:4] == b"\x89PNG"

    # a rerun reuses every finished run and evaluation
    trained.clear()
    scored.clear()
    again = run_ablation(CONFIG, arms=["grpo", "coderl", "align_only"], seeds=[0, 1], out=tmp_path / "abl", steps=3,
                         overrides=["rollout.group_size=2"], eval_samples=3, eval_temperature=0.5,
                         train_fn=fake_train, score_fn=fake_score)
    assert trained == [] and scored == [] and again["aggregate"] == agg


def test_unknown_arm_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown arm"):
        run_ablation(CONFIG, arms=["ppo"], seeds=[0], out=tmp_path, steps=1, overrides=[],
                     train_fn=lambda cfg: None, score_fn=lambda *a, **k: {})


@pytest.mark.parametrize("overrides", [[], ["rollout.prompts_per_step=6", "alignment.alpha=0.5"]])
def test_equal_code_arm_adds_alignment_prompts_on_top(tmp_path, overrides):
    from coderl_jax.experiments.ablation import arm_config

    grpo = arm_config(CONFIG, "grpo", 0, tmp_path / "g", 1, overrides)
    coderl = arm_config(CONFIG, "coderl", 0, tmp_path / "c", 1, overrides)
    equal = arm_config(CONFIG, "coderl_equal_code", 0, tmp_path / "e", 1, overrides)
    n_code, n_align = equal.alignment.split(equal.rollout.prompts_per_step)
    assert n_code == grpo.rollout.prompts_per_step  # the code prompts of GRPO ...
    # ... plus alignment prompts in the ratio the other CodeRL+ arms use
    assert n_align / n_code == pytest.approx((1 - coderl.alignment.alpha) / coderl.alignment.alpha, abs=0.5 / n_code)
    assert equal.alignment.mode == "coderl"


def test_seeds_needed_follows_the_per_seed_spread():
    # by-seed differences 0.01 and 0.03: mean 0.02, sd 0.01414, se 0.01 over 2 seeds
    paired = {"coderl": {"pass@1": {"by_seed": (0.02, 0.01, 2)}, "state": {"by_seed": (1.4e-17, 0.005, 2)},
                         "single": {"by_seed": (0.05, None, 1)}}}
    needed = seeds_needed(paired)
    # observed: (2 * 0.01414 / 0.02)^2 = 2; a 1-point effect: (2 * 0.01414 / 0.01)^2 = 8
    assert needed["coderl"]["pass@1"] == {"observed": 2, "effect": 8}
    assert needed["coderl"]["state"]["observed"] == float("inf")  # no difference seen (float noise is none)
    assert needed["coderl"]["state"]["effect"] == 2  # (2 * 0.00707 / 0.01)^2 = 2
    assert "single" not in needed["coderl"]  # one seed: no spread to go on
