"""Exact violation probabilities of Cohen et al.'s CERTIFY on the half-space oracle: no sampling error.

On the half-space ``u . x >= 0`` (class 1 there, class 0 elsewhere; :class:`rsscale.oracles.IntervalClassifier`),
at an input where the base classifier says g's class with probability p > 1/2, CERTIFY (n0 selection samples, the
argmax with ties to class 0; n fresh estimation samples; the Clopper-Pearson lower bound p_lower at alpha) is
violated exactly when

* it selects g's class and ``p_lower > p``: the radius ``noise.radius(p_lower)`` then exceeds the true radius
  ``noise.radius(p)`` (the certificate from the exact p is tight on the half-space: for Gaussian noise along any
  direction, for Laplace and uniform noise along a coordinate axis); or
* it selects the other class and certifies it (``p_lower >= 1/2``).

The selection count k0 of g's class is Bin(n0, p) and the estimation count is Bin(n, p) (g's class) or Bin(n, 1 - p)
(the other), independent of k0, so

    P(violation) = sum_k0 P(k0) [ s(k0) P(K >= k_over) + (1 - s(k0)) P(K' >= k_half) ],

k_over the smallest count whose bound exceeds p, k_half the smallest whose bound reaches 1/2, s(k0) = 1 when k0
selects g's class.  The harness places inputs on either side of the hyperplane with probability 1/2 each: on the
class-1 side a tie selects the wrong class, on the class-0 side the right one, and the rate is the mean of the two.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

from rsscale.bounds import clopper_pearson_lower


def _tail_from(first: np.ndarray, n: int, p: float) -> float:
    """``P(Bin(n, p) >= k)`` for the smallest k where ``first`` (a boolean per count 0..n) holds; 0 if none does."""
    hits = np.nonzero(first)[0]
    return float(binom.sf(hits[0] - 1, n, p)) if hits.size else 0.0


def cohen_half_space_violation(p: float, n0: int, n: int, alpha: float) -> float:
    """Exact probability that CERTIFY(n0, n, alpha) is violated on the half-space at an input with g's class at
    probability ``p`` (> 1/2), the input on either side with probability 1/2 (module docstring)."""
    if not 0.5 < p < 1.0:
        raise ValueError(f"p must lie in (1/2, 1), got {p}")
    lower = clopper_pearson_lower(np.arange(n + 1), n, alpha)
    too_far = _tail_from(lower > p, n, p)  # g's class selected, bound above p
    wrong = _tail_from(lower >= 0.5, n, 1.0 - p)  # the other class selected and certified
    k0 = np.arange(n0 + 1)
    weights = binom.pmf(k0, n0, p)
    rates = []
    for right in (k0 > n0 - k0, k0 >= n0 - k0):  # g's class 1 (ties select 0), g's class 0 (ties select it)
        selected = float(weights @ right)
        rates.append(selected * too_far + (1.0 - selected) * wrong)
    return float(np.mean(rates))
