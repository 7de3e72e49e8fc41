"""A short CPU training run with alignment on: the harvest fills the buffer, later steps train on
both tasks, and a run stopped after a checkpoint resumes with the buffer intact (its metrics equal
the uninterrupted run's).

The policy's sampler is replaced by a scripted one (the sampler itself is tested in
tests/sampling): a tiny random model writes no code, and the alignment task needs failed programs
to harvest. Everything else is real: data pipeline, tracer pool (sandboxed runs and traces),
rewards, advantages, jitted updates, orbax checkpoints, the probe.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.optim import OptimConfig
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.sampling.sampler import Completion, Sampler
from coderl_jax.train.config import DataConfig, EvalConfig, RolloutConfig, TracerConfig, TrainConfig

REPO = Path(__file__).resolve().parents[2]
TIMING = ("time/", "perf/")

CODE = """```python
data = input().split()
total = 0
for tok in data:
    total += len(tok) * {k}
print(total)
```"""


def scripted_generate(self, prompts, sp):
    """Deterministic responses: code prompts get programs that run but fail the tests (outputs
    vary with k, so they are not duplicates); alignment prompts get answers that are right or
    wrong depending on the sample."""
    tok = self.tokenizer
    prompt_ids = self.encode(prompts)
    out = []
    for p, ids in enumerate(prompt_ids):
        text = tok.decode(ids)
        rng = np.random.default_rng([sp.seed, len(ids), p])
        group = []
        for i in range(sp.n):
            if sp.temperature == 0 and "print 2 * n" in text:  # greedy evaluation: one problem solved
                resp = "```python\nn = int(input())\nprint(2 * n)\n```"
            elif "final_output" in text:
                k = int(rng.integers(0, 3))
                # the reasoning varies with k too, so teacher-forced likelihood rewards differ in a group
                resp = f'Counting lengths{"." * (k + 1)}\n{{"final_output": "{k}", "variables": {{"total": {k}}}}}'
            else:
                resp = "Here it is.\n" + CODE.format(k=int(rng.integers(2, 50)))
            token_ids = tok.encode(resp, add_special_tokens=False)[: sp.max_new_tokens - 1] + [tok.eos_token_id]
            n = len(token_ids)
            group.append(Completion(token_ids, tok.decode(token_ids, skip_special_tokens=True), [0.0] * n,
                                    [0.0] * n, "eos"))
        out.append(group)
    return out


def make_config(tmp_path: Path, out: str, steps: int) -> TrainConfig:
    probe = tmp_path / "probe.jsonl"
    probe.write_text(json.dumps({"program": "x = 3\ny = x * 2\nprint(y)\n"}) + "\n"
                     + json.dumps({"program": "s = input()\nprint(s[::-1])\n", "stdin": "abc\n"}) + "\n")
    return TrainConfig(
        model="tiny-random", out_dir=str(tmp_path / out), steps=steps, seed=5, checkpoint_every=2,
        keep_checkpoints=3, progress=False, tensorboard=False, async_checkpointing=False,
        data=DataConfig(train_path=str(REPO / "coderl_jax" / "configs" / "data" / "tiny_problems.jsonl"),
                        eval_path=str(REPO / "coderl_jax" / "configs" / "data" / "tiny_problems.jsonl"), max_prompt_tokens=900),
        rollout=RolloutConfig(prompts_per_step=4, group_size=2, max_new_tokens=112),
        tracer=TracerConfig(workers=2, timeout_s=2.0),
        optim=OptimConfig(learning_rate=1e-3), loss=LossConfig(kl_coef=0.01),
        eval=EvalConfig(every=2),
        alignment=AlignmentConfig(mode="coderl", k=2, per_variable_credit=True, probe_path=str(probe)),
    )


def metrics(out_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


@pytest.mark.slow
def test_alignment_run_fills_buffer_trains_both_tasks_and_resumes(tmp_path, monkeypatch):
    from coderl_jax.train.loop import train

    monkeypatch.setenv("CODERL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CODERL_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(Sampler, "generate", scripted_generate)

    train(make_config(tmp_path, "full", 4))
    start, *full = metrics(tmp_path / "full")
    # step 0: the starting policy evaluated before any update (the baseline of every curve)
    assert start["step"] == 0 and start["eval/pass@1"] == pytest.approx(0.1) and start["probe/records"] == 2
    assert not any(k.startswith(("reward/", "actor/")) for k in start)
    assert [m["step"] for m in full] == [1, 2, 3, 4]
    first = full[0]
    # step 1: code only (the buffer is empty); its failed rollouts are harvested
    assert first["align/prompts"] == 0 and first["harvest/considered"] == 8
    assert first["harvest/harvested"] > 0 and first["align/buffer_size"] == first["harvest/harvested"]
    for m in full[1:]:
        # later steps mix round(0.6 * 4) = 2 code prompts with 2 alignment prompts
        assert m["align/prompts"] == 2 and m["harvest/considered"] == 4
        assert 0.0 <= m["align/accuracy"] <= 1.0 and m["align/parsed"] == 1.0
        assert "entropy/align" in m and "entropy/code" in m and m["actor/updates"] == 1
        assert m["reward/align/mean"] > 0.0  # a parsable answer earns at least the 0.1 format bonus
    assert full[-1]["align/buffer_size"] > first["align/buffer_size"]
    for m in (full[1], full[3]):
        assert m["probe/records"] == 2 and m["probe/loglik"] < 0 and "probe/exact" in m
        # in-loop evaluation goes through coderl_jax.eval: 1 of the 10 problems is solved greedily
        assert m["eval/pass@1"] == pytest.approx(0.1) and m["eval/problems"] == 10
    summary = json.loads((tmp_path / "full" / "eval" / "step_4" / "problems" / "summary.json").read_text())
    assert summary["pass@1"] == pytest.approx(0.1)

    # a checkpoint alone is a loadable model: its tokenizer is beside the steps (what `coderl ablate`
    # and `coderl eval --model <checkpoints>` need)
    from coderl_jax.eval import load_model

    from transformers import AutoTokenizer

    from coderl_jax.models.tiny import default_model_dir

    generator = load_model(tmp_path / "full" / "checkpoints")
    reference = AutoTokenizer.from_pretrained(str(default_model_dir()))
    text = "x = 3\nprint(x)  # é"
    assert generator.tokenizer.encode(text) == reference.encode(text) and len(generator.tokenizer) == len(reference)
    # the buffer is in the checkpoint
    meta = json.loads((tmp_path / "full" / "checkpoints" / "4" / "meta" / "metadata").read_text())
    assert len(meta["alignment"]["records"]) == full[-1]["align/buffer_size"]

    # stop after step 2, resume to step 4: the same metrics as the uninterrupted run
    train(make_config(tmp_path, "split", 2))
    train(make_config(tmp_path, "split", 4))
    split = metrics(tmp_path / "split")[1:]
    assert [m["step"] for m in split] == [1, 2, 3, 4]
    for a, b in zip(full, split):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)


def test_alignment_config_rejects_bad_values():
    cfg = dataclasses.replace(TrainConfig(model="x", data=DataConfig(train_path="y")),
                              alignment=AlignmentConfig(targets="best"))
    with pytest.raises(ValueError, match="alignment.targets"):
        cfg.validate()


@pytest.mark.slow
def test_alignment_only_with_likelihood_reward(tmp_path, monkeypatch):
    """mode=only: code rows are rolled out and harvested but not trained (step 1 has nothing to
    train and skips the update); reward=likelihood: the alignment reward is the teacher-forced
    mean log-probability of the true values, a negative number."""
    from coderl_jax.train.loop import train

    monkeypatch.setenv("CODERL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CODERL_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(Sampler, "generate", scripted_generate)
    base = make_config(tmp_path, "only", 2)
    cfg = dataclasses.replace(base, eval=EvalConfig(every=0), progress=True,  # the bar copes with no update
                              alignment=AlignmentConfig(mode="only", k=2, reward="likelihood"))
    train(cfg)
    raw = [json.loads(line) for line in (tmp_path / "only" / "metrics.jsonl").read_text().splitlines()]
    first, second = raw
    assert first["actor/updates"] == 0 and first["align/prompts"] == 0 and first["harvest/harvested"] > 0
    assert second["actor/updates"] == 1 and second["align/prompts"] == 2
    assert second["reward/align/mean"] < 0 and second["time/likelihood_s"] > 0
    assert second["advantage/std"] > 0  # the likelihood rewards differ within a group
    assert second["reward/align/group_std"] > 0 and second["reward/align/zero_variance_frac"] < 1
    assert np.isfinite(second["actor/loss"]) and second["actor/grad_norm"] > 1e-4
