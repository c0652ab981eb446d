"""ISRS (rsscale.methods.isrs): the two-Gaussian Neyman-Pearson bound, Cohen's radius at rate 0, and soundness of
the input-dependent certificate on a half-space oracle (g = sign(u . x) whatever sigma(x), true radius |u . x|)."""

import numpy as np
import pytest
import torch
from scipy.stats import ncx2, norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import Gaussian
from rsscale.methods.isrs import isrs_radius, two_gaussian_bound, worst_bound

SIGMA = 0.25
TRIALS = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


def _half_space(dim=16):
    return IntervalClassifier(unit_vector(dim, None, 0), [0.0], [0, 1], num_classes=2)


def _build(model, **params):
    return rsscale.methods.build("isrs", model=model, num_classes=2, sigma=SIGMA, batch_size=1000, device="cpu",
                                 **params)


def test_bound_is_tight_on_the_worst_set_and_unimodal_in_sigma():
    """The NP bound equals P(W in ball) for the ball that holds mass p under Z (checked by Monte Carlo), matches
    Cohen at s1 = s0, and is unimodal in log s1, so the endpoints of the range are the worst levels."""
    dim, p, eps, s0, s1 = 5, 0.9, 0.3, 0.5, 0.6
    k = s0**2 / (s1**2 - s0**2)
    delta = np.zeros(dim)
    delta[0] = eps
    center, rho2 = -k * delta, s0**2 * ncx2.ppf(p, dim, (eps * k / s0) ** 2)
    rng = np.random.default_rng(0)
    z, w = s0 * rng.standard_normal((200_000, dim)), delta + s1 * rng.standard_normal((200_000, dim))
    assert np.mean(((z - center) ** 2).sum(1) <= rho2) == pytest.approx(p, abs=0.003)
    assert np.mean(((w - center) ** 2).sum(1) <= rho2) == pytest.approx(two_gaussian_bound(p, eps, s0, s1, dim)[()],
                                                                          abs=0.003)
    assert two_gaussian_bound(p, eps, s0, s0, dim)[()] == pytest.approx(norm.cdf(norm.ppf(p) - eps / s0))
    for dim, p, eps in [(16, 0.99, 0.2), (100, 0.9, 0.05), (1000, 0.999, 0.1)]:
        curve = two_gaussian_bound(p, eps, s0, s0 * np.exp(np.linspace(-0.3, 0.3, 121)), dim)
        peak = int(np.argmax(curve))
        assert np.all(np.diff(curve[: peak + 1]) >= -1e-9) and np.all(np.diff(curve[peak:]) <= 1e-9)
        assert worst_bound(p, eps, s0, 0.3 / eps, dim) == pytest.approx(curve.min())


def test_rate_zero_is_cohen_and_high_dimension_shrinks_the_radius():
    p = np.array([0.6, 0.9, 0.999])
    assert np.allclose(isrs_radius(p, SIGMA, 0.0, 100), SIGMA * norm.ppf(p))
    x = _half_space().inputs_at([0.3], torch.Generator().manual_seed(0))[0]
    a = _build(_half_space(), n0=20, n=500, rate=0.0).certify(x, generator=torch.Generator().manual_seed(1))
    b = rsscale.methods.build("cohen", model=_half_space(), num_classes=2, sigma=SIGMA, n0=20, n=500,
                              batch_size=1000, device="cpu").certify(x, generator=torch.Generator().manual_seed(1))
    assert (a.prediction, a.radius, a.p_lower) == (b.prediction, pytest.approx(b.radius), b.p_lower)
    radii = [float(isrs_radius(0.99, SIGMA, 0.1, d)) for d in (10, 100, 1000, 10_000)]
    assert all(lo < hi for hi, lo in zip(radii[:-1], radii[1:], strict=True)) and radii[-1] < 0.3 * radii[0]


def test_certificate_is_sound_on_a_half_space():
    """2,000 inputs at p_A ~ U(0.5, 0.99) under sigma(x) (random orthogonal parts: sigma(x) varies), alpha = 0.05:
    the violation rate (class != sign(u . x) or radius > |u . x|) stays below alpha plus 3 binomial errors."""
    alpha, oracle, rate = 0.05, _half_space(), 0.3
    rng, gen = np.random.default_rng(7), torch.Generator().manual_seed(7)
    xs = oracle.inputs_at(np.zeros(TRIALS), gen)
    certifier = _build(oracle, n0=20, n=500, alpha=alpha, rate=rate)
    sig = certifier.sigmas(xs)
    ts = rng.choice([-1.0, 1.0], TRIALS) * sig * norm.ppf(rng.uniform(0.5, 0.99, TRIALS))
    xs = xs + torch.as_tensor(ts, dtype=torch.float32)[:, None] * oracle.u
    certs = certifier.certify_many(xs, generator=gen)
    chosen = np.array([c.extra["sigma_chosen"] for c in certs])
    assert chosen.max() / chosen.min() > 1.3
    t = oracle.projections(xs)
    rate_seen = violation_rate([c.prediction for c in certs], [c.radius for c in certs],
                               oracle.smoothed_class(t, Gaussian(SIGMA)), np.abs(t))
    assert rate_seen <= allowed_rate(alpha, TRIALS)
    radius = np.array([c.radius for c in certs])
    cohen = np.array([c.extra["cohen_radius"] for c in certs])
    assert np.all(radius <= cohen + 1e-12) and np.mean(radius > 0) > 0.5


def test_registry_and_bad_parameters():
    assert rsscale.methods.info("isrs").sound
    for params, message in [({"rate": -1.0}, "rate"), ({"span": float("nan")}, "span"), ({"n0": 0}, "n0")]:
        with pytest.raises(ValueError, match=message):
            _build(_half_space(), **params)
