"""Log-probs of chosen tokens without materialising [batch, length, vocab] logits.

The final hidden states [B, T, H] are flattened to N = B*T rows and processed in row chunks:
each chunk computes its logits [chunk, V] against the output projection [H, V], takes the
log-softmax at the target ids and (optionally) the entropy, and is rematerialised in the backward
pass, so peak memory is one chunk's logits, not N x V (Qwen's V is 152k).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _chunk_stats(hidden_ch, head_hv, targets_c, temperature):
    logits_cv = jnp.dot(hidden_ch, head_hv.astype(hidden_ch.dtype)).astype(jnp.float32) / temperature
    lse_c = jax.nn.logsumexp(logits_cv, axis=-1)
    target_logit_c = jnp.take_along_axis(logits_cv, targets_c[:, None], axis=-1)[:, 0]
    probs_cv = jnp.exp(logits_cv - lse_c[:, None])
    entropy_c = lse_c - jnp.sum(probs_cv * logits_cv, axis=-1)
    return target_logit_c - lse_c, entropy_c


def token_logprobs(hidden_bth, head_hv, targets_bt, *, chunk_rows: int = 1024, temperature: float = 1.0):
    """Returns (logprobs_bt, entropy_bt) in float32.

    `hidden_bth` are the final normalised hidden states at the positions that *predict*
    `targets_bt` (i.e. already shifted by the caller). `temperature` divides the logits, as the
    sampler did, so that trainer and sampler log-probs are comparable.
    """
    b, t, h = hidden_bth.shape
    n = b * t
    hidden_nh = hidden_bth.reshape(n, h)
    targets_n = targets_bt.reshape(n).astype(jnp.int32)
    chunk = min(chunk_rows, n)
    pad = (-n) % chunk
    if pad:
        hidden_nh = jnp.pad(hidden_nh, ((0, pad), (0, 0)))
        targets_n = jnp.pad(targets_n, (0, pad))
    num_chunks = (n + pad) // chunk
    body = jax.checkpoint(lambda hc, tc: _chunk_stats(hc, head_hv, tc, temperature))
    if num_chunks == 1:
        logp_n, ent_n = body(hidden_nh, targets_n)
    else:
        logp_kc, ent_kc = jax.lax.map(
            lambda args: body(*args),
            (hidden_nh.reshape(num_chunks, chunk, h), targets_n.reshape(num_chunks, chunk)),
        )
        logp_n, ent_n = logp_kc.reshape(-1), ent_kc.reshape(-1)
    return logp_n[:n].reshape(b, t), ent_n[:n].reshape(b, t)
