"""The clipped policy-gradient surrogate and its aggregation modes (verl's formulas, to the decimal).

Shapes: logprobs / old_logprobs / mask [B, T] over response tokens; advantages [B] (one per
sequence, broadcast over its tokens) or [B, T] (per-token credit, e.g. per-variable spans of the
alignment task).

Aggregation is split into a numerator and a denominator so that gradient accumulation and
sharding never change the normalisation: the train step computes the denominator once over the
whole mini-batch (`loss_denominator`) and sums `loss_numerator / denominator` over its
micro-batches and devices, which equals aggregating the whole mini-batch at once.
"""

from __future__ import annotations

import jax.numpy as jnp

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def _check_mode(agg: str):
    if agg not in AGG_MODES:
        raise ValueError(f"unknown loss aggregation {agg!r}; known: {AGG_MODES}")


def loss_numerator(loss_bt, mask_bt, agg: str = "token-mean"):
    """The additive part of an aggregated loss over a batch (sums over rows)."""
    _check_mode(agg)
    mask_bt = jnp.asarray(mask_bt, jnp.float32)
    per_token = loss_bt * mask_bt
    if agg == "seq-mean-token-mean":
        tokens_b = jnp.sum(mask_bt, axis=-1)
        return jnp.sum(jnp.sum(per_token, axis=-1) / jnp.maximum(tokens_b, 1.0))
    return jnp.sum(per_token)


def loss_denominator(mask_bt, agg: str = "token-mean", norm_len: int | None = None):
    """The normaliser of the whole mini-batch: valid tokens (token-mean), sequences with at least
    one valid token (seq-mean-*; equals verl's row count when no row is all padding), or the
    constant `norm_len` (default T) for seq-mean-token-sum-norm."""
    _check_mode(agg)
    mask_bt = jnp.asarray(mask_bt, jnp.float32)
    if agg == "token-mean":
        return jnp.sum(mask_bt)
    if agg == "seq-mean-token-sum-norm":
        return jnp.asarray(float(norm_len or mask_bt.shape[-1]), jnp.float32)
    return jnp.sum((jnp.sum(mask_bt, axis=-1) > 0).astype(jnp.float32))


def masked_mean(x_bt, mask_bt):
    mask_bt = jnp.asarray(mask_bt, jnp.float32)
    return jnp.sum(x_bt * mask_bt) / jnp.maximum(jnp.sum(mask_bt), 1.0)


def policy_loss_per_token(logprobs, old_logprobs, advantages, *, clip_low=0.2, clip_high=0.2, clip_c=3.0):
    """Per-token clipped surrogate [B, T] and the ratio; see `policy_loss`."""
    logprobs = jnp.asarray(logprobs, jnp.float32)
    old_logprobs = jnp.asarray(old_logprobs, jnp.float32)
    adv = jnp.asarray(advantages, jnp.float32)
    if adv.ndim == 1:
        adv = adv[:, None]
    log_ratio = jnp.clip(logprobs - old_logprobs, -20.0, 20.0)
    ratio = jnp.exp(log_ratio)
    loss1 = -adv * ratio
    loss2 = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
    clipped = jnp.maximum(loss1, loss2)
    if clip_c is None:
        per_token = clipped
        dual = jnp.zeros_like(clipped, bool)
    else:
        loss3 = -adv * clip_c
        per_token = jnp.where(adv < 0, jnp.minimum(loss3, clipped), clipped)
        dual = (clipped > loss3) & (adv < 0)
    return per_token, dict(ratio=ratio, log_ratio=log_ratio, clipped=loss2 > loss1, dual=dual, adv=adv)


def policy_loss(logprobs, old_logprobs, advantages, mask, *, clip_low=0.2, clip_high=0.2, clip_c=3.0,
                agg="token-mean", norm_len=None, denominator=None):
    """Clipped surrogate with dual clip, aggregated; returns (loss, metrics).

    ratio = exp(clamp(logp - old, ±20)); l1 = -A·ratio; l2 = -A·clamp(ratio, 1-clip_low, 1+clip_high);
    c1 = max(l1, l2); for A < 0 the loss is min(-A·clip_c, c1) (dual clip; clip_c=None disables).
    `denominator` overrides the batch's own normaliser (the train step passes the mini-batch's).
    Metrics (token means over the mask): clipfrac (verl's pg_clipfrac, [l2 > l1]), clipfrac_low
    and clipfrac_high (ratio clipped below / above), clipfrac_dual (verl's pg_clipfrac_lower),
    ppo_kl (mean of old - logp).
    """
    per_token, aux = policy_loss_per_token(logprobs, old_logprobs, advantages, clip_low=clip_low,
                                           clip_high=clip_high, clip_c=clip_c)
    mask = jnp.asarray(mask, jnp.float32)
    den = loss_denominator(mask, agg, norm_len) if denominator is None else denominator
    loss = loss_numerator(per_token, mask, agg) / jnp.maximum(den, 1e-8)
    ratio, adv = aux["ratio"], aux["adv"]
    metrics = {
        "clipfrac": masked_mean(aux["clipped"].astype(jnp.float32), mask),
        "clipfrac_high": masked_mean(((ratio > 1.0 + clip_high) & (adv > 0)).astype(jnp.float32), mask),
        "clipfrac_low": masked_mean(((ratio < 1.0 - clip_low) & (adv < 0)).astype(jnp.float32), mask),
        "clipfrac_dual": masked_mean(aux["dual"].astype(jnp.float32), mask),
        "ppo_kl": masked_mean(-aux["log_ratio"], mask),
    }
    return loss, metrics
