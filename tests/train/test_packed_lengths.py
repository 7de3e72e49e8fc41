"""Declared packed lengths (`packed_lengths`): code and alignment rows share one array per
mini-batch at a declared length, and the update it drives equals the default packing's (each
task packed apart), the same rows in each mini-batch."""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models import tiny, transformer
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.sampling.sampler import Completion
from coderl_jax.train import phases
from coderl_jax.train.config import DataConfig, RolloutConfig, TrainConfig
from coderl_jax.train.programs import build_scoring, build_update, init_state

G = 2


def completion(rng, n):
    ids = rng.randint(3, 250, n).tolist()
    return Completion(ids, "", (-rng.rand(n)).tolist(), [0.0] * n, "length")


def fake_run(cfg, model_cfg, params):
    program = build_update(cfg, model_cfg)
    score = build_scoring(cfg, model_cfg, program)

    def logprobs(p, rows):
        lp, ent = score(p, {k: jnp.asarray(v) for k, v in rows.items()})
        return np.asarray(lp), np.asarray(ent)

    return types.SimpleNamespace(
        cfg=cfg, max_len=cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens,
        sampler=types.SimpleNamespace(pad_id=lambda: 0), state=init_state(program, jax.tree.map(jnp.copy, params)),
        ref_params=params,
        update_fn=program.step_fn, logprobs=logprobs, row_multiple=lambda: 1,
        on_devices=lambda rows: {k: jnp.asarray(v) for k, v in rows.items()})


@pytest.fixture(scope="module")
def step():
    """3 code prompts (short) and 1 alignment prompt (long), 2 samples each, with advantages."""
    rng = np.random.RandomState(0)
    code = [rng.randint(3, 250, n).tolist() for n in (20, 25, 30)]
    align = [rng.randint(3, 250, 90).tolist()]
    comps = [completion(rng, n) for n in (5, 40, 12, 7, 33, 9)] + [completion(rng, n) for n in (20, 60)]
    batch = phases.StepBatch(step=0, problems=[None] * 3, code_prompt_ids=code, records=[None],
                             align_prompt_ids=align, code_completions=comps[:6], align_completions=comps[6:],
                             advantages=rng.randn(8).astype(np.float32))
    return batch


@pytest.mark.parametrize("updates", [1, 2])
def test_one_array_at_a_declared_length_updates_like_two_segments(step, updates):
    model_cfg = tiny.tiny_config()
    params = transformer.init_params(model_cfg, 0)
    base = TrainConfig(model="tiny-random", updates_per_step=updates, data=DataConfig(train_path="x", max_prompt_tokens=100),
                       rollout=RolloutConfig(prompts_per_step=4, group_size=G, max_new_tokens=64),
                       loss=LossConfig(kl_coef=0.01))
    results = {}
    for declared in ((), (160, 164)):
        cfg = dataclasses.replace(base, packed_lengths=declared).validate()
        run = fake_run(cfg, model_cfg, params)
        segments = phases.pack(run, step)
        scored = phases.score(run, step, segments)
        state, metrics = phases.update(run, scored, 0)
        results[declared] = (segments, scored, state, metrics)
    (seg_a, sc_a, st_a, m_a), (seg_b, sc_b, st_b, m_b) = results[()], results[(160, 164)]
    assert [(s.name, s.arrays["tokens"].shape) for s in seg_a] == [("code", (6, 128)), ("align", (2, 164))]  # 256 capped
    assert [(s.name, s.arrays["tokens"].shape) for s in seg_b] == [("all", (8, 160))]  # 90 + 60 fits in 160
    assert sc_a.entropy.keys() == sc_b.entropy.keys() == {"entropy/code", "entropy/align"}
    for k in sc_a.entropy:
        np.testing.assert_allclose(sc_a.entropy[k], sc_b.entropy[k], rtol=1e-5)
    assert len(m_a) == len(m_b) == updates
    for a, b in zip(m_a, m_b):
        assert a["num_tokens"] == b["num_tokens"]  # the same rows in each mini-batch
        for key in ("loss", "pg_loss", "kl_loss", "grad_norm"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-7)
    for a, b in zip(jax.tree.leaves(st_a.params), jax.tree.leaves(st_b.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    moved = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(st_a.params), jax.tree.leaves(params)))
    assert moved > 1e-6  # the update did something


def test_declared_lengths_are_checked():
    cfg = TrainConfig(model="tiny-random", data=DataConfig(train_path="x", max_prompt_tokens=100),
                      rollout=RolloutConfig(max_new_tokens=64))
    for bad in ((128,), (160, 128), (64, 128, 160, 256)):
        with pytest.raises(ValueError, match="packed_lengths"):
            dataclasses.replace(cfg, packed_lengths=bad).validate()
    dataclasses.replace(cfg, packed_lengths=(128, 164)).validate()
