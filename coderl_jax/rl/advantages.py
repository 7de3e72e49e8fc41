"""Advantage estimators over groups of samples of one prompt, registered by name (verl's formulas).

Rewards arrive flat, shape [num_prompts * group_size], grouped consecutively (the G samples of
prompt i are rows i*G .. i*G+G-1). Every estimator returns advantages of the same shape; the
trainer broadcasts them over the response tokens (or passes per-token advantages directly).

A research fork adds an estimator with `@register_advantage("name")`.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from coderl_jax.registry import Registry

EPS = 1e-6  # verl's epsilon in the GRPO denominator
WHITEN_EPS = 1e-8  # verl's masked_whiten epsilon

AdvantageFn = Callable[..., jnp.ndarray]
ESTIMATORS: Registry[AdvantageFn] = Registry("advantage estimator")


def register_advantage(name: str):
    """Decorator: register `fn(rewards, group_size, **kwargs) -> advantages` under `name`."""
    return ESTIMATORS.register(name)


def advantage_estimators() -> list[str]:
    return sorted(ESTIMATORS.names())


def _groups(rewards, group_size: int):
    rewards = jnp.asarray(rewards, jnp.float32)
    if rewards.ndim != 1 or rewards.shape[0] % group_size:
        raise ValueError(
            f"rewards must have shape [num_prompts * group_size]; got {rewards.shape} with group_size={group_size}"
        )
    return rewards.reshape(-1, group_size)


def _group_mean(r_pg):
    # verl: a group of one sample has mean 0 and std 1 (its reward passes through unchanged)
    g = r_pg.shape[1]
    return jnp.mean(r_pg, axis=1, keepdims=True) if g > 1 else jnp.zeros_like(r_pg[:, :1])


@register_advantage("grpo")
def grpo(rewards, group_size: int, **_):
    """(r - mean) / (std + 1e-6), std unbiased (ddof=1), per prompt group."""
    r_pg = _groups(rewards, group_size)
    if group_size == 1:
        return r_pg.reshape(-1)
    std = jnp.std(r_pg, axis=1, keepdims=True, ddof=1)
    return ((r_pg - _group_mean(r_pg)) / (std + EPS)).reshape(-1)


@register_advantage("dr_grpo")
def dr_grpo(rewards, group_size: int, **_):
    """Dr.GRPO: r - mean, no division by the group std."""
    r_pg = _groups(rewards, group_size)
    return (r_pg - _group_mean(r_pg)).reshape(-1)


@register_advantage("rloo")
def rloo(rewards, group_size: int, **_):
    """Leave-one-out baseline: r - mean of the others = r*G/(G-1) - mean*G/(G-1)."""
    r_pg = _groups(rewards, group_size)
    if group_size == 1:
        return r_pg.reshape(-1)
    g = group_size
    return (r_pg * g / (g - 1) - _group_mean(r_pg) * g / (g - 1)).reshape(-1)


@register_advantage("reinforce_pp_baseline")
def reinforce_pp_baseline(rewards, group_size: int, *, mask=None, **_):
    """REINFORCE++ with baseline: r - group mean, then whitened over the batch.

    With `mask` [B, T] the whitening weighs each sequence by its response tokens, as verl's
    token-level masked_whiten does (unbiased variance); without it, every sequence counts once.
    """
    r_pg = _groups(rewards, group_size)
    centred_b = (r_pg - _group_mean(r_pg)).reshape(-1)
    w_b = jnp.ones_like(centred_b) if mask is None else jnp.sum(jnp.asarray(mask, jnp.float32), axis=-1)
    n = jnp.sum(w_b)
    mean = jnp.sum(w_b * centred_b) / n
    var = jnp.sum(w_b * (centred_b - mean) ** 2) / n * (n / (n - 1))
    return (centred_b - mean) * jnp.reciprocal(jnp.sqrt(var + WHITEN_EPS))


def compute_advantages(rewards, group_size: int, estimator: str = "grpo", **kwargs):
    """Advantages [num_prompts * group_size] for flat, consecutively grouped rewards."""
    return ESTIMATORS.get(estimator)(rewards, group_size, **kwargs)


def zero_variance_fraction(rewards, group_size: int):
    """Fraction of groups whose rewards are all equal (they carry no GRPO signal)."""
    r_pg = _groups(rewards, group_size)
    return jnp.mean(jnp.all(r_pg == r_pg[:, :1], axis=1).astype(jnp.float32))
