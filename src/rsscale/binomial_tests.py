"""Exact one-sided binomial tests of violation rates, Holm's correction over a family of them, and their power.

A certifier at level alpha is violated with probability at most alpha on every input, so k violations in T
independent trials at one input position test ``H0: rate <= rate0`` (rate0 = alpha, or the exact rate where it is
known) with the exact p-value ``P(Bin(T, rate0) >= k)``.  A case tests m positions at once; Holm's step-down
correction (Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 1979) keeps the
family-wise error at ``level``: the i-th smallest p-value is adjusted to ``max_{j <= i} min(1, (m - j + 1) p_(j))``
and a position is rejected when its adjusted p-value is below ``level``.

Power: one position whose rate is r while the others satisfy H0 is rejected at least when ``m p < level`` (Holm's
first step), i.e. when its count reaches the critical count ``k_c`` (the smallest k with ``m P(Bin(T, rate0) >= k) <
level``).  :func:`detectable_rate` is the smallest r with ``P(Bin(T, r) >= k_c) >= power``, found by bisection (the
tail grows with r): a position whose rate is at least that is caught with probability >= ``power``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom


def upper_pvalue(k: int, trials: int, rate0: float) -> float:
    """``P(Bin(trials, rate0) >= k)``: the exact one-sided p-value of k violations under ``H0: rate <= rate0``."""
    return float(binom.sf(k - 1, trials, rate0)) if k > 0 else 1.0


def holm_adjusted(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given (module docstring)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def critical_count(trials: int, rate0: float, tests: int, level: float) -> int:
    """The smallest count k with ``tests * P(Bin(trials, rate0) >= k) < level`` (``trials + 1``: none is)."""
    k = np.arange(trials + 2)
    hits = np.nonzero(tests * binom.sf(k - 1, trials, rate0) < level)[0]
    return int(hits[0]) if hits.size else trials + 1


def detectable_rate(trials: int, rate0: float, tests: int, level: float, power: float) -> float:
    """The smallest violation rate at one of ``tests`` positions that Holm's correction at ``level`` rejects with
    probability >= ``power`` from ``trials`` trials (module docstring); inf when no count is significant."""
    k_c = critical_count(trials, rate0, tests, level)
    if k_c > trials:
        return math.inf
    low, high = rate0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (low, mid) if binom.sf(k_c - 1, trials, mid) >= power else (mid, high)
    return high
