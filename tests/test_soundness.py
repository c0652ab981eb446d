"""Cohen's CERTIFY and PREDICT against exact oracles (tests/oracles.py)."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from oracles import IntervalClassifier, OneVsRestClassifier, allowed_rate, violation_rate
from rsscale import ABSTAIN, Gaussian, SmoothedClassifier
from rsscale.noise import noise_from_sigma

SIGMA = 0.5
TRIALS = 2000


def _binary_oracle(dim=16):
    return IntervalClassifier(torch.ones(dim), thresholds=[0.0], labels=[0, 1], num_classes=2)


def _three_class_oracle(dim=16):
    # class 1 below -0.4, class 0 on [-0.4, 0.4), class 2 above: the middle
    # class has a finite true radius on both sides.
    return IntervalClassifier(torch.arange(dim, dtype=torch.float32) - 7.5, [-0.4, 0.4], [1, 0, 2], num_classes=3)


def _certify_trials(oracle, positions, n0, n, alpha, seed, noise=None):
    gen = torch.Generator().manual_seed(seed)
    xs = torch.stack([oracle.input_at(t, gen) for t in positions])
    noise = noise or Gaussian(SIGMA)
    smooth = SmoothedClassifier(oracle, oracle.num_classes, noise, batch_size=4096, device="cpu")
    certs = smooth.certify_many(xs, n0=n0, n=n, alpha=alpha, generator=gen)
    ts = np.array([oracle.projection(x) for x in xs])
    return certs, ts


@pytest.mark.parametrize("oracle_factory", [_binary_oracle, _three_class_oracle], ids=["binary", "three-class"])
def test_certified_radius_never_exceeds_true_radius_beyond_alpha(oracle_factory):
    oracle = oracle_factory()
    alpha = 0.05  # large, so that a loose bound would show up in 2,000 trials
    rng = np.random.default_rng(0)
    positions = rng.uniform(-1.5, 1.5, TRIALS)
    certs, ts = _certify_trials(oracle, positions, n0=20, n=200, alpha=alpha, seed=1)
    true_classes = oracle.smoothed_class(ts, Gaussian(SIGMA))
    true_radii = oracle.true_radii(ts, Gaussian(SIGMA))
    predictions = [c.prediction for c in certs]
    radii = [c.radius for c in certs]
    rate = violation_rate(predictions, radii, true_classes, true_radii)
    assert rate <= allowed_rate(alpha, TRIALS), rate
    # not vacuous: most inputs with a large true margin get certified
    confident = oracle.smoothed_probs(ts, Gaussian(SIGMA)).max(axis=1) > 0.9
    assert np.mean([c.prediction != ABSTAIN for c, ok in zip(certs, confident, strict=True) if ok]) > 0.95

    # the harness catches a bound that is loose in the wrong direction: the
    # point estimate p_hat in place of the Clopper-Pearson bound
    naive = [SIGMA * norm.ppf(min(c.extra["count"] / 200, 1 - 1e-12)) if c.prediction >= 0 else 0.0 for c in certs]
    assert violation_rate(predictions, naive, true_classes, true_radii) > allowed_rate(alpha, TRIALS)


def test_one_vs_rest_four_classes_bound_never_exceeds_true_probability_beyond_alpha():
    oracle = OneVsRestClassifier(dim=12)
    alpha, n = 0.05, 200
    gen = torch.Generator().manual_seed(6)
    rng = np.random.default_rng(7)
    xs = torch.stack([oracle.input_at(t, s, gen) for t, s in rng.uniform(-1.5, 1.5, (TRIALS, 2))])
    smooth = SmoothedClassifier(oracle, 4, Gaussian(SIGMA), batch_size=4096, device="cpu")
    certs = smooth.certify_many(xs, n0=20, n=n, alpha=alpha, generator=gen)
    probs = oracle.smoothed_probs(xs, SIGMA)
    certified = np.array([c.prediction != ABSTAIN for c in certs])
    claimed = np.array([probs[i, c.prediction] if c.prediction >= 0 else 1.0 for i, c in enumerate(certs)])
    p_lower = np.array([c.p_lower for c in certs])
    assert np.mean(certified & (p_lower > claimed)) <= allowed_rate(alpha, TRIALS)
    assert np.mean(certified & (probs.argmax(1) != [c.prediction for c in certs])) <= allowed_rate(alpha, TRIALS)
    assert certified.mean() > 0.4 and len({c.prediction for c in certs if c.prediction >= 0}) == 4
    naive = np.array([c.extra["count"] / n for c in certs])
    assert np.mean(certified & (naive > claimed)) > allowed_rate(alpha, TRIALS)


def test_p_lower_tracks_closed_form_on_linear_classifier():
    oracle = _binary_oracle()
    alpha, n = 0.01, 1000
    rng = np.random.default_rng(2)
    positions = rng.uniform(0.05, 1.2, TRIALS)  # class 1 side, p_A from 0.54 to 0.992
    certs, ts = _certify_trials(oracle, positions, n0=10, n=n, alpha=alpha, seed=3)
    p_true = norm.cdf(np.abs(ts) / SIGMA)  # Phi(margin / (sigma |w|)), |w| = 1
    p_lower = np.array([c.p_lower for c in certs])
    assert np.mean(p_lower > p_true) <= allowed_rate(alpha, TRIALS)
    # tight: the gap is of the order of the binomial standard error
    gap = p_true - p_lower
    standard_error = np.sqrt(p_true * (1 - p_true) / n)
    assert np.median(gap / standard_error) < 3.5
    radius_true = np.abs(ts)
    certified = np.array([c.prediction == 1 for c in certs])
    radii = np.array([c.radius for c in certs])
    assert np.mean(radii > radius_true + 1e-9) <= allowed_rate(alpha, TRIALS)
    # radius is sigma * Phi^-1(p_lower) exactly
    assert np.allclose(radii[certified], SIGMA * norm.ppf(p_lower[certified]))


def test_predict_returns_wrong_class_at_most_alpha():
    oracle = _binary_oracle()
    alpha, n = 0.05, 100
    smooth = SmoothedClassifier(oracle, 2, Gaussian(SIGMA), batch_size=512, device="cpu")
    gen = torch.Generator().manual_seed(4)
    rng = np.random.default_rng(5)
    positions = rng.uniform(-0.15, 0.15, TRIALS)  # p_A close to 1/2: abstention and errors are likely
    wrong = abstained = 0
    for t in positions:
        x = oracle.input_at(t, gen)
        label = smooth.predict(x, n=n, alpha=alpha, generator=gen)
        truth = int(oracle.smoothed_class(oracle.projection(x), Gaussian(SIGMA)))
        abstained += label == ABSTAIN
        wrong += label not in (ABSTAIN, truth)
    assert wrong / TRIALS <= allowed_rate(alpha, TRIALS)
    assert 0.2 < abstained / TRIALS < 0.99  # the test is informative: PREDICT decides on some inputs


@pytest.mark.parametrize("family", ["gaussian", "laplace", "uniform"])
@pytest.mark.parametrize("classes", [2, 3])
def test_every_noise_family_certifies_its_native_norm_soundly(family, classes):
    """Axis-aligned oracles: the distance along e_1 is the true radius in every norm."""
    noise = noise_from_sigma(family, SIGMA)
    if classes == 2:  # a half-space, where the certificate with the exact probability is tight
        oracle = IntervalClassifier(torch.eye(10)[0], [0.0], [0, 1], num_classes=2)
    else:
        oracle = IntervalClassifier(torch.eye(10)[0], [-0.4, 0.4], [1, 0, 2], num_classes=3)
    alpha = 0.05
    positions = np.random.default_rng(8).uniform(-1.5, 1.5, TRIALS)
    certs, ts = _certify_trials(oracle, positions, n0=20, n=200, alpha=alpha, seed=9, noise=noise)
    true_classes = oracle.smoothed_class(ts, noise)
    true_radii = oracle.true_radii(ts, noise)
    predictions = [c.prediction for c in certs]
    native = [c.radii[noise.native_norm] for c in certs]
    assert violation_rate(predictions, native, true_classes, true_radii) <= allowed_rate(alpha, TRIALS)
    assert np.mean([p >= 0 for p in predictions]) > 0.5
    assert all(cert.radius == cert.radii["l2"] for cert in certs)
    if classes == 2:  # the harness catches the point estimate in place of the bound
        naive = [noise.radius(min(c.extra["count"] / 200, 1 - 1e-9)) if c.prediction >= 0 else 0.0 for c in certs]
        assert violation_rate(predictions, naive, true_classes, true_radii) > allowed_rate(alpha, TRIALS)
