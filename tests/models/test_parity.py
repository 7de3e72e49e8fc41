"""Logit parity with transformers (float32, PyTorch CPU) for every family, on import and export.

Tolerance: max |logit difference| <= 1e-4 over the valid positions of a left-padded batch: both
sides compute in float32, so only the order of the sums differs, which stays far below that.
bfloat16 parameters and compute are checked loosely: bfloat16 has 8 bits of mantissa, so the
logits move by a visible fraction of their size; the check bounds the error by 5% of the largest
|logit| and asks the top token to agree at >= 90% of the positions (where the two best logits
nearly tie, rounding can swap them).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hf_fixtures import MODELS, batch, max_diff_valid, torch_logits

from coderl_jax.models import hf_io, transformer

TOL = 1e-4


@functools.lru_cache(maxsize=None)
def _jitted(cfg):
    return jax.jit(lambda p, t, q, m: transformer.forward(p, cfg, t, q, mask_bt=m).logits_btv)


def our_logits(cfg, params):
    tokens, mask, positions = batch()
    return np.asarray(_jitted(cfg)(params, tokens, positions, mask), np.float32)


@pytest.mark.parametrize("name", list(MODELS))
def test_load_hf_matches_transformers(hf_models, name):
    model = hf_models(name)
    cfg, params = hf_io.load_hf(model.path)
    diff = max_diff_valid(our_logits(cfg, params), model.ref_logits_btv, batch()[1])
    print(f"{name}: max |logit diff| = {diff:.2e}")
    assert diff <= TOL


@pytest.mark.parametrize("name", ["qwen2_tied", "qwen3", "llama"])
def test_export_loads_in_transformers_with_same_logits(hf_models, tmp_path, name):
    import transformers

    model = hf_models(name)
    cfg, params = hf_io.load_hf(model.path)
    out = hf_io.save_hf(cfg, params, tmp_path / "export", max_shard_bytes=200_000 if name == "llama" else 2**30)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, dtype="float32").eval()
    logits = torch_logits(reloaded, *batch())
    assert max_diff_valid(logits, model.ref_logits_btv, batch()[1]) <= 1e-6  # same weights, same code
    if name == "llama":
        assert (out / hf_io.INDEX_FILE).exists()


def test_bfloat16_params_and_compute(hf_models):
    model = hf_models("qwen3")
    cfg, params = hf_io.load_hf(model.path, param_dtype="bfloat16", dtype=jnp.bfloat16)
    assert (cfg.param_dtype, cfg.dtype) == ("bfloat16", "bfloat16")
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
    logits = our_logits(cfg, params)
    ref, mask = model.ref_logits_btv, batch()[1]
    assert np.isfinite(logits).all()
    assert max_diff_valid(logits, ref, mask) <= 0.05 * np.abs(ref).max()
    agree = (logits.argmax(-1) == ref.argmax(-1))[mask].mean()
    assert agree >= 0.9


@pytest.mark.parametrize("name", ["qwen2_untied", "qwen3"])  # q/k/v biases; q/k norms and head_dim
def test_fused_and_separate_projections_agree(hf_models, monkeypatch, name):
    """XLA:CPU computes q/k/v and gate/up as one matmul each (`transformer.fuse_projections`), other
    backends as separate ones; the tests run on the CPU, so the separate path is checked here against
    the fused one: logits with and without a cache, and the gradients of a loss through both (the
    fused MLP has a hand-written backward pass)."""
    cfg, params = hf_io.load_hf(hf_models(name).path)
    tokens, mask, positions = batch()
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(*tokens.shape, cfg.vocab_size)), jnp.float32)

    def run(fused: bool):
        monkeypatch.setattr(transformer, "fuse_projections", lambda: fused)

        def loss(p):  # traced afresh: jax.jit would reuse the other path's trace
            logits = transformer.forward(p, cfg, tokens, positions, mask_bt=mask).logits_btv
            return (jnp.where(mask[..., None], logits, 0.0) * weights).sum(), logits

        (_, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
        cache = transformer.init_kv_cache(cfg, tokens.shape[0], tokens.shape[1])
        cached = transformer.forward(params, cfg, tokens, positions, kv_cache=cache, cache_index=0,
                                     key_mask_bs=mask).logits_btv
        return np.asarray(logits), np.asarray(cached), grads

    fused, separate = run(True), run(False)
    assert max_diff_valid(fused[0], separate[0], mask) <= 1e-5
    assert max_diff_valid(fused[1], separate[1], mask) <= 1e-5
    worst = max(float(jnp.abs(a - b).max() / (jnp.abs(b).max() + 1e-6))
                for a, b in zip(jax.tree.leaves(fused[2]), jax.tree.leaves(separate[2])))
    assert worst <= 1e-5, worst
    mlp_grad = separate[2]["layers"][0]["mlp"]["gate_proj"]
    assert float(jnp.abs(mlp_grad).max()) > 0  # the comparison is not between zeros
