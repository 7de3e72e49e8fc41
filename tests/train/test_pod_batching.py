"""The loop's two memory bounds for pods: sampler calls of `rollout.prompts_per_generate` prompts, and
old / reference log-probs scored one update micro-batch of rows at a time (what `coderl plan`
budgets for)."""

from __future__ import annotations

import types

import numpy as np

from coderl_jax.train import phases
from coderl_jax.train.config import RolloutConfig, TrainConfig


def test_scoring_runs_one_micro_batch_of_rows_at_a_time():
    calls = []

    def logprobs(params, batch):
        calls.append(len(batch["tokens"]))
        return batch["tokens"] * 1.0, batch["tokens"] * 2.0

    ctx = types.SimpleNamespace(cfg=TrainConfig(updates_per_step=2, micro_batches=2), logprobs=logprobs)
    tokens = np.arange(16).reshape(8, 2)
    logp, entropy = phases.score_rows(ctx, None, {"tokens": tokens})
    assert calls == [2, 2, 2, 2]
    np.testing.assert_array_equal(logp, tokens)
    np.testing.assert_array_equal(entropy, 2 * tokens)
    calls.clear()
    ctx.cfg = TrainConfig()  # one update, one micro-batch: a single call, as before
    phases.score_rows(ctx, None, {"tokens": tokens})
    assert calls == [8]


def test_sampling_in_calls_of_prompts_per_generate():
    seen = []

    class FakeSampler:
        def generate(self, ids, sp):
            seen.append((list(ids), sp.seed))
            return [[f"c{i}"] * sp.n for i in ids]

    ctx = types.SimpleNamespace(cfg=TrainConfig(rollout=RolloutConfig(group_size=2, prompts_per_generate=2)),
                                sampler=FakeSampler())
    groups, _ = phases.sample(ctx, [1, 2, 3, 4, 5], seed=7)
    assert seen == [([1, 2], 7), ([3, 4], 9), ([5], 11)]  # distinct seeds per call
    assert groups == [[f"c{i}"] * 2 for i in range(1, 6)]
    seen.clear()
    ctx.cfg = TrainConfig(rollout=RolloutConfig(group_size=2))  # 0: all prompts in one call, the step's seed
    phases.sample(ctx, [1, 2, 3], seed=7)
    assert seen == [([1, 2, 3], 7)]
