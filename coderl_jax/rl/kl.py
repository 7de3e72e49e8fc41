"""KL estimators between the policy and a frozen reference, per token (verl's definitions).

All take log-probs of the sampled tokens, shape [B, T], and return per-token values [B, T];
the trainer masks and aggregates them like the policy loss.
"""

from __future__ import annotations

import jax.numpy as jnp

KL_KINDS = ("k1", "k2", "k3", "abs")
ALIASES = {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}


def kl_penalty(logprobs, ref_logprobs, kind: str = "k3"):
    """k1 = logp - ref; k2 = (logp - ref)^2 / 2; k3 ("low_var_kl") = exp(d) - d - 1 with
    d = clamp(ref - logp, ±20), then clamped to ±10 (as verl clamps it); abs = |logp - ref|."""
    kind = ALIASES.get(kind, kind)
    logprobs = jnp.asarray(logprobs, jnp.float32)
    ref_logprobs = jnp.asarray(ref_logprobs, jnp.float32)
    diff = logprobs - ref_logprobs
    if kind == "k1":
        return diff
    if kind == "k2":
        return 0.5 * diff * diff
    if kind == "abs":
        return jnp.abs(diff)
    if kind == "k3":
        d = jnp.clip(ref_logprobs - logprobs, -20.0, 20.0)
        return jnp.clip(jnp.exp(d) - d - 1.0, -10.0, 10.0)
    raise ValueError(f"unknown KL estimator {kind!r}; known: {KL_KINDS} (aliases {ALIASES})")
