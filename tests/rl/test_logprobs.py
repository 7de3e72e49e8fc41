"""Chunked log-probs equal the full log-softmax (values and gradients), in any chunking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.rl import token_logprobs


def np_logprobs(hidden, head, targets, temperature):
    logits = hidden.astype(np.float64) @ head.astype(np.float64) / temperature
    logits -= logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits).sum(-1))
    p = np.exp(logits - logz[..., None])
    logp = np.take_along_axis(logits, targets[..., None], -1)[..., 0] - logz
    ent = -(p * np.log(p)).sum(-1)
    return logp, ent


@pytest.mark.parametrize("chunk_rows", [1, 7, 16, 1024])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_logprobs_match_numpy(chunk_rows, temperature):
    rng = np.random.RandomState(0)
    hidden = rng.normal(0, 1, (3, 5, 8)).astype(np.float32)
    head = rng.normal(0, 1, (8, 50)).astype(np.float32)
    targets = rng.randint(0, 50, (3, 5))
    logp, ent = token_logprobs(jnp.asarray(hidden), jnp.asarray(head), jnp.asarray(targets),
                               chunk_rows=chunk_rows, temperature=temperature)
    ref_logp, ref_ent = np_logprobs(hidden, head, targets, temperature)
    np.testing.assert_allclose(np.asarray(logp), ref_logp, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ent), ref_ent, rtol=1e-4, atol=1e-4)


def test_chunked_gradient_equals_unchunked():
    rng = np.random.RandomState(1)
    hidden = jnp.asarray(rng.normal(0, 1, (2, 6, 8)), jnp.float32)
    head = jnp.asarray(rng.normal(0, 1, (8, 40)), jnp.float32)
    targets = jnp.asarray(rng.randint(0, 40, (2, 6)))

    def loss(h, w, chunk):
        lp, _ = token_logprobs(h, w, targets, chunk_rows=chunk)
        return jnp.sum(lp * jnp.arange(12.0).reshape(2, 6))

    g_full = jax.grad(loss, argnums=(0, 1))(hidden, head, 1024)
    g_chunk = jax.grad(loss, argnums=(0, 1))(hidden, head, 5)
    for a, b in zip(g_full, g_chunk):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # and the reference gradient: d logp / d logits = onehot - softmax
    ref = jax.grad(lambda h: jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(h @ head), targets[..., None], -1)[..., 0]
                                     * jnp.arange(12.0).reshape(2, 6)))(hidden)
    np.testing.assert_allclose(np.asarray(g_chunk[0]), np.asarray(ref), rtol=1e-4, atol=1e-5)


def test_no_full_vocab_buffer_in_chunked_program():
    """The compiled chunked program never holds a [rows, vocab] f32 buffer for all rows."""
    rows, vocab, h = 512, 4096, 16
    hidden = jnp.zeros((1, rows, h))
    head = jnp.zeros((h, vocab))
    targets = jnp.zeros((1, rows), jnp.int32)
    f = jax.jit(lambda x, w: jnp.sum(token_logprobs(x, w, targets, chunk_rows=64)[0]))
    mem = jax.jit(jax.grad(lambda x, w: f(x, w), argnums=(0, 1))).lower(hidden, head).compile().memory_analysis()
    full_bytes = rows * vocab * 4
    assert mem.temp_size_in_bytes < full_bytes / 2, (mem.temp_size_in_bytes, full_bytes)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_custom_backward_equals_autodiff_of_the_plain_formula(temperature):
    # the hand-written backward (log-prob and entropy terms, temperature) against jax.grad of the
    # straightforward log_softmax / entropy expression
    rng = np.random.RandomState(2)
    hidden = jnp.asarray(rng.normal(0, 1, (2, 6, 8)), jnp.float32)
    head = jnp.asarray(rng.normal(0, 1, (8, 40)), jnp.float32)
    targets = jnp.asarray(rng.randint(0, 40, (2, 6)))
    a, c = jnp.asarray(rng.normal(0, 1, (2, 6)), jnp.float32), jnp.asarray(rng.normal(0, 1, (2, 6)), jnp.float32)

    def plain(h, w):
        logp_btv = jax.nn.log_softmax(h @ w / temperature)
        logp = jnp.take_along_axis(logp_btv, targets[..., None], -1)[..., 0]
        ent = -jnp.sum(jnp.exp(logp_btv) * logp_btv, -1)
        return jnp.sum(a * logp + c * ent)

    def ours(h, w):
        logp, ent = token_logprobs(h, w, targets, chunk_rows=5, temperature=temperature)
        return jnp.sum(a * logp + c * ent)

    for g_ours, g_plain in zip(jax.grad(ours, (0, 1))(hidden, head), jax.grad(plain, (0, 1))(hidden, head)):
        np.testing.assert_allclose(np.asarray(g_ours), np.asarray(g_plain), rtol=1e-5, atol=1e-5)


def test_unchunked_when_small_equals_chunked():
    # max_unchunked_elements >= rows x vocab takes all rows in one chunk (no loop): same values and gradients
    rng = np.random.RandomState(3)
    hidden = jnp.asarray(rng.normal(0, 1, (2, 6, 8)), jnp.float32)
    head = jnp.asarray(rng.normal(0, 1, (8, 40)), jnp.float32)
    targets = jnp.asarray(rng.randint(0, 40, (2, 6)))

    def loss(h, w, **kw):
        lp, ent = token_logprobs(h, w, targets, chunk_rows=5, **kw)
        return jnp.sum(lp * jnp.arange(12.0).reshape(2, 6)) + jnp.sum(ent)

    ref = jax.value_and_grad(loss, argnums=(0, 1))(hidden, head)
    one = jax.value_and_grad(loss, argnums=(0, 1))(hidden, head, max_unchunked_elements=12 * 40)
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(one)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    jaxpr = str(jax.make_jaxpr(lambda h: token_logprobs(h, head, targets, chunk_rows=5,
                                                        max_unchunked_elements=12 * 40))(hidden))
    assert "while" not in jaxpr and "scan" not in jaxpr
