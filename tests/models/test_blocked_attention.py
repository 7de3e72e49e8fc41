"""The accelerator branch of the no-cache forward (scanned layers, splash attention) against the
XLA:CPU one: same logits and gradients at real tokens, and no [L, L] scores anywhere in the program.

The TPU branch is traced with `compiling_for("tpu")` and the splash kernel runs in Pallas'
interpreter, so this runs on CPU; the sharded call (shard_map over a mesh) is checked on 8
simulated devices by multidevice_blocked_attention.py.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models import ModelConfig, init_params, transformer
from coderl_jax.models.blocked_attention import kernel_for, pallas_interpret
from coderl_jax.parallel.simulated import run_pytest_on_simulated_devices

# grouped heads (4 query heads over 2 kv heads), qk-norm off, biases on: the Qwen2 layout
CFG = ModelConfig(family="qwen2", vocab_size=96, hidden_size=64, intermediate_size=96, num_layers=2,
                  num_heads=4, num_kv_heads=2, head_dim=32, attention_bias=True, tie_word_embeddings=True)
T = 256  # two splash tiles of 128


def batch(rows: int = 3, t: int = T, seed: int = 0):
    """Rows as the trainer packs them: [left padding][prompt][response][right padding]."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, CFG.vocab_size, (rows, t)).astype(np.int32)
    starts = np.array([0, 37, 5][:rows])
    ends = np.array([t, t - 60, 190][:rows])
    cols = np.arange(t)[None]
    mask = (cols >= starts[:, None]) & (cols < ends[:, None])
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0).astype(np.int32)
    return tokens, positions, mask


def loss_fn(params, tokens, positions, mask, weights):
    hidden = transformer.forward(params, CFG, tokens, positions, mask_bt=mask, return_hidden=True).logits_btv
    return jnp.sum(jnp.where(mask[..., None], hidden, 0.0) * weights)


@functools.lru_cache(maxsize=None)
def results(backend: str):
    """(hidden states, gradients, jaxpr) of the forward traced for `backend`."""
    params = init_params(CFG, 0)
    tokens, positions, mask = batch()
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(*tokens.shape, CFG.hidden_size)), jnp.float32)
    args = (params, tokens, positions, mask, weights)
    with transformer.compiling_for(backend), pallas_interpret():
        hidden = jax.jit(lambda p, t, s, m: transformer.forward(p, CFG, t, s, mask_bt=m, return_hidden=True)
                         .logits_btv)(*args[:4])
        grads = jax.jit(jax.grad(loss_fn))(*args)
        jaxpr = jax.make_jaxpr(jax.grad(loss_fn))(*args)
    return np.asarray(hidden), jax.device_get(grads), jaxpr


def intermediate_shapes(jaxpr) -> list[tuple]:
    """Shapes of every value the program computes, through scans, remat and custom rules (not into
    kernels: a Pallas kernel's tiles live on chip)."""
    shapes = []
    for eqn in jaxpr.eqns:
        shapes += [tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape")]
        if eqn.primitive.name == "pallas_call":
            continue
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            shapes += intermediate_shapes(sub)
    return shapes


def scores(shapes: list[tuple]) -> list[tuple]:
    """Score-like values: [..., queries, keys] with a tile or more of queries over all T keys."""
    return [s for s in shapes if len(s) >= 3 and s[-1] == T and s[-2] >= 128]


def test_the_kernel_choice_follows_the_backend_and_the_shapes():
    assert kernel_for("tpu", 2048, 128, jnp.bfloat16) == "splash"
    assert kernel_for("tpu", 2000, 128, jnp.bfloat16) == "xla"  # not a whole number of 128-token tiles
    assert kernel_for("gpu", 2048, 128, jnp.bfloat16) == "cudnn"
    assert kernel_for("gpu", 2048, 128, jnp.float32) == "xla"  # cuDNN's fused kernel takes 16-bit operands
    assert kernel_for("cpu", 2048, 128, jnp.bfloat16) == "xla"


def test_tpu_branch_equals_the_cpu_kernel_at_real_tokens():
    cpu_hidden, cpu_grads, _ = results("cpu")
    tpu_hidden, tpu_grads, _ = results("tpu")
    _, _, mask = batch()
    assert np.abs(cpu_hidden[mask]).max() > 0.1
    np.testing.assert_allclose(tpu_hidden[mask], cpu_hidden[mask], atol=2e-5, rtol=1e-4)
    for (path, g_cpu), g_tpu in zip(jax.tree_util.tree_flatten_with_path(cpu_grads)[0], jax.tree.leaves(tpu_grads),
                                    strict=True):
        scale = float(np.abs(g_cpu).max())
        assert scale > 0, jax.tree_util.keystr(path)  # every weight gets a gradient
        np.testing.assert_allclose(g_tpu, g_cpu, atol=1e-4 * scale, rtol=1e-3, err_msg=jax.tree_util.keystr(path))


def test_tpu_branch_scans_its_layers_and_never_holds_the_scores():
    _, _, cpu = results("cpu")
    _, _, tpu = results("tpu")
    assert scores(intermediate_shapes(cpu.jaxpr))  # the XLA kernel does: the check can fail
    assert not scores(intermediate_shapes(tpu.jaxpr))
    prims = [e.primitive.name for e in tpu.jaxpr.eqns]
    scans = [e for e in tpu.jaxpr.eqns if e.primitive.name == "scan"]
    assert scans and all(e.params["length"] == CFG.num_layers for e in scans), prims  # forward and backward
    assert "scan" not in [e.primitive.name for e in cpu.jaxpr.eqns]


@pytest.mark.slow
def test_sharded_splash_on_8_simulated_devices():
    rc, out = run_pytest_on_simulated_devices(Path(__file__).parent / "multidevice_blocked_attention.py")
    assert rc == 0, out


def test_attention_xla_switches_the_blocked_kernel_off():
    import dataclasses

    from coderl_jax.models.config import ConfigError
    from coderl_jax.train.config import DataConfig, TrainConfig

    plain = CFG.replace(attention="xla")
    params = init_params(plain, 0)
    tokens, positions, mask = batch()
    with transformer.compiling_for("tpu"):
        jaxpr = jax.make_jaxpr(lambda p: transformer.forward(p, plain, tokens, positions, mask_bt=mask).logits_btv)(params)
    assert scores(intermediate_shapes(jaxpr.jaxpr))
    with pytest.raises(ConfigError, match="attention='flash'"):
        CFG.replace(attention="flash")
    with pytest.raises(ValueError, match="attention='flash'"):
        dataclasses.replace(TrainConfig(model="m", data=DataConfig(train_path="x")), attention="flash").validate()


def test_gpu_path_rotates_rows_to_sequence_lengths():
    # the cuDNN branch's padding handling (rows rotated so real tokens come first, lengths for the
    # kernel), run with XLA's kernel: equal to the CPU kernel at real tokens, all-padding rows finite
    from coderl_jax.models.blocked_attention import cudnn_attention

    rng = np.random.default_rng(3)
    b, t, n, k, d = 4, 64, 4, 2, 16
    q, kk, v = (jnp.asarray(rng.normal(size=(b, t, h, d)), jnp.float32) for h in (n, k, k))
    cols = np.arange(t)[None]
    starts, ends = np.array([0, 9, 30, 0])[:, None], np.array([t, 50, 31, 0])[:, None]
    mask = jnp.asarray((cols >= starts) & (cols < ends))  # full, both sides, one token, none
    ref = transformer.causal_self_attention(q, kk, v, mask)
    out = cudnn_attention(q, kk, v, mask, implementation="xla")
    real = np.asarray(mask)
    np.testing.assert_allclose(np.asarray(out)[real], np.asarray(ref)[real], atol=1e-5, rtol=1e-5)
    assert np.isfinite(np.asarray(out)).all()
    g = jax.grad(lambda q: jnp.sum(jnp.where(mask[..., None], cudnn_attention(q, kk, v, mask, implementation="xla"), 0)))(q)
    g_ref = jax.grad(lambda q: jnp.sum(jnp.where(mask[..., None], transformer.causal_self_attention(q, kk, v, mask), 0)))(q)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=1e-5, rtol=1e-4)
