"""Log-probs of chosen tokens without materialising [batch, length, vocab] logits.

The final hidden states [B, T, H] are flattened to N = B*T rows and processed in row chunks:
each chunk computes its logits [chunk, V] against the output projection [H, V], takes the
log-softmax at the target ids and the entropy; a custom backward pass recomputes the chunk's
logits and forms d logits directly (one fused elementwise pass, no scatter for the gather), so
peak memory is one chunk's logits, not N x V (Qwen's V is 152k).

When all N x V logits are small (`max_unchunked_elements`, e.g. a test-sized vocabulary), they are
taken in one chunk: no loop, and one weight-gradient matmul instead of one per chunk (each chunk
pays the loop's overhead and a matmul too short to keep the CPU's vector units busy).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _chunk_logits(hidden_ch, head_hv, temperature):
    return jnp.dot(hidden_ch, head_hv.astype(hidden_ch.dtype)).astype(jnp.float32) / temperature


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _chunk_stats(hidden_ch, head_hv, targets_c, temperature):
    """(logprob_c, entropy_c) of one chunk; the backward pass recomputes the chunk's logits."""
    return _chunk_stats_fwd(hidden_ch, head_hv, targets_c, temperature)[0]


def _chunk_stats_fwd(hidden_ch, head_hv, targets_c, temperature):
    logits_cv = _chunk_logits(hidden_ch, head_hv, temperature)
    lse_c = jax.nn.logsumexp(logits_cv, axis=-1)
    onehot_cv = jnp.arange(logits_cv.shape[-1])[None, :] == targets_c[:, None]
    target_logit_c = jnp.sum(jnp.where(onehot_cv, logits_cv, 0.0), axis=-1)
    entropy_c = lse_c - jnp.sum(jnp.exp(logits_cv - lse_c[:, None]) * logits_cv, axis=-1)
    return (target_logit_c - lse_c, entropy_c), (hidden_ch, head_hv, targets_c, lse_c, entropy_c)


def _chunk_stats_bwd(temperature, residuals, cotangents):
    # d logp_c / d z_cv = onehot - p;  d entropy_c / d z_cv = -p (log p + entropy)   (z = logits / T)
    hidden_ch, head_hv, targets_c, lse_c, entropy_c = residuals
    g_logp_c, g_ent_c = cotangents
    logits_cv = _chunk_logits(hidden_ch, head_hv, temperature)
    logp_cv = logits_cv - lse_c[:, None]
    probs_cv = jnp.exp(logp_cv)
    onehot_cv = jnp.arange(logits_cv.shape[-1])[None, :] == targets_c[:, None]
    dz_cv = jnp.where(onehot_cv, g_logp_c[:, None], 0.0) - probs_cv * (
        g_logp_c[:, None] + g_ent_c[:, None] * (logp_cv + entropy_c[:, None]))
    dz_cv = (dz_cv / temperature).astype(hidden_ch.dtype)
    d_hidden_ch = jnp.dot(dz_cv, head_hv.astype(hidden_ch.dtype).T)
    d_head_hv = jnp.dot(hidden_ch.T, dz_cv).astype(head_hv.dtype)
    return d_hidden_ch, d_head_hv, None


_chunk_stats.defvjp(_chunk_stats_fwd, _chunk_stats_bwd)


def token_logprobs(hidden_bth, head_hv, targets_bt, *, chunk_rows: int = 1024, temperature: float = 1.0,
                   max_unchunked_elements: int = 0):
    """Returns (logprobs_bt, entropy_bt) in float32.

    `hidden_bth` are the final normalised hidden states at the positions that *predict*
    `targets_bt` (i.e. already shifted by the caller). `temperature` divides the logits, as the
    sampler did, so that trainer and sampler log-probs are comparable. When rows x vocab is at
    most `max_unchunked_elements`, `chunk_rows` is ignored: all rows form one chunk.
    """
    b, t, h = hidden_bth.shape
    n = b * t
    hidden_nh = hidden_bth.reshape(n, h)
    targets_n = targets_bt.reshape(n).astype(jnp.int32)
    chunk = n if n * head_hv.shape[-1] <= max_unchunked_elements else min(chunk_rows, n)
    pad = (-n) % chunk
    if pad:
        hidden_nh = jnp.pad(hidden_nh, ((0, pad), (0, 0)))
        targets_n = jnp.pad(targets_n, (0, pad))
    num_chunks = (n + pad) // chunk
    body = lambda hc, tc: _chunk_stats(hc, head_hv, tc, temperature)  # noqa: E731
    if num_chunks == 1:
        logp_n, ent_n = body(hidden_nh, targets_n)
    else:
        logp_kc, ent_kc = jax.lax.map(
            lambda args: body(*args),
            (hidden_nh.reshape(num_chunks, chunk, h), targets_n.reshape(num_chunks, chunk)),
        )
        logp_n, ent_n = logp_kc.reshape(-1), ent_kc.reshape(-1)
    return logp_n[:n].reshape(b, t), ent_n[:n].reshape(b, t)
