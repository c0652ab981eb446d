"""Randomized Clopper-Pearson (exact coverage, never looser than CP) and confidence sequences (coverage uniformly
over time), by exact enumeration and by simulation."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom

from rsscale.bounds import (
    betting_cs,
    betting_cs_lower,
    betting_cs_upper,
    clopper_pearson_lower,
    clopper_pearson_upper,
    geometric_checkpoints,
    kt_log_wealth,
    randomized_clopper_pearson_lower,
    randomized_clopper_pearson_upper,
    union_bound_alpha,
    union_bound_cs,
    union_bound_lower,
)


@pytest.mark.parametrize("n, alpha", [(1, 0.05), (30, 0.05), (200, 0.001)])
def test_randomized_cp_has_exact_coverage(n, alpha):
    """p_L(k, U) > p exactly when U < u*(k) = (alpha - P(X > k)) / P(X = k) (clipped to [0, 1]), and
    sum_k P(X = k) u*(k) = alpha: the implementation switches at u*, so its coverage is exactly 1 - alpha.
    The upper bound is the lower bound of n - X ~ Bin(n, 1 - p), reflected."""
    k = np.arange(n + 1)
    for p in [0.003, 0.2, 0.5, 0.77, 0.95, 0.999]:
        pmf = binom.pmf(k, n, p)
        with np.errstate(over="ignore", divide="ignore"):  # pmf underflows far in the tails: switch 0 or 1 there
            switch = np.clip((alpha - binom.sf(k, n, p)) / pmf, 0.0, 1.0)
        assert math.isclose(pmf @ switch, alpha, rel_tol=1e-9)
        inner, outer = switch > 1e-6, switch < 1 - 1e-6
        assert np.all(randomized_clopper_pearson_lower(k[inner], n, alpha, u=switch[inner] - 1e-6) > p)
        assert np.all(randomized_clopper_pearson_lower(k[outer], n, alpha, u=switch[outer] + 1e-6) <= p)
    u = np.linspace(0, 1, 11)[:, None]
    assert np.allclose(randomized_clopper_pearson_upper(k, n, alpha, u=u),
                       1 - randomized_clopper_pearson_lower(n - k, n, alpha, u=u), atol=1e-12)


def test_randomized_cp_coverage_by_simulation_and_never_looser_than_cp():
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    n, alpha, p, draws = 120, 0.05, 0.83, 40_000
    k = rng.binomial(n, p, draws)
    lower = randomized_clopper_pearson_lower(k, n, alpha, generator=gen)
    rate = np.mean(lower > p)
    assert abs(rate - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / draws), rate
    cp = clopper_pearson_lower(k, n, alpha)
    assert np.all(lower >= cp) and np.mean(cp > p) < rate - 0.005  # CP is conservative, rCP exact
    assert np.mean(lower > cp) > 0.99  # strictly tighter unless U = 1
    for n in (1, 10, 57):  # on every (k, U) of a grid, both sides
        kk, uu = np.meshgrid(np.arange(n + 1), np.linspace(0, 1, 41), indexing="ij")
        assert np.all(randomized_clopper_pearson_lower(kk, n, 0.01, u=uu) >= clopper_pearson_lower(kk, n, 0.01))
        assert np.all(randomized_clopper_pearson_upper(kk, n, 0.01, u=uu) <= clopper_pearson_upper(kk, n, 0.01))
        assert np.allclose(randomized_clopper_pearson_lower(kk[:, -1], n, 0.01, u=1.0),
                           clopper_pearson_lower(kk[:, -1], n, 0.01), atol=1e-12)


def test_randomized_cp_edges_and_arguments():
    # k = n: U p^n = alpha; k = 0: 1 - (1 - U)(1 - p)^n = alpha
    assert math.isclose(randomized_clopper_pearson_lower(10, 10, 0.05, u=0.5), 0.1 ** 0.1, rel_tol=1e-12)
    assert randomized_clopper_pearson_lower(10, 10, 0.05, u=0.01) == 1.0
    assert math.isclose(randomized_clopper_pearson_lower(0, 10, 0.05, u=0.01), 1 - (0.95 / 0.99) ** 0.1, rel_tol=1e-9)
    assert randomized_clopper_pearson_lower(0, 10, 0.05, u=0.5) == 0.0
    a = randomized_clopper_pearson_lower([3, 4], 10, 0.05, generator=torch.Generator().manual_seed(1))
    b = randomized_clopper_pearson_lower([3, 4], 10, 0.05, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(a, b)
    numpy_gen = randomized_clopper_pearson_lower([3, 4], 10, 0.05, generator=np.random.default_rng(1))
    assert np.all(numpy_gen >= clopper_pearson_lower([3, 4], 10, 0.05))
    with pytest.raises(ValueError, match="pass u or an explicit generator"):
        randomized_clopper_pearson_lower(3, 10, 0.05)
    with pytest.raises(ValueError, match=r"u must lie in \[0, 1\], got 1.5"):
        randomized_clopper_pearson_lower(3, 10, 0.05, u=1.5)
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1, got 1.0"):
        randomized_clopper_pearson_upper(3, 10, 1.0, u=0.5)


def _paths(p, sequences, length, seed):
    """Cumulative successes ``[sequences, length]`` of Bernoulli(p) sequences and the unique (k, t) pairs they visit."""
    k = np.random.default_rng(seed).binomial(1, p, (sequences, length)).cumsum(axis=1)
    t = np.broadcast_to(np.arange(1, length + 1), k.shape)
    keys, inverse = np.unique(k * (length + 1) + t, return_inverse=True)
    return keys // (length + 1), keys % (length + 1), inverse.reshape(k.shape)


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_betting_cs_covers_uniformly_over_time(p):
    """2,000 sequences of 1,000 draws, bounds after every draw: the fraction that EVER excludes p is <= alpha.
    The fixed-sample Clopper-Pearson interval, checked after every draw, does not have this property."""
    alpha, sequences = 0.05, 2000
    k, t, where = _paths(p, sequences, 1000, seed=int(p * 100))
    lower, upper = betting_cs(k, t, alpha)
    ever = ((lower[where] > p) | (upper[where] < p)).any(axis=1)
    allowed = alpha + 3 * math.sqrt(alpha * (1 - alpha) / sequences)
    assert ever.mean() <= allowed, ever.mean()
    assert np.all(lower <= k / t) and np.all(k / t <= upper)
    cp_lower, cp_upper = clopper_pearson_lower(k, t, alpha / 2), clopper_pearson_upper(k, t, alpha / 2)
    naive = ((cp_lower[where] > p) | (cp_upper[where] < p)).any(axis=1)
    assert naive.mean() > 2 * allowed  # peeking at a fixed-n interval: the test has power


def test_betting_cs_is_the_ville_level_set_and_shrinks():
    alpha = 0.01
    rng = np.random.default_rng(3)
    n = rng.integers(1, 100_000, 300)
    k = rng.binomial(n, rng.uniform(0, 1, 300))
    lower, upper = betting_cs(k, n, alpha)
    inside = (k > 0) & (k < n)
    # the ends are where the KT wealth reaches 1/alpha, and every point inside has less
    assert np.allclose(kt_log_wealth(k[inside], n[inside], lower[inside]), math.log(1 / alpha), atol=1e-6)
    assert np.allclose(kt_log_wealth(k[inside], n[inside], upper[inside]), math.log(1 / alpha), atol=1e-6)
    mid = (lower + upper) / 2
    assert np.all(kt_log_wealth(k, n, mid) < math.log(1 / alpha))
    assert np.all(kt_log_wealth(k[inside], n[inside], lower[inside] * (1 - 1e-6)) >= math.log(1 / alpha))
    # all successes: (alpha B(1/2, 1/2) / B(n + 1/2, 1/2))^(1/n), about (alpha / sqrt(pi n))^(1/n)
    assert math.isclose(betting_cs_lower(100, 100, 0.001), (0.001 / math.sqrt(math.pi * 100)) ** 0.01, rel_tol=1e-4)
    assert betting_cs_lower(0, 50, alpha) == 0.0 and betting_cs_upper(50, 50, alpha) == 1.0
    widths = [np.subtract(*betting_cs(m // 2, m, alpha)[::-1]) for m in (100, 1000, 10_000, 100_000)]
    assert all(a > 2.5 * b for a, b in zip(widths, widths[1:], strict=False))  # ~ sqrt(log n / n)
    assert widths[-1] < 2 * (clopper_pearson_upper(50_000, 100_000, alpha / 2)
                             - clopper_pearson_lower(50_000, 100_000, alpha / 2))


@pytest.mark.parametrize("p", [0.5, 0.95])
def test_union_bound_cs_covers_uniformly_over_checkpoints(p):
    """Bounds at the checkpoints 10, 13, ..., 1000 (growth 1.25), 2,000 sequences: jointly valid at alpha; the
    same checkpoints at the unsplit alpha are not."""
    alpha, sequences = 0.05, 2000
    checkpoints = geometric_checkpoints(10, 1.25, 1000)
    draws = np.random.default_rng(int(p * 1000)).binomial(1, p, (sequences, 1000)).cumsum(axis=1)
    k = draws[:, checkpoints - 1]
    index = np.arange(1, len(checkpoints) + 1)
    lower, upper = union_bound_cs(k, checkpoints, index, alpha)
    ever = ((lower > p) | (upper < p)).any(axis=1)
    assert ever.mean() <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / sequences), ever.mean()
    one_sided = (union_bound_lower(k, checkpoints, index, alpha) > p).any(axis=1)
    assert one_sided.mean() <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / sequences)
    unsplit = ((clopper_pearson_lower(k, checkpoints, alpha / 2) > p)
               | (clopper_pearson_upper(k, checkpoints, alpha / 2) < p)).any(axis=1)
    assert unsplit.mean() > ever.mean() + 0.03


def test_union_bound_levels_and_checkpoints():
    levels = union_bound_alpha(np.arange(1, 100_001), 0.01)
    assert levels.sum() <= 0.01 and levels.sum() > 0.01 * 0.9999
    assert math.isclose(union_bound_alpha(1, 0.01), 0.06 / math.pi**2)
    points = geometric_checkpoints(10, 1.25, 1000)
    assert points[0] == 10 and points[-1] == 1000 and np.all(np.diff(points) >= 1)
    assert np.all(points[1:-1] == np.ceil(1.25 * points[:-2]))
    assert list(geometric_checkpoints(1, 1.1, 5)) == [1, 2, 3, 4, 5]
    assert list(geometric_checkpoints(50, 2.0, 20)) == [20]
    with pytest.raises(ValueError, match="growth factor must be > 1, got 1.0"):
        geometric_checkpoints(10, 1.0, 100)
    with pytest.raises(ValueError, match="checkpoint indices start at 1, got 0"):
        union_bound_alpha(0, 0.01)
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1, got 0.0"):
        betting_cs(3, 10, 0.0)
