"""Exact tail bounds for the statistical tests: a correct sampler fails them with a stated, tiny
probability, so the suite stays green for everyone in randomised mode."""

from __future__ import annotations

import numpy as np
from scipy import stats

# False-failure probability allowed for one run of one statistical test (all its hypothesis
# examples and all its cells together).
PER_RUN = 1e-6


def binomial_outliers(counts, n: int, probs, alpha: float) -> np.ndarray:
    """Cells whose count is implausible under Binomial(n, p) at family-wise level ``alpha``.

    Exact two-sided tails with a Bonferroni split over the cells: a cell is flagged when
    P(X ≤ k) or P(X ≥ k) is below alpha / (2·cells). A correct sampler is flagged with probability
    at most ``alpha`` (the union bound is conservative; no normal approximation, so cells with tiny
    or zero probability are handled exactly: p = 0 with k > 0 is always flagged).
    """
    k = np.asarray(counts, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), 0.0, 1.0)  # rounding above 1 only
    if not np.all((k == np.round(k)) & (k >= 0) & (k <= n)):
        raise ValueError(f"counts must be integers in [0, {n}]")
    level = alpha / (2 * k.size)
    low = stats.binom.cdf(k, n, p)  # P(X ≤ k)
    high = stats.binom.sf(k - 1, n, p)  # P(X ≥ k)
    return np.flatnonzero((low < level) | (high < level))
