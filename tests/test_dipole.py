"""Gaussian dipole smoothing (rsscale.methods.dipole): antithetic pairs through the shared sampler, the bound's
exactness on a half-space, and soundness on exact oracles."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, Recorder, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.dipole import AntitheticGaussian, dipole_lower_bound, dipole_radius, pair_vote
from rsscale.sampling import Sampler

SIGMA = 0.5
TRIALS = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


def _oracle(dim=16):
    return IntervalClassifier(unit_vector(dim, None, 0), [0.0], [0, 1], num_classes=2)


def _build(model, num_classes=2, **params):
    return rsscale.methods.build("dipole", model=model, num_classes=num_classes, sigma=SIGMA, batch_size=1000,
                                 device="cpu", **params)


@pytest.mark.parametrize("num_samples, batch_size", [(10, 6), (8, 1000), (6, 4)])
def test_pairs_stay_aligned_within_inputs_and_batches(num_samples, batch_size):
    """Flat rows 2j, 2j + 1 are x_i + e and x_i - e of the same input, whatever the batch boundaries."""
    recorder = Recorder(3)
    xs = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    sampler = Sampler(recorder, AntitheticGaussian(SIGMA), 10, batch_size, "cpu", vote=pair_vote(3))
    counts = sampler.counts(xs, num_samples, torch.Generator().manual_seed(1))
    rows = torch.cat(recorder.seen)
    assert rows.shape[0] == 5 * num_samples
    owners = torch.arange(0, len(rows), 2) // num_samples
    assert torch.allclose(rows[0::2] + rows[1::2], 2 * xs[owners], atol=1e-6)
    assert not torch.allclose(rows[0::2], rows[1::2])
    assert counts[:, 0].tolist() == [num_samples // 2] * 5  # every pair (0, 0) -> joint id 0
    assert counts[:, 9].tolist() == [num_samples // 2] * 5  # every second row -> the discard id C * C
    with pytest.raises(ValueError, match="even number of rows"):
        AntitheticGaussian(SIGMA).sample_(torch.empty(3, 2), torch.Generator())


@pytest.mark.parametrize("t", [0.05, 0.3, 0.8, 1.5])
def test_bound_is_exact_on_a_half_space(t):
    """Half-space u . z >= -t: S is the slab |u . e| < t, N the half-space u . e > t; with the exact masses the bound
    is P(f(x + delta + e) = c_A) = Phi((t - R) / s) and the radius is the true one, t."""
    c_s, c_n = 2 * norm.cdf(t / SIGMA) - 1, norm.sf(t / SIGMA)
    for r in (0.0, 0.5 * t, t, 2 * t):
        assert dipole_lower_bound(c_s, c_n, r, SIGMA) == pytest.approx(norm.cdf((t - r) / SIGMA), abs=1e-12)
    assert dipole_radius(c_s, c_n, SIGMA) == pytest.approx(t, abs=1e-9)


def test_radius_monotone_and_zero_without_a_majority():
    assert dipole_radius(0.3, 0.2, SIGMA) == 0.0  # C_S + C_N = 1/2: nothing certified
    grid = np.linspace(0.0, 0.98, 50)
    r_s = dipole_radius(grid, 0.01, SIGMA)
    r_n = dipole_radius(0.4, np.linspace(0.0, 0.3, 50), SIGMA)
    assert np.all(np.diff(r_s) >= 0) and np.all(np.diff(r_n) >= 0) and r_s[-1] > 0 and r_n[-1] > 0
    # never below Cohen's radius for the same bound C_S + C_N on p_A (slab and far half-space are disjoint when
    # C_S + 2 C_N <= 1, as for the true masses): far above it when the mass is symmetric
    assert dipole_radius(0.9, 0.0, SIGMA) > 1.2 * SIGMA * norm.ppf(0.9)
    rng = np.random.default_rng(0)
    c_s = rng.uniform(0, 1, 2000)
    c_n = rng.uniform(0, 1, 2000) * (1 - c_s) / 2
    cohen = SIGMA * norm.ppf(np.clip(c_s + c_n, 0.5, None))
    assert np.all(dipole_radius(c_s, c_n, SIGMA) >= cohen - 1e-9)


@pytest.mark.parametrize("c_n_count", ["either", "plus"])
def test_sound_on_a_half_space(c_n_count):
    """2,000 inputs at p_A ~ U(0.5, 0.99), alpha = 0.05, n = 500 (250 pairs): the violation rate stays below alpha."""
    alpha, oracle = 0.05, _oracle()
    rng, gen = np.random.default_rng(1), torch.Generator().manual_seed(1)
    ts = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * norm.ppf(rng.uniform(0.5, 0.99, TRIALS))
    xs = oracle.inputs_at(ts, gen)
    certs = _build(oracle, n0=20, n=500, alpha=alpha, c_n_count=c_n_count).certify_many(xs, generator=gen)
    t = oracle.projections(xs)
    noise = Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    assert np.mean([c.prediction != ABSTAIN for c in certs]) > 0.5
    for c in certs[:50]:
        e = c.extra
        assert e["pairs"] == 250 and c.forward_passes == 520
        assert e["count_both"] + e["count_plus_only"] + e["count_minus_only"] <= 250


def test_sound_on_three_classes_and_the_pair_counts_are_symmetric():
    alpha = 0.05
    oracle = IntervalClassifier(unit_vector(16, None, 1), [-0.4, 0.4], [1, 0, 2], num_classes=3)
    rng, gen = np.random.default_rng(2), torch.Generator().manual_seed(2)
    xs = oracle.inputs_at(rng.uniform(-1.5, 1.5, TRIALS), gen)
    certs = _build(oracle, num_classes=3, n0=20, n=500, alpha=alpha).certify_many(xs, generator=gen)
    t = oracle.projections(xs)
    noise = Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    plus = sum(c.extra["count_plus_only"] for c in certs)
    minus = sum(c.extra["count_minus_only"] for c in certs)
    assert abs(plus - minus) < 4 * np.sqrt(plus + minus)  # P(only +) = P(only -) by the symmetry of the noise


def test_odd_sizes_bad_parameters_and_registry():
    oracle = _oracle()
    certifier = rsscale.methods.build("dipole", model=oracle, num_classes=2, sigma=SIGMA, n0=10, n=101, batch_size=7,
                                      device="cpu")
    cert = certifier.certify(oracle.inputs_at([1.0], torch.Generator())[0], generator=torch.Generator().manual_seed(0))
    assert cert.forward_passes == 10 + 100 and cert.extra["pairs"] == 50 and cert.prediction == 1
    assert certifier.paired.batch_size == 6
    with pytest.raises(ValueError, match="c_n_count must be one of"):
        _build(oracle, c_n_count="minus")
    with pytest.raises(ValueError, match="needs n >= 2"):
        _build(oracle, n0=1, n=1)
    assert rsscale.methods.info("dipole").sound
