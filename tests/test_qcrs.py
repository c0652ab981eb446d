"""QCRS (rsscale.methods.qcrs): per-input noise levels through the shared sampler, the bisection's direction on
oracles whose radius-vs-sigma curve is monotone, the cost reported, and the registry's unsound flag."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, Recorder, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.qcrs import ScaledGaussian
from rsscale.sampling import Sampler

SIGMA = 0.25
TRIALS = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


def _half_space(dim=16):
    return IntervalClassifier(unit_vector(dim, None, 0), [0.0], [0, 1], num_classes=2)


def _build(model, num_classes=2, **params):
    return rsscale.methods.build("qcrs", model=model, num_classes=num_classes, sigma=SIGMA, batch_size=1000,
                                 device="cpu", **params)


def test_each_input_gets_its_own_noise_level():
    recorder, noise = Recorder(), ScaledGaussian()
    sampler = Sampler(recorder, noise, 2, 333, "cpu")
    xs = torch.zeros(3, 50)
    sigmas = [0.1, 1.0, 3.0]
    noise.start(sigmas, 400)
    sampler.counts(xs, 400, torch.Generator().manual_seed(0))
    rows = torch.cat(recorder.seen).view(3, 400 * 50)
    assert np.allclose(rows.std(dim=1).numpy(), sigmas, rtol=0.03)


def test_search_moves_towards_the_larger_radius():
    """Far from a half-space all n_search samples agree at every level, so the estimated radius grows with sigma and
    the search ends near the top of the range; at the center of a narrow band (class 0 on |u . x| < 0.3) p_A falls
    fast with sigma (R(0.125) = 0.27, R(0.25) = 0.18, R(0.5) < 0), so it ends near the bottom."""
    gen = torch.Generator().manual_seed(0)
    far = _half_space()
    certs = _build(far, n0=20, n=200, steps=6).certify_many(far.inputs_at([5.0, -5.0], gen), generator=gen)
    for cert in certs:
        assert cert.extra["sigma_chosen"] > 0.95 * 2.0 * SIGMA and cert.prediction != ABSTAIN
    band = IntervalClassifier(unit_vector(16, None, 0), [-0.3, 0.3], [1, 0, 2], num_classes=3)
    certs = _build(band, num_classes=3, n0=20, n=200, steps=6).certify_many(band.inputs_at(np.zeros(20), gen),
                                                                             generator=gen)
    chosen = np.array([c.extra["sigma_chosen"] for c in certs])
    assert np.median(chosen) < 1.15 * 0.5 * SIGMA and chosen.max() < 0.75 * SIGMA, chosen
    assert all(c.prediction == 0 and c.radius <= 0.3 for c in certs)


def test_fresh_certificate_holds_at_the_chosen_sigma_on_a_half_space():
    """g's class and radius on a half-space do not depend on sigma, so here the per-input statement is checkable:
    2,000 inputs, alpha = 0.05, the violation rate stays below alpha (the final samples are fresh)."""
    alpha, oracle = 0.05, _half_space()
    rng, gen = np.random.default_rng(3), torch.Generator().manual_seed(3)
    ts = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * norm.ppf(rng.uniform(0.5, 0.99, TRIALS))
    xs = oracle.inputs_at(ts, gen)
    certs = _build(oracle, n0=20, n=500, alpha=alpha, n_search=100, steps=3).certify_many(xs, generator=gen)
    t = oracle.projections(xs)
    noise = Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    chosen = np.array([c.extra["sigma_chosen"] for c in certs])
    assert chosen.min() >= 0.5 * SIGMA and chosen.max() <= 2.0 * SIGMA and chosen.std() > 0
    assert all(c.forward_passes == 2 * 3 * 100 + 520 and c.extra["search_passes"] == 600 for c in certs)


def test_deterministic_registry_and_bad_parameters():
    oracle = _half_space()
    x = oracle.inputs_at([0.2], torch.Generator().manual_seed(0))[0]
    certifier = _build(oracle, n0=10, n=100, n_search=50, steps=2)
    a, b = (certifier.certify(x, generator=torch.Generator().manual_seed(5)) for _ in range(2))
    assert (a.prediction, a.radius, a.extra) == (b.prediction, b.radius, b.extra)
    assert a.forward_passes == 2 * 2 * 50 + 110
    info = rsscale.methods.info("qcrs")
    assert not info.sound and "Sukenik" in info.unsound_reason
    for params, message in [({"low": 1.5}, "0 < low <= 1 <= high"), ({"high": 0.5}, "0 < low <= 1 <= high"),
                            ({"probe": 0.0}, "probe"), ({"steps": -1}, "steps must be an integer >= 0"),
                            ({"n_search": 0}, "n_search must be an integer >= 1")]:
        with pytest.raises(ValueError, match=message):
            _build(oracle, **params)
