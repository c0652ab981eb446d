"""Second-order smoothing (rsscale.methods.second_order): the interval Neyman-Pearson bound (Cohen's on a half-space,
tight on a slab), the Stein gradient bound's sqrt(d) growth, and soundness on exact oracles."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.second_order import chi_tail_mean, second_order_radius, stein_deviation, worst_interval

SIGMA = 0.5
TRIALS = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


def _slab(dim, width=0.6, seed=0):
    """Class 0 on the slab |u . x| < width, class 1 outside."""
    return IntervalClassifier(unit_vector(dim, None, seed), [-width, width], [1, 0, 1], num_classes=2)


def _build(model, **params):
    return rsscale.methods.build("second_order", model=model, num_classes=2, sigma=SIGMA, device="cpu", **params)


def test_bound_is_cohens_on_a_half_space_and_tight_on_a_slab():
    for t in (0.1, 0.7, 2.0):  # half-space: gamma = phi(t) -> Cohen's radius t (in sigma units)
        assert second_order_radius(norm.cdf(t), norm.pdf(t), 1.0) == pytest.approx(t, abs=1e-9)
    for w, t in ((1.2, 0.0), (1.5, 0.4), (2.0, 1.0)):  # slab |z + t| < w: exact p and gradient
        p = norm.cdf(w - t) - norm.cdf(-w - t)
        gamma = abs(norm.pdf(-w - t) - norm.pdf(w - t))
        a, b = worst_interval(p, gamma)
        assert (a, b) == (pytest.approx(-w - t, abs=1e-8), pytest.approx(w - t, abs=1e-8))  # the slab itself
        true = brentq(lambda r, w=w, t=t: norm.cdf(w - t - r) - norm.cdf(-w - t - r) - 0.5, 0.0, w - t)  # g changes
        assert second_order_radius(p, gamma, 1.0) == pytest.approx(true, abs=1e-7)
    p = np.linspace(0.51, 0.999, 40)
    assert np.all(second_order_radius(p, 0.0, 1.0) > norm.ppf(p))  # zero gradient: beyond Cohen
    assert np.allclose(second_order_radius(p, 1.0, 1.0), norm.ppf(p))  # no gradient information: Cohen
    assert np.all(np.diff(second_order_radius(0.8, np.linspace(0, 0.3, 30), 1.0)) <= 1e-12)
    assert second_order_radius(0.5, 0.0, 1.0) == 0.0
    assert chi_tail_mean(4, 0.0) == pytest.approx(math.sqrt(2) * math.gamma(2.5) / math.gamma(2))


@pytest.mark.parametrize("dim, n, positions", [(2, 5000, (-1.4, 1.4)), (100, 500, (-1.4, 1.4))])
def test_sound_on_a_slab(dim, n, positions):
    """2,000 inputs across a slab (where the bound is tight), alpha = 0.05; at d = 2 the gradient bound is informative
    (about 30% of the certificates beat Cohen's), at d = 100 with n = 500 it falls back to Cohen's."""
    alpha, oracle = 0.05, _slab(dim)
    rng, gen = np.random.default_rng(dim), torch.Generator().manual_seed(dim)
    xs = oracle.inputs_at(rng.uniform(*positions, TRIALS), gen)
    certs = _build(oracle, n0=20, n=n, alpha=alpha, batch_size=4000).certify_many(xs, generator=gen)
    t, noise = oracle.projections(xs), Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    certified = [c for c in certs if c.prediction != ABSTAIN]
    assert len(certified) > 0.5 * TRIALS
    beyond = np.mean([c.radius > c.extra["cohen_radius"] + 1e-9 for c in certified])
    assert beyond > 0.2 if dim == 2 else beyond == 0.0
    assert all(c.forward_passes == 20 + n and c.extra["model_evaluations"] == 20 + n for c in certs)


def test_gradient_bound_grows_like_sqrt_d_and_falls_back_to_cohen():
    """At the slab's center (gradient 0) and fixed n, the bound is the estimator's norm plus the deviation term, both
    ~ sqrt(d / n): the log-log slope over d = 4 .. 4096 is 1/2 but for the deviation's linear term 2 B L / (3 n),
    B = sqrt(d) + 8, which adds ~20% at d = 4 and ~1% at d = 4096 (its own slope, computed below, is ~0.48), and the
    estimate's relative fluctuation ~ 1 / sqrt(d * inputs); hence |slope - 0.5| < 0.05 and within 0.02 of the
    deviation's slope."""
    n, dims, bounds = 1000, [4, 16, 64, 256, 1024, 4096], []
    for d in dims:
        oracle = _slab(d, width=0.8)
        xs = oracle.inputs_at(np.zeros(4), torch.Generator().manual_seed(d))
        certs = _build(oracle, n0=20, n=n, alpha=0.001, batch_size=2000).certify_many(
            xs, generator=torch.Generator().manual_seed(d))
        bounds.append(np.mean([c.extra["gradient_upper"] for c in certs]))
        if d >= 64:  # the bound exceeds phi(0) / sigma: nothing beyond Cohen's radius at the smaller alpha
            assert all(c.extra["cohen_fallback"] == 1 for c in certs)
            assert all(c.radius == pytest.approx(c.extra["cohen_radius"], abs=1e-9) for c in certs)
    slope = np.polyfit(np.log(dims), np.log(bounds), 1)[0]
    deviation = [stein_deviation(n, d, math.sqrt(d) + 8.0, 0.0005) for d in dims]
    assert abs(slope - 0.5) < 0.05 and abs(slope - np.polyfit(np.log(dims), np.log(deviation), 1)[0]) < 0.02, slope
    assert bounds[0] < norm.pdf(0) / SIGMA  # at d = 4 the gradient bound is informative


def test_bad_parameters_and_registry():
    oracle = _slab(4)
    with pytest.raises(ValueError, match="gradient_alpha"):
        _build(oracle, gradient_alpha=1.0)
    with pytest.raises(ValueError, match="truncation"):
        _build(oracle, truncation=0)
    with pytest.raises(ValueError, match="n0"):
        _build(oracle, n0=10, n=5)
    certifier = _build(oracle, n0=10, n=100, alpha=0.01)
    assert certifier.settings() == {"sigma": SIGMA, "n0": 10, "n": 100, "alpha": 0.01, "gradient_alpha": 0.5,
                                    "truncation": 8.0}
    x = oracle.inputs_at([0.0], torch.Generator().manual_seed(0))[0]
    first = certifier.certify(x, generator=torch.Generator().manual_seed(3))
    again = certifier.certify(x, generator=torch.Generator().manual_seed(3))
    assert (first.prediction, first.radius, first.extra) == (again.prediction, again.radius, again.extra)
    assert rsscale.methods.info("second_order").sound
