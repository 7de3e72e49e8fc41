"""The TPU branch of the sharded train step (scanned layers, splash attention per shard under
shard_map) on 8 simulated CPU devices equals the XLA:CPU step on one device.

Run by test_blocked_attention.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8; not collected by the normal run.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from coderl_jax.models import init_params, transformer
from coderl_jax.models.blocked_attention import pallas_interpret
from coderl_jax.parallel import make_mesh
from coderl_jax.rl.train_step import (
    LossConfig, init_train_state, make_logprob_fn, make_sharded_train_step, make_train_step, shard_batch, shard_state,
)
from test_blocked_attention import CFG, batch

LOSS = LossConfig(kl_coef=0.05)


def setup_module():
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"


def rl_batch():
    tokens, positions, mask = (np.concatenate([x] * 3)[:8] for x in batch())  # 8 rows: 2 per data shard
    rng = np.random.default_rng(2)
    cols = np.arange(tokens.shape[1])[None]
    ends = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
    loss = mask & (cols >= 60) & (cols < ends[:, None] - 1)
    out = dict(tokens=tokens, positions=positions, attn_mask=mask, loss_mask=loss,
               advantages=np.repeat(rng.normal(0, 1, (8, 1)), tokens.shape[1], 1).astype(np.float32))
    old = np.asarray(make_logprob_fn(CFG)(init_params(CFG, 0), out))
    out["old_logprobs"] = (old + rng.normal(0, 0.3, old.shape)).astype(np.float32)
    out["ref_logprobs"] = (old + rng.normal(0, 0.5, old.shape)).astype(np.float32)
    return out


@pytest.mark.parametrize("shape", [(2, 2, 2), (1, 4, 2)], ids=["2x2x2", "1x4x2"])
def test_sharded_tpu_branch_equals_the_cpu_step(shape):
    params, data = jax.device_get(init_params(CFG, 0)), rl_batch()  # host copies: the steps donate their state
    opt = optax.sgd(1.0)  # the parameter change is the gradient itself
    ref_state, ref_metrics = make_train_step(CFG, LOSS, opt)(init_train_state(params, opt), data, jax.random.key(0))

    mesh = make_mesh(*shape)  # rows over data x fsdp, the 4 heads over tensor
    with transformer.compiling_for("tpu"), pallas_interpret():
        step, state_sh, batch_sh = make_sharded_train_step(CFG, LOSS, opt, mesh)
        lowered = step.lower(shard_state(init_train_state(params, opt), state_sh), shard_batch(data, batch_sh),
                             jax.random.key(0))
        state, metrics = step(shard_state(init_train_state(params, opt), state_sh), shard_batch(data, batch_sh),
                              jax.random.key(0))
    assert "shard_map" in lowered.as_text() or "sdy.manual_computation" in lowered.as_text()
    for key in ("loss", "pg_loss", "kl_loss", "grad_norm"):
        assert abs(float(metrics[key]) - float(ref_metrics[key])) < 1e-4 * max(1.0, abs(float(ref_metrics[key]))), key
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                for a, b in zip(jax.tree.leaves(ref_state.params), jax.tree.leaves(params)))
    diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for a, b in zip(jax.tree.leaves(jax.device_get(state.params)), jax.tree.leaves(ref_state.params)))
    assert moved > 1e-3 and diff < 1e-4 * moved, (moved, diff)
