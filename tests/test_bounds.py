"""Clopper-Pearson bounds: exact coverage by enumeration, edge cases, the n >= 10 floor."""

import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from rsscale.bounds import (
    binomial_test_pvalue,
    clopper_pearson_interval,
    clopper_pearson_lower,
    clopper_pearson_upper,
    min_samples_to_certify,
)


@pytest.mark.parametrize("n", [1, 7, 40, 200])
@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.3])
def test_exact_coverage_by_enumeration(n, alpha):
    """P_k~Bin(n,p)(bound fails) <= alpha for every p on a grid, summed exactly over k."""
    k = np.arange(n + 1)
    lower = clopper_pearson_lower(k, n, alpha)
    upper = clopper_pearson_upper(k, n, alpha)
    for p in np.linspace(0.0, 1.0, 201):
        pmf = binom.pmf(k, n, p)
        assert pmf[lower > p].sum() <= alpha + 1e-9
        assert pmf[upper < p].sum() <= alpha + 1e-9


def test_bounds_are_not_loose_either():
    """Coverage is nearly alpha somewhere: the bound is the exact one, not a cruder one."""
    n, alpha = 100, 0.05
    k = np.arange(n + 1)
    lower = clopper_pearson_lower(k, n, alpha)
    worst = max(binom.pmf(k, n, p)[lower > p].sum() for p in np.linspace(0.01, 0.99, 981))
    assert worst > 0.8 * alpha


def test_matches_scipy_exact_interval_and_edges():
    for k, n in [(0, 10), (3, 10), (10, 10), (9990, 10000)]:
        lo, hi = clopper_pearson_interval(k, n, 0.02)
        ci = binomtest(k, n).proportion_ci(confidence_level=0.98, method="exact")
        assert math.isclose(lo, ci.low, abs_tol=1e-12) and math.isclose(hi, ci.high, abs_tol=1e-12)
    assert clopper_pearson_lower(0, 5, 0.1) == 0.0
    assert clopper_pearson_upper(5, 5, 0.1) == 1.0
    assert math.isclose(clopper_pearson_lower(10, 10, 0.001), 0.001 ** (1 / 10))


def test_sample_count_floor():
    assert min_samples_to_certify(0.001) == 10
    assert clopper_pearson_lower(9, 9, 0.001) < 0.5 < clopper_pearson_lower(10, 10, 0.001)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: clopper_pearson_lower(5, 10, 0.0), "alpha must lie strictly between 0 and 1, got 0.0"),
        (lambda: clopper_pearson_lower(5, 10, 1.0), "alpha"),
        (lambda: clopper_pearson_lower(11, 10, 0.1), "0 <= k <= n"),
        (lambda: clopper_pearson_upper(1, 0, 0.1), "n must be >= 1"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_binomial_test_pvalue():
    assert math.isclose(binomial_test_pvalue(50, 100), 1.0)
    assert binomial_test_pvalue(90, 100) < 1e-10
