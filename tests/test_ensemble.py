"""Ensemble base classifier (rsscale.methods.ensemble): the summed-logit model and its K-consensus, the member
evaluations counted, Cohen's certificate on it unchanged, and soundness on an ensemble whose majority is an exact
oracle."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import Gaussian
from rsscale.methods.ensemble import EnsembleModel

SIGMA = 0.5
TRIALS = 2000
THRESHOLDS = (-0.2, 0.2, 0.0)  # majority of u . x >= a over these = the half-space u . x >= 0


pytestmark = pytest.mark.usefixtures("one_thread")


def _members(dim=16):
    u = unit_vector(dim, None, 0)
    return [IntervalClassifier(u, [a], [0, 1], num_classes=2) for a in THRESHOLDS]


def _majority(dim=16):
    return IntervalClassifier(unit_vector(dim, None, 0), [0.0], [0, 1], num_classes=2)


def _build(name, model, **params):
    return rsscale.methods.build(name, model=model, num_classes=2, sigma=SIGMA, batch_size=1000, device="cpu",
                                 **params)


class Counting(torch.nn.Module):
    """A linear member that counts the rows it has seen."""

    def __init__(self, seed, dim=8, classes=4):
        super().__init__()
        self.linear = torch.nn.Linear(dim, classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(classes, dim, generator=torch.Generator().manual_seed(seed)))
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.linear(x)


def test_summed_logits_and_consensus_decisions_and_costs():
    members = [Counting(seed) for seed in range(5)]
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = [m(x) for m in members]
        full = EnsembleModel(members)(x)
        assert torch.allclose(full, sum(logits))
        for m in members:
            m.rows = 0
        model = EnsembleModel(members, consensus=2)
        model.recording = True
        out = model(x)
    agree = logits[0].argmax(1) == logits[1].argmax(1)
    assert 0 < int(agree.sum()) < len(x)  # both kinds of rows occur
    assert torch.equal(out.argmax(1)[agree], logits[0].argmax(1)[agree])  # consensus rows: the agreed class
    assert torch.allclose(out[~agree], sum(logits)[~agree], atol=1e-5)  # the others: the full sum
    (cost,) = model.log
    assert cost.tolist() == [2 if a else 5 for a in agree.tolist()]
    assert [m.rows for m in members] == [300, 300] + [int((~agree).sum())] * 3


def test_certificate_equals_cohens_on_the_equivalent_classifier_and_evaluations_are_counted():
    """Majority of the three half-spaces = one half-space: same seed, same certificates as Cohen on that half-space.
    With K = 2 the third member runs exactly where u . (x + e) falls in [-0.2, 0.2)."""
    oracle, n0, n = _majority(), 100, 4000
    ts = np.array([0.3, -0.5, 0.05, 1.2])
    xs = oracle.inputs_at(ts, torch.Generator().manual_seed(0))
    cohen = _build("cohen", oracle, n0=n0, n=n).certify_many(xs, generator=torch.Generator().manual_seed(1))
    for consensus in (None, 2, 3):
        certs = _build("ensemble", torch.nn.ModuleList(_members()), n0=n0, n=n,
                       consensus=consensus).certify_many(xs, generator=torch.Generator().manual_seed(1))
        for ours, ref, t in zip(certs, cohen, ts, strict=True):
            assert (ours.prediction, ours.radius, ours.p_lower) == (ref.prediction, ref.radius, ref.p_lower)
            assert ours.forward_passes == n0 + n and ours.extra["members"] == 3
            if consensus in (None, 3):
                assert ours.extra["model_evaluations"] == 3 * (n0 + n) and ours.extra["consensus"] == 3
            else:
                third = norm.cdf((0.2 - t) / SIGMA) - norm.cdf((-0.2 - t) / SIGMA)
                per_sample = ours.extra["evaluations_per_sample"]
                assert abs(per_sample - (2 + third)) < 4 * np.sqrt(third * (1 - third) / (n0 + n)) + 1e-9
                assert ours.extra["model_evaluations"] == round(per_sample * (n0 + n))
    single = _build("ensemble", _members(), n0=n0, n=n, consensus=2).certify(xs[0],
                                                                             generator=torch.Generator().manual_seed(1))
    assert single.prediction == 1 and single.radius > 0


def test_sound_on_the_majority_oracle():
    """2,000 inputs at p_A ~ U(0.5, 0.99) of the majority half-space, K = 2 consensus, alpha = 0.05, n = 500."""
    alpha, oracle = 0.05, _majority()
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    ts = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * norm.ppf(rng.uniform(0.5, 0.99, TRIALS))
    xs = oracle.inputs_at(ts, gen)
    certs = _build("ensemble", _members(), n0=20, n=500, alpha=alpha, consensus=2).certify_many(xs, generator=gen)
    t = oracle.projections(xs)
    noise = Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    assert np.mean([c.prediction >= 0 for c in certs]) > 0.5


def test_registry_and_bad_parameters():
    info = rsscale.methods.info("ensemble")
    assert info.sound and info.unsound_reason == ""
    with pytest.raises(ValueError, match="consensus K must be at most the number of members \\(3\\), got 4"):
        _build("ensemble", _members(), consensus=4)
    with pytest.raises(ValueError, match="consensus must be an integer >= 1, got 0"):
        _build("ensemble", _members(), consensus=0)
    with pytest.raises(ValueError, match="non-empty list"):
        _build("ensemble", [])
    certifier = _build("ensemble", _members(), n0=10, n=20, consensus=2)
    assert certifier.settings() == {"sigma": SIGMA, "n0": 10, "n": 20, "alpha": 0.001, "members": 3, "consensus": 2}
