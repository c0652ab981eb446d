"""Confidence bounds on a binomial proportion, as used by randomized smoothing.

All functions take ``k`` successes out of ``n`` trials and a failure
probability ``alpha``; they accept scalars or NumPy arrays and return floats
or arrays.  The exact (Clopper-Pearson) bounds are Beta quantiles computed by
SciPy:

* lower one-sided:  ``Beta(alpha; k, n - k + 1)`` (0 when k = 0),
* upper one-sided:  ``Beta(1 - alpha; k + 1, n - k)`` (1 when k = n).

Each holds with probability >= 1 - alpha over the draw of k ~ Bin(n, p).

Reference: Clopper & Pearson, Biometrika 1934; used by Cohen et al. 2019.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta as _beta
from scipy.stats import binomtest


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, or raise if it is not inside (0, 1)."""
    alpha = float(alpha)
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return alpha


def _check_counts(k, n):
    k = np.asarray(k)
    n = np.asarray(n)
    if np.any(n < 1):
        raise ValueError(f"the number of trials n must be >= 1, got {n}")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"the count k must satisfy 0 <= k <= n, got k={k}, n={n}")
    return k, n


def _scalar_or_array(value):
    value = np.asarray(value, dtype=float)
    return float(value) if value.ndim == 0 else value


def clopper_pearson_lower(k, n, alpha: float):
    """One-sided lower (1 - alpha) confidence bound on p from k ~ Bin(n, p)."""
    alpha = check_alpha(alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        bound = _beta.ppf(alpha, k, n - k + 1)
    return _scalar_or_array(np.where(k == 0, 0.0, bound))


def clopper_pearson_upper(k, n, alpha: float):
    """One-sided upper (1 - alpha) confidence bound on p from k ~ Bin(n, p)."""
    alpha = check_alpha(alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        bound = _beta.ppf(1.0 - alpha, k + 1, n - k)
    return _scalar_or_array(np.where(k == n, 1.0, bound))


def clopper_pearson_interval(k, n, alpha: float):
    """Two-sided (1 - alpha) interval: each side at level alpha / 2."""
    alpha = check_alpha(alpha)
    return clopper_pearson_lower(k, n, alpha / 2), clopper_pearson_upper(k, n, alpha / 2)


def binomial_test_pvalue(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value of k successes in n trials at p."""
    k, n = _check_counts(k, n)
    return float(binomtest(int(k), int(n), p, alternative="two-sided").pvalue)


def min_samples_to_certify(alpha: float) -> int:
    """Smallest n for which n agreeing samples give a Clopper-Pearson bound > 1/2.

    With k = n the lower bound is ``alpha^(1/n)``, which exceeds 1/2 iff
    ``n > log(alpha) / log(1/2)``.
    """
    alpha = check_alpha(alpha)
    return math.floor(math.log(alpha) / math.log(0.5)) + 1
