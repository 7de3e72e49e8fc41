"""The training attention (`transformer.causal_self_attention`) against plain references.

On XLA:CPU it runs the grouped kernel with a hand-written backward pass and a causal split into
two query blocks (t >= 128); elsewhere the per-head layout. Both are checked here, forward against
a NumPy loop over heads and positions, gradients against autodiff of a one-einsum JAX attention,
on left-padded rows (queries that see no valid key included) and for grouped and plain
multi-head attention.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models import transformer


def numpy_attention(q, k, v, key_mask):
    """q [b, t, n, d], k/v [b, t, kh, d], key_mask [b, t] -> [b, t, n*d]; float64 loops."""
    b, t, n, d = q.shape
    g = n // k.shape[2]
    out = np.zeros((b, t, n, d))
    for bi in range(b):
        for h in range(n):
            for i in range(t):
                allowed = (np.arange(t) <= i) & key_mask[bi]
                scores = k[bi, :, h // g].astype(np.float64) @ q[bi, i, h] / math.sqrt(d)
                scores = np.where(allowed, scores, -1e30)
                p = np.exp(scores - scores.max())
                out[bi, i, h] = (p / p.sum()) @ v[bi, :, h // g].astype(np.float64)
    return out.reshape(b, t, n * d)


def einsum_attention(q, k, v, key_mask):
    """The same math in one einsum per product, no blocking: the gradient reference."""
    b, t, n, d = q.shape
    g = n // k.shape[2]
    k, v = jnp.repeat(k, g, axis=2), jnp.repeat(v, g, axis=2)
    scores = jnp.einsum("btnd,bsnd->bnts", q, k) / math.sqrt(d)
    allowed = jnp.tril(jnp.ones((t, t), bool))[None] & key_mask[:, None, :]
    probs = jax.nn.softmax(jnp.where(allowed[:, None], scores, transformer.NEG_INF), axis=-1)
    return jnp.einsum("bnts,bsnd->btnd", probs, v).reshape(b, t, n * d)


def _inputs(t, n, kh, d=8, b=3, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(b, t, h, d)).astype(np.float32) for h in (n, kh, kh))
    key_mask = np.ones((b, t), bool)
    key_mask[1, : t // 3] = False  # left padding
    key_mask[2, :-1] = False  # only the last key valid: every earlier query sees no key at all
    # a query that sees no valid key (left padding) gets some finite output that nothing reads: the
    # loss masks it and no other query attends to it; compare and differentiate the other rows
    seen = np.cumsum(key_mask, axis=1) > 0
    cotangent = (rng.normal(size=(b, t, n * d)) * seen[..., None]).astype(np.float32)
    return q, k, v, key_mask, seen, cotangent


@pytest.mark.parametrize("backend", ["cpu", "tpu"])  # grouped kernel / per-head layout
@pytest.mark.parametrize("t,n,kh", [(12, 4, 2), (130, 4, 1), (128, 2, 2)])  # one block / two blocks
def test_training_attention_matches_references(backend, t, n, kh):
    q, k, v, key_mask, seen, cotangent = _inputs(t, n, kh)
    ours = lambda q, k, v: transformer.causal_self_attention(q, k, v, jnp.asarray(key_mask))  # noqa: E731
    with transformer.compiling_for(backend):  # traced (jit) inside: the layout is chosen at trace time
        out = jax.jit(ours)(q, k, v)
        grads = jax.jit(jax.grad(lambda *a: jnp.sum(ours(*a) * cotangent), argnums=(0, 1, 2)))(q, k, v)
    ref = numpy_attention(q, k, v, key_mask)
    assert np.isfinite(np.asarray(out)).all()
    assert np.abs(np.asarray(out) - ref)[seen].max() <= 2e-6
    ref_grads = jax.jit(jax.grad(lambda *a: jnp.sum(einsum_attention(*a, jnp.asarray(key_mask)) * cotangent),
                                 argnums=(0, 1, 2)))(q, k, v)
    for name, ours_g, ref_g in zip("qkv", grads, ref_grads):
        scale = float(jnp.abs(ref_g).max())
        assert scale > 0, name
        assert float(jnp.abs(ours_g - ref_g).max()) <= 1e-5 * scale, name


@pytest.mark.parametrize("backend", ["cpu", "tpu"])
def test_rope_tables_computed_once_equal_the_plain_tables(backend):
    # on XLA:CPU the no-cache path computes its RoPE tables inside a while loop that runs once (so
    # XLA keeps them as buffers); the loop starts from the tables themselves, so whatever its trip
    # count (0 when every position is negative), the values are rope_tables'
    from coderl_jax.models import ModelConfig

    cfg = ModelConfig(family="qwen2", vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=1,
                      num_heads=4, num_kv_heads=2, head_dim=8)
    for positions in (np.arange(12)[None].repeat(2, 0), -1 - np.arange(12)[None].repeat(2, 0)):
        positions = jnp.asarray(positions, jnp.int32)
        with transformer.compiling_for(backend):
            ours = jax.jit(lambda p: transformer._rope_tables_once(cfg, p, jnp.float32))(positions)
        plain = transformer.rope_tables(cfg, positions, jnp.float32)
        for a, b in zip(ours, plain):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
