"""The sharded train step on 8 simulated CPU devices equals the single-device step.

Run by test_train_step.py in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8;
not collected by the normal run (its name does not start with test_).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding

from coderl_jax.models import ModelConfig, init_params
from coderl_jax.parallel import make_mesh
from coderl_jax.optim import OptimConfig, make_optimizer
from coderl_jax.rl.train_step import (
    LossConfig, init_train_state, make_logprob_fn, make_sharded_train_step, make_train_step, shard_batch, shard_state,
)

MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4)]  # (data, fsdp, tensor)
# every dimension divisible by the tensor axis (4), so parameters really are split
CFG = ModelConfig(family="qwen2", vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=1,
                  num_heads=4, num_kv_heads=4, head_dim=8, attention_bias=True, tie_word_embeddings=True)
LOSS = LossConfig(kl_coef=0.05)
TOL = 1e-5
OPTIMIZERS = {
    # SGD with lr 1: the parameter change is the gradient itself, compared absolutely.
    "sgd": optax.sgd(1.0),
    # AdamW's first update is lr * g / (|g| + eps) ~ lr * sign(g): with eps=1e-8 a gradient entry
    # near zero flips sign under a different float summation order (the sharded all-reduce) and
    # moves by 2 * lr. With eps=1e-4 the update is a smooth function of g (slope lr / eps = 100),
    # so summation noise of ~1e-9 in g stays ~1e-7 in the parameters and the 1e-5 check means
    # something; gradient clipping and weight decay are on as in training.
    "adamw": make_optimizer(OptimConfig(learning_rate=1e-2, eps=1e-4, weight_decay=0.01, grad_clip=1.0)),
}


def setup_module():
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"


@functools.lru_cache(maxsize=None)
def setup():
    rng = np.random.RandomState(0)
    b, length, prompt = 16, 12, 5
    params = init_params(CFG, 0)
    tokens = rng.randint(0, CFG.vocab_size, (b, length)).astype(np.int32)
    pads = rng.randint(0, 3, b)
    ends = prompt + rng.randint(2, length - prompt + 1, b)
    cols = np.arange(length)[None]
    attn = (cols >= pads[:, None]) & (cols < ends[:, None])
    loss = (cols >= prompt - 1) & (cols < ends[:, None] - 1)
    batch = dict(tokens=tokens, positions=np.maximum(np.cumsum(attn, 1) - 1, 0).astype(np.int32),
                 attn_mask=attn, loss_mask=loss, advantages=np.repeat(rng.normal(0, 1, (b, 1)), length, 1))
    old = np.asarray(make_logprob_fn(CFG)(params, batch))
    batch["old_logprobs"] = old + rng.normal(0, 0.3, old.shape)  # some ratios get clipped
    batch["ref_logprobs"] = old + rng.normal(0, 0.5, old.shape)
    batch = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in batch.items()}
    return jax.device_get(params), batch


@functools.lru_cache(maxsize=None)
def single_device(opt_name, num_micro):
    params, batch = setup()
    opt = OPTIMIZERS[opt_name]
    step = make_train_step(CFG, LOSS, opt, num_micro=num_micro)
    state, metrics = step(init_train_state(jax.device_put(params, jax.devices()[0]), opt), batch, jax.random.key(0))
    return jax.device_get(state), jax.device_get(metrics)


def max_diff(a, b):
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max((float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs), default=0.0)


CASES = [((8, 1, 1), "sgd", 2), ((2, 2, 2), "sgd", 2), ((1, 2, 4), "sgd", 1), ((1, 2, 4), "adamw", 2),
         ((2, 2, 2), "adamw", 1)]  # every mesh of MESHES with SGD, both optimizers and micro-batch counts


@pytest.mark.parametrize("shape,opt_name,num_micro", CASES, ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v))
def test_sharded_step_equals_single_device(shape, opt_name, num_micro):
    params, batch = setup()
    mesh = make_mesh(*shape)
    opt = OPTIMIZERS[opt_name]
    step, state_sh, batch_sh = make_sharded_train_step(CFG, LOSS, opt, mesh, num_micro=num_micro)
    state = shard_state(init_train_state(params, opt), state_sh)
    sharded_batch = shard_batch(batch, batch_sh, num_micro)

    # the arrays really are split: parameters and Adam moments over fsdp/tensor, batch over data
    def split(x):
        return isinstance(x.sharding, NamedSharding) and not x.sharding.is_fully_replicated

    q_proj = state.params["layers"][0]["self_attn"]["q_proj"]
    assert split(q_proj) == (shape[1] * shape[2] > 1)
    assert split(sharded_batch["tokens"])
    if opt_name == "adamw":
        mu = state.opt_state[1][0].mu["layers"][0]["self_attn"]["q_proj"]
        assert mu.sharding == q_proj.sharding

    new_state, metrics = step(state, sharded_batch, jax.random.key(0))
    assert new_state.params["layers"][0]["self_attn"]["q_proj"].sharding == q_proj.sharding
    ref_state, ref_metrics = single_device(opt_name, num_micro)
    assert float(metrics["skipped"]) == 0.0
    for key in ("loss", "pg_loss", "kl_loss", "clipfrac", "grad_norm"):
        assert abs(float(metrics[key]) - float(ref_metrics[key])) < TOL, key
    param_diff = max_diff(jax.device_get(new_state.params), ref_state.params)
    moved = max_diff(ref_state.params, params)
    print(f"mesh {shape} {opt_name} micro={num_micro}: loss diff "
          f"{abs(float(metrics['loss']) - float(ref_metrics['loss'])):.2e}, max param diff {param_diff:.2e} "
          f"(update size {moved:.2e})")
    assert moved > 1e-3  # the step really moved the parameters
    assert param_diff < TOL
    assert max_diff(jax.device_get(new_state.opt_state), ref_state.opt_state) < TOL
