"""Golden tests: the clipped policy loss and each aggregation mode against plain NumPy loops."""

import numpy as np
import pytest

from coderl_jax.rl import AGG_MODES, loss_denominator, loss_numerator, policy_loss


def np_policy_loss(logp, old, adv, mask, clip_low, clip_high, clip_c, agg):
    B, T = logp.shape
    per = np.zeros((B, T))
    clipped = np.zeros((B, T))
    for b in range(B):
        for t in range(T):
            a = adv[b, t] if adv.ndim == 2 else adv[b]
            ratio = np.exp(np.clip(logp[b, t] - old[b, t], -20, 20))
            l1 = -a * ratio
            l2 = -a * np.clip(ratio, 1 - clip_low, 1 + clip_high)
            c1 = max(l1, l2)
            clipped[b, t] = float(l2 > l1)
            per[b, t] = min(-a * clip_c, c1) if a < 0 else c1
    m = mask.astype(np.float64)
    if agg == "token-mean":
        loss = (per * m).sum() / m.sum()
    elif agg == "seq-mean-token-sum":
        loss = np.mean([(per[b] * m[b]).sum() for b in range(B)])
    elif agg == "seq-mean-token-mean":
        loss = np.mean([(per[b] * m[b]).sum() / m[b].sum() for b in range(B)])
    else:
        loss = (per * m).sum() / T
    clipfrac = (clipped * m).sum() / m.sum()
    return loss, clipfrac


def make_batch(seed, per_token_adv):
    rng = np.random.RandomState(seed)
    B, T = 6, 9
    old = rng.uniform(-4, -0.1, (B, T)).astype(np.float32)
    logp = (old + rng.normal(0, 0.4, (B, T))).astype(np.float32)  # ratios well outside [0.8, 1.2]
    lengths = rng.randint(1, T + 1, B)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)  # right padding
    adv = rng.normal(0, 1.5, (B, T) if per_token_adv else (B,)).astype(np.float32)
    return logp, old, adv, mask


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("per_token_adv", [False, True])
@pytest.mark.parametrize("clips", [(0.2, 0.2, 3.0), (0.2, 0.28, 3.0), (0.1, 0.3, 2.0)])
def test_policy_loss_matches_numpy(agg, per_token_adv, clips):
    logp, old, adv, mask = make_batch(3, per_token_adv)
    cl, ch, cc = clips
    loss, metrics = policy_loss(logp, old, adv, mask, clip_low=cl, clip_high=ch, clip_c=cc, agg=agg)
    ref_loss, ref_clipfrac = np_policy_loss(logp, old, adv, mask, cl, ch, cc, agg)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    assert float(metrics["clipfrac"]) == pytest.approx(ref_clipfrac, abs=1e-6)
    assert 0.0 < float(metrics["clipfrac"]) < 1.0  # the batch really exercises the clip


@pytest.mark.parametrize("agg", AGG_MODES)
def test_microbatch_split_keeps_normalisation(agg):
    """Summing numerator/global-denominator over micro-batches equals the whole-batch loss."""
    logp, old, adv, mask = make_batch(4, False)
    whole, _ = policy_loss(logp, old, adv, mask, agg=agg)
    den = loss_denominator(mask, agg)
    parts = 0.0
    for sl in (slice(0, 2), slice(2, 5), slice(5, 6)):
        part, _ = policy_loss(logp[sl], old[sl], adv[sl], mask[sl], agg=agg, denominator=den)
        parts += float(part)
    assert parts == pytest.approx(float(whole), rel=1e-6)


def test_padding_tokens_do_not_count():
    logp, old, adv, mask = make_batch(5, True)
    garbage = logp.copy()
    garbage[mask == 0] = 1e3  # huge values at padding must not leak into the loss
    a, _ = policy_loss(logp, old, adv, mask)
    b, _ = policy_loss(garbage, old, adv, mask)
    assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_dual_clip_bounds_negative_advantage_loss():
    # ratio e^3 ≈ 20 with A = -1: unclipped loss would be 20, the dual clip caps it at 3
    loss, metrics = policy_loss(np.array([[3.0]]), np.array([[0.0]]), np.array([-1.0]), np.array([[1.0]]))
    assert float(loss) == pytest.approx(3.0)
    assert float(metrics["clipfrac_dual"]) == 1.0
    assert float(loss_numerator(np.ones((1, 1)), np.ones((1, 1)))) == 1.0


def test_unknown_aggregation_is_an_error():
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        policy_loss(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1), np.ones((1, 1)), agg="sum")
