"""Input-specific sample size (rsscale.methods.iss): the sample-size table and its lookup, the sound variant against
an exact oracle, and the published procedure's violation probability, computed exactly and checked by simulation."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.bounds import clopper_pearson_interval, clopper_pearson_lower
from rsscale.methods.iss import GRID, counts_per_input, iss_sample_size, iss_table, radius_curve

SIGMA = 0.5
TRIALS = 2000


def _oracle(dim=16):
    return IntervalClassifier(unit_vector(dim, None, 0), [0.0], [0, 1], num_classes=2)


def _build(name, oracle, **params):
    return rsscale.methods.build(name, model=oracle, num_classes=2, sigma=SIGMA, batch_size=4096, device="cpu",
                                 **params)


def _violations(oracle, certs, xs):
    t = oracle.projections(xs)
    noise = Gaussian(SIGMA)
    return violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))


def exact_violation(p, n0, n, alpha, reuse, decline=0.01, decline_type="absolute"):
    """Exact violation probability of ISS on the half-space oracle at p = P(f(x + e) = 1) > 1/2 (class 1 is g's).

    The pilot count k of class 1 is Bin(n0, p); argmax selects class 1 iff k > n0 - k (ties go to class 0).  With
    s the selected count, the size m comes from the two-sided interval of s / n0; the estimate is s + K out of
    max(m, n0) with K ~ Bin(max(m, n0) - n0, p_sel) (reuse) or K out of m with K ~ Bin(m, p_sel) (fresh).  A
    violation is class 1 with p_lower > p (radius beyond the true radius sigma Phi^-1(p)) or class 0 with
    p_lower > 1/2 (the wrong class certified; at 1/2 ISS abstains).  P(violation) = sum_k P(k) P(K >= K*(k)), K* by
    bisection on K.
    """
    table = iss_table(SIGMA, n, alpha, decline, decline_type)
    k = np.arange(n0 + 1)
    pick_true = k > n0 - k
    selected = np.where(pick_true, k, n0 - k)
    p_selected = np.where(pick_true, p, 1 - p)
    size = iss_sample_size(table, *clopper_pearson_interval(selected, n0, alpha))
    # where the table says abstain (size 0) nothing is estimated: any valid counts do, the tail is 0 there
    total = np.where(size > 0, np.maximum(size, n0) if reuse else size, n0)
    fresh = total - n0 if reuse else total
    base = selected if reuse else np.zeros_like(selected)

    def violated(extra):
        bound = clopper_pearson_lower(base + extra, total, alpha)
        return np.where(pick_true, bound > p, bound > 0.5)

    lo, hi = np.full(k.shape, -1), fresh.copy()  # invariant: lo does not violate (-1: none), hi does
    reachable = violated(hi)
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        bad = violated(np.maximum(mid, 0)) & (mid >= 0)
        lo, hi = np.where(bad, lo, mid), np.where(bad, mid, hi)
    tail = np.where(reachable & (size > 0), binom.sf(hi - 1, fresh, p_selected), 0.0)
    return float(binom.pmf(k, n0, p) @ tail)


# ---- the table and its lookup -------------------------------------------------------------------------------


@pytest.mark.parametrize("decline_type, decline", [("absolute", 0.01), ("absolute", 0.05), ("relative", 0.02)])
@pytest.mark.parametrize("n_max, alpha", [(10_000, 0.001), (500, 0.05)])
def test_table_entries_are_the_smallest_sizes_within_the_tolerated_decline(decline_type, decline, n_max, alpha):
    table = iss_table(SIGMA, n_max, alpha, decline, decline_type)
    best = radius_curve(GRID, n_max, SIGMA, alpha)
    target = best - decline if decline_type == "absolute" else best * (1 - decline)
    assert table.shape == GRID.shape and table.max() <= n_max
    assert np.array_equal(table == 0, target <= 0)  # not worth sampling exactly where the target radius is <= 0
    used = table > 0
    assert np.all(radius_curve(GRID[used], table[used], SIGMA, alpha) >= target[used])
    smaller = used & (table > 1)
    assert np.all(radius_curve(GRID[smaller], table[smaller] - 1, SIGMA, alpha) < target[smaller])
    assert table[used].min() < n_max  # the table does save samples somewhere


def test_lookup_takes_the_largest_entry_around_both_ends():
    table = np.zeros(len(GRID), dtype=np.int64)
    table[100], table[101], table[300], table[301] = 7, 9, 20, 11  # grid points 0.600, 0.601, 0.800, 0.801
    assert iss_sample_size(table, 0.6005, 0.6005) == 9  # between 0.600 and 0.601: max of both
    assert iss_sample_size(table, 0.6015, 0.8015) == 11  # ends at 0.601-0.602 and 0.801-0.802: not 20 at 0.800
    assert iss_sample_size(table, 0.5999, 0.7995) == 20  # 0.599-0.600 gives 7, 0.799-0.800 gives 20
    assert iss_sample_size(table, 0.2, 0.4) == 0  # below the grid: its first point
    assert list(iss_sample_size(table, np.array([0.6, 0.9]), np.array([0.8, 1.2]))) == [20, 0]


def test_counts_per_input_draws_exactly_the_requested_sizes():
    oracle = _oracle()
    sampler = _build("iss", oracle, n0=10, n=100).sampler
    xs = oracle.inputs_at(np.zeros(6), torch.Generator().manual_seed(0))
    sizes = [0, 1, 7, 64, 100, 3]
    counts = counts_per_input(sampler, xs, sizes, torch.Generator().manual_seed(1))
    assert counts.sum(dim=1).tolist() == sizes
    with pytest.raises(ValueError, match="sample sizes must be >= 0"):
        counts_per_input(sampler, xs, [1, -1, 0, 0, 0, 0])


# ---- soundness ------------------------------------------------------------------------------------------------


def test_published_iss_violates_beyond_alpha_and_the_sound_variant_does_not():
    """At p_A -> 1/2 the pilot's winning count enters the estimate: with n0 = 200 of n = 500 (alpha = 0.05) the
    exact violation probability of ``iss`` is 0.089, and 2,000 certifications by the certifier measure the same
    rate, above alpha + 3 standard errors.  ``iss_sound`` (fresh estimate) stays below alpha: exact 0.047."""
    alpha, n0, n, p = 0.05, 200, 500, 0.5001
    oracle = _oracle()
    rates = {}
    for name, reuse in (("iss", True), ("iss_sound", False)):
        gen = torch.Generator().manual_seed(11)
        xs = oracle.inputs_at(np.full(TRIALS, SIGMA * norm.ppf(p)), gen)
        certs = _build(name, oracle, n0=n0, n=n, alpha=alpha).certify_many(xs, generator=gen)
        measured, exact = _violations(oracle, certs, xs), exact_violation(p, n0, n, alpha, reuse)
        assert abs(measured - exact) < 4 * math.sqrt(exact * (1 - exact) / TRIALS), (name, measured, exact)
        rates[name] = (measured, exact)
    assert rates["iss"][1] > 1.7 * alpha and rates["iss"][0] > allowed_rate(alpha, TRIALS), rates
    assert rates["iss_sound"][1] <= alpha and rates["iss_sound"][0] <= allowed_rate(alpha, TRIALS), rates


def test_published_settings_violation_probability_exceeds_alpha_exactly():
    """The paper's settings (n0 = 2,000, N_max = 100,000, alpha = 0.001, absolute decline 0.01, sigma = 0.5):
    the exact violation probability of ``iss`` near p_A = 1/2 is about 1.7 alpha; ``iss_sound`` never exceeds alpha."""
    alpha, n0, n = 0.001, 2000, 100_000
    published = [exact_violation(p, n0, n, alpha, True) for p in (0.5001, 0.501, 0.505)]
    assert published[0] > 1.5 * alpha, published
    for p in (0.5001, 0.501, 0.51, 0.55, 0.7, 0.9, 0.99):
        assert exact_violation(p, n0, n, alpha, False) <= alpha


@pytest.mark.parametrize("n0, n, decline_type", [(20, 500, "absolute"), (100, 500, "relative")])
def test_exact_violation_of_the_sound_variant_is_at_most_alpha_everywhere(n0, n, decline_type):
    for p in np.linspace(0.5001, 0.999, 25):
        assert exact_violation(p, n0, n, 0.05, False, 0.02, decline_type) <= 0.05 + 1e-12


def brute_force_violation(p, n0, n, alpha, reuse, decline, decline_type="absolute"):
    """:func:`exact_violation` by enumerating every pilot count k and estimation count K (small n only)."""
    table = iss_table(SIGMA, n, alpha, decline, decline_type)
    total = 0.0
    for k in range(n0 + 1):
        true_class = k > n0 - k
        selected, p_selected = (k, p) if true_class else (n0 - k, 1 - p)
        size = int(iss_sample_size(table, *clopper_pearson_interval(selected, n0, alpha)))
        if size == 0:
            continue  # ISS abstains
        drawn, used = (max(size, n0) - n0, max(size, n0)) if reuse else (size, size)
        extra = np.arange(drawn + 1)
        bound = clopper_pearson_lower(extra + (selected if reuse else 0), used, alpha)
        bad = bound > p if true_class else bound > 0.5
        total += binom.pmf(k, n0, p) * binom.pmf(extra, drawn, p_selected)[bad].sum()
    return total


@pytest.mark.parametrize("reuse", [True, False])
def test_exact_violation_matches_enumeration_where_the_table_abstains_for_some_pilots(reuse):
    """Decline 0.05 with n0 = 200 of n = 500: the table is 0 (abstain) over part of the pilot's range, which is where
    the reuse branch once built invalid counts."""
    alpha, n0, n, decline = 0.05, 200, 500, 0.05
    table = iss_table(SIGMA, n, alpha, decline, "absolute")
    k = np.arange(n0 // 2 + 1, n0 + 1)
    assert (iss_sample_size(table, *clopper_pearson_interval(k, n0, alpha)) == 0).any()
    for p in (0.5001, 0.55, 0.7, 0.9):
        exact = exact_violation(p, n0, n, alpha, reuse, decline)
        assert exact == pytest.approx(brute_force_violation(p, n0, n, alpha, reuse, decline), rel=1e-9, abs=1e-15)


def test_sound_variant_on_the_oracle_with_inputs_across_p():
    """2,000 inputs with p_A ~ U(0.5, 0.99) on either side of the half-space (n0 = 20, N_max = 500, alpha = 0.05)."""
    alpha = 0.05
    oracle = _oracle()
    rng, gen = np.random.default_rng(3), torch.Generator().manual_seed(3)
    positions = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * norm.ppf(rng.uniform(0.5, 0.99, TRIALS))
    xs = oracle.inputs_at(positions, gen)
    certs = _build("iss_sound", oracle, n0=20, n=500, alpha=alpha).certify_many(xs, generator=gen)
    assert _violations(oracle, certs, xs) <= allowed_rate(alpha, TRIALS)
    assert np.mean([c.prediction != ABSTAIN for c in certs]) > 0.6
    chosen = np.array([c.extra["n_chosen"] for c in certs])
    assert all(c.forward_passes == 20 + c.extra["n_chosen"] for c in certs)
    assert all(c.extra["estimation_samples"] == c.extra["n_chosen"] for c in certs)
    assert 0 < chosen.mean() < 500


@pytest.mark.parametrize("name", ["iss", "iss_sound"])
def test_inputs_the_table_abstains_on_share_a_batch_with_confident_ones(name):
    """Three classes with p_A ~ 0.38 at t = 0 (the pilot's upper bound is below 1/2: table entry 0, abstain with no
    estimate) next to p_A near 1 at t = 2, in one certify_many call."""
    oracle = IntervalClassifier(unit_vector(16, seed=0), [-0.15, 0.15], [0, 1, 2], num_classes=3)
    gen = torch.Generator().manual_seed(4)
    xs = oracle.inputs_at(np.array([0.0, 2.0, 0.0, -2.0]), gen)
    certifier = rsscale.methods.build(name, model=oracle, num_classes=3, sigma=SIGMA, n0=1000, n=2000, alpha=0.001,
                                      batch_size=4096, device="cpu")
    certs = certifier.certify_many(xs, generator=gen)
    assert [c.extra["n_chosen"] == 0 for c in certs] == [True, False, True, False]
    assert certs[0].prediction == ABSTAIN and certs[0].radius == 0.0 and certs[1].radius > 0


# ---- cost ----------------------------------------------------------------------------------------------------


def test_forward_passes_reported_and_fewer_than_the_fixed_size():
    """ISS (reuse) spends max(m, n0) forward passes, m = 0 only the pilot; at N_max = 4,000 (n0 = 100, alpha = 0.001,
    decline 0.05) it spends a fraction of Cohen's n0 + N_max = 4,100 with a mean radius within the decline of
    Cohen's radius at N_max (sigma Phi^-1 of the bound at k = p N_max)."""
    oracle = _oracle()
    p = np.random.default_rng(4).uniform(0.55, 0.99, 300)
    gen = torch.Generator().manual_seed(4)
    xs = oracle.inputs_at(SIGMA * norm.ppf(p), gen)
    certs = _build("iss", oracle, n0=100, n=4000, alpha=0.001, decline=0.05).certify_many(xs, generator=gen)
    for c in certs:
        m = c.extra["n_chosen"]
        assert c.forward_passes == (max(m, 100) if m > 0 else 100) == max(c.extra["estimation_samples"], 100)
        assert c.prediction == ABSTAIN or math.isclose(c.radius, SIGMA * norm.ppf(c.p_lower))
    passes = np.array([c.forward_passes for c in certs])
    radii = np.array([c.radius for c in certs])
    reference = np.maximum(radius_curve(p, 4000, SIGMA, 0.001), 0.0)
    assert passes.mean() < 0.5 * 4100, passes.mean()
    assert reference.mean() - radii.mean() < 0.05 + 0.01, (reference.mean(), radii.mean())


def test_expected_speed_up_at_the_papers_scale():
    """Exact expected forward passes (sum over the pilot count) at N_max = 100,000, n0 = 2,000, alpha = 0.001,
    absolute decline 0.05, p_A on a uniform grid over [0.5, 0.999]: more than the paper's 3x for sigma 0.5 and 1."""
    for sigma, least in ((0.5, 10.0), (1.0, 5.0)):
        table = iss_table(sigma, 100_000, 0.001, 0.05)
        k = np.arange(2001)
        sizes = iss_sample_size(table, *clopper_pearson_interval(np.maximum(k, 2000 - k), 2000, 0.001))
        cost = np.where(sizes > 0, np.maximum(sizes, 2000), 2000)
        expected = np.mean([binom.pmf(k, 2000, p) @ cost for p in np.linspace(0.5, 0.999, 100)])
        assert 100_000 / expected > least, (sigma, 100_000 / expected)


# ---- the registry and bad parameters ---------------------------------------------------------------------------


def test_registry_flags_and_bad_parameters():
    published, sound = rsscale.methods.info("iss"), rsscale.methods.info("iss_sound")
    assert not published.sound and "no alpha split" in published.unsound_reason
    assert sound.sound and sound.unsound_reason == ""
    oracle = _oracle()
    certifier = _build("iss_sound", oracle, n0=10, n=50, alpha=0.01)
    cert = certifier.certify(oracle.inputs_at([1.0], torch.Generator())[0], generator=torch.Generator().manual_seed(0))
    assert cert.forward_passes == 10 + cert.extra["n_chosen"] and cert.prediction in (ABSTAIN, 1)
    assert certifier.settings()["reuse_pilot"] is False
    for params, message in [({"n0": 60, "n": 50}, "n0 .* must not exceed n"),
                            ({"alpha": 1.5}, "alpha must lie strictly between 0 and 1, got 1.5"),
                            ({"decline_type": "percent"}, "decline_type must be one of .* got 'percent'"),
                            ({"decline": -0.1}, "absolute radius decline must be > 0, got -0.1"),
                            ({"decline": 1.0, "decline_type": "relative"}, r"must be in \(0, 1\), got 1.0")]:
        with pytest.raises(ValueError, match=message):
            _build("iss", oracle, **params)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got 0"):
        rsscale.methods.build("iss", model=oracle, num_classes=2, sigma=0.0)
