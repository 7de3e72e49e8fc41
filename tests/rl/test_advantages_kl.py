"""Golden tests: every advantage and KL estimator against a plain NumPy version written here."""

import math

import numpy as np
import pytest

from coderl_jax.rl import advantage_estimators, compute_advantages, kl_penalty, zero_variance_fraction


def np_advantages(rewards, g, estimator, mask=None):
    r = np.asarray(rewards, np.float64)
    out = np.zeros_like(r)
    for start in range(0, len(r), g):
        grp = r[start:start + g]
        mean = grp.mean() if g > 1 else 0.0
        for i in range(g):
            x = grp[i]
            if estimator == "grpo":
                std = np.std(grp, ddof=1) if g > 1 else 1.0
                out[start + i] = (x - mean) / (std + 1e-6) if g > 1 else x
            elif estimator == "dr_grpo":
                out[start + i] = x - mean
            elif estimator == "rloo":
                out[start + i] = x * g / (g - 1) - mean * g / (g - 1) if g > 1 else x
            elif estimator == "reinforce_pp_baseline":
                out[start + i] = x - mean
    if estimator == "reinforce_pp_baseline":
        # token-level whitening: every response token of a sequence carries its value
        vals = []
        for b in range(len(out)):
            vals += [out[b]] * (int(mask[b].sum()) if mask is not None else 1)
        vals = np.asarray(vals)
        mu, var = vals.mean(), vals.var(ddof=1)
        out = (out - mu) / math.sqrt(var + 1e-8)
    return out


REWARD_CASES = {
    "binary": np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], np.float32),  # includes zero-variance groups
    "continuous": np.random.RandomState(0).uniform(-1, 2, 24).astype(np.float32),
    "alignment_like": np.array([0.1, 0.55, 1.0, 0.0, 0.325, 0.1, 0.1, 0.1], np.float32),
}


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"])
@pytest.mark.parametrize("case", sorted(REWARD_CASES))
@pytest.mark.parametrize("g", [1, 2, 4])
def test_advantages_match_numpy(estimator, case, g):
    r = REWARD_CASES[case]
    mask = (np.arange(16)[None, :] < np.random.RandomState(1).randint(1, 17, (len(r), 1))).astype(np.float32)
    ours = np.asarray(compute_advantages(r, g, estimator, mask=mask))
    ref = np_advantages(r, g, estimator, mask=mask)
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=1e-5)


def test_registry_lists_all_and_rejects_unknown():
    assert {"grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"} <= set(advantage_estimators())
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        compute_advantages([1.0, 0.0], 2, "ppo")
    with pytest.raises(ValueError, match="group_size"):
        compute_advantages([1.0, 0.0, 1.0], 2)


def test_zero_variance_groups_get_zero_grpo_advantage_and_are_counted():
    r = REWARD_CASES["binary"]  # groups of 4: [1,0,0,1], [1,1,1,1], [0,0,0,0]
    adv = np.asarray(compute_advantages(r, 4, "grpo"))
    assert np.all(adv[4:] == 0.0)
    assert float(zero_variance_fraction(r, 4)) == pytest.approx(2 / 3)


def np_kl(logp, ref, kind):
    out = np.zeros_like(logp, dtype=np.float64)
    for idx in np.ndindex(logp.shape):
        a, b = float(logp[idx]), float(ref[idx])
        if kind in ("k1", "kl"):
            out[idx] = a - b
        elif kind in ("k2", "mse"):
            out[idx] = 0.5 * (a - b) ** 2
        elif kind == "abs":
            out[idx] = abs(a - b)
        else:
            d = min(max(b - a, -20.0), 20.0)
            out[idx] = min(max(math.exp(d) - d - 1.0, -10.0), 10.0)
    return out


@pytest.mark.parametrize("kind", ["k1", "k2", "k3", "abs", "low_var_kl", "kl", "mse"])
def test_kl_estimators_match_numpy(kind):
    rng = np.random.RandomState(2)
    logp = rng.uniform(-8, 0, (5, 7)).astype(np.float32)
    ref = rng.uniform(-8, 0, (5, 7)).astype(np.float32)
    ref[0, :3] = logp[0, :3] - 30.0  # exercises the ±20 clamp of d and the ±10 clamp of k3
    ref[1, :3] = logp[1, :3] + 30.0
    ours = np.asarray(kl_penalty(logp, ref, kind))
    assert ours.shape == logp.shape
    np.testing.assert_allclose(ours, np_kl(logp, ref, kind), rtol=1e-5, atol=1e-6)


def test_k3_clamps_like_verl():
    out = np.asarray(kl_penalty(np.zeros((1, 3)), np.array([[25.0, -25.0, -5.0]]), "k3"))
    assert out[0, 0] == pytest.approx(10.0)  # exp(20) - 21, clamped to 10
    assert out[0, 1] == pytest.approx(10.0)  # d clamped to -20: exp(-20) + 19, clamped to 10
    assert out[0, 2] == pytest.approx(np.exp(-5.0) + 4.0, rel=1e-6)  # inside both clamps
