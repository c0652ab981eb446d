"""Certification at a target radius with early stopping (rsscale.methods.adaptive): soundness of the three strategies
on an exact oracle, the power of that check against peeking, samples spent against a fixed n, and bad parameters."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.bounds import clopper_pearson_lower

SIGMA = 0.5
TRIALS = 2000
R_TARGET = 0.25
P_STAR = norm.cdf(R_TARGET / SIGMA)  # 0.69: r_target is certified iff p_A > P_STAR
STRATEGIES = ["horvath", "betting", "union"]


def _oracle(dim=16):
    return IntervalClassifier(unit_vector(dim, None, 0), [0.0], [0, 1], num_classes=2)


def _build(oracle, strategy, **params):
    params = {"r_target": R_TARGET, "n0": 20, "n": 500, "alpha": 0.05, **params}
    return rsscale.methods.build("adaptive", model=oracle, num_classes=2, sigma=SIGMA, strategy=strategy,
                                 batch_size=4096, device="cpu", **params)


def _run(strategy, p, seed, **params):
    """Certify inputs at p_A = p (random side of the half-space): (certificates, violated per trial)."""
    oracle = _oracle()
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    xs = oracle.inputs_at(rng.choice([-1.0, 1.0], len(p)) * SIGMA * norm.ppf(p), gen)
    certs = _build(oracle, strategy, **params).certify_many(xs, generator=gen)
    t, noise = oracle.projections(xs), Gaussian(SIGMA)
    true_class, true_radius = oracle.smoothed_class(t, noise), oracle.true_radii(t, noise)
    violated = [violation_rate([c.prediction], [c.radius], [k], [r]) > 0
                for c, k, r in zip(certs, true_class, true_radius, strict=True)]
    return certs, np.array(violated)


def _positions(seed):
    """Half the inputs just below the threshold (true radius in [0.17, 0.25): any certificate is a violation), half
    above it (certificates expected)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(P_STAR - 0.06, P_STAR, TRIALS // 2), rng.uniform(P_STAR, 0.99, TRIALS // 2)])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_certificates_at_the_target_radius_are_sound(strategy):
    """2,000 inputs, alpha = 0.05, n0 = 20, budget n = 500: violations <= alpha (+3 s.e.) overall and among the
    1,000 inputs just below the threshold; most inputs above it are certified."""
    p = _positions(seed=STRATEGIES.index(strategy))
    certs, violated = _run(strategy, p, seed=10 + STRATEGIES.index(strategy))
    assert violated.mean() <= allowed_rate(0.05, TRIALS)
    below = p < P_STAR
    assert violated[below].mean() <= allowed_rate(0.05, int(below.sum()))
    certified = np.array([c.prediction != ABSTAIN for c in certs])
    assert certified[p > P_STAR + 0.1].mean() > 0.9
    for c in certs:
        decision = c.extra["decision"]
        assert (decision == "certified") == (c.prediction != ABSTAIN)
        if decision == "certified":
            assert c.radius == R_TARGET and c.radii["l2"] == R_TARGET and c.p_lower > P_STAR
            assert c.extra["implied_radius"] >= R_TARGET
            assert math.isclose(c.extra["implied_radius"], SIGMA * norm.ppf(c.p_lower))
        else:
            assert c.radius == 0.0
        if decision == "abstain_upper":
            assert c.extra["p_upper"] <= P_STAR
        if decision == "abstain_budget" and strategy != "horvath":
            assert c.extra["samples"] == 500 and c.forward_passes == 520


def test_the_check_catches_peeking():
    """The union strategy with the unsplit Clopper-Pearson bound at every checkpoint (peeking at alpha each time) is
    not a certificate: on 1,000 inputs just below the threshold its violation rate is about 2 alpha (0.104 in the
    reference run), significantly above alpha; the split levels give 0.018 on the same inputs."""
    rng = np.random.default_rng(5)
    p = rng.uniform(P_STAR - 0.02, P_STAR, TRIALS // 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rsscale.methods.adaptive, "union_bound_lower", lambda k, t, j, a: clopper_pearson_lower(k, t, a))
        _, violated = _run("union", p, seed=6)
    assert violated.mean() > allowed_rate(0.05, len(p)) + 0.01, violated.mean()
    _, violated = _run("union", p, seed=6)
    assert violated.mean() <= allowed_rate(0.05, len(p))


def test_easy_inputs_need_far_fewer_forward_passes_than_a_fixed_n():
    """p_A = 0.999 and p_A ~ U(0.9, 0.99) at r_target = 0.25 (p* = 0.69), alpha = 0.001, n0 = 100, n = 10,000:
    forward passes against Cohen's n0 + n = 10,100 for the same inputs.  Measured (reference run):
    p_A = 0.999: horvath 180, betting 128, union 135 (1.3-1.8 % of 10,100); U(0.9, 0.99): 198, 150, 163."""
    fixed = 100 + 10_000
    ratios = {}
    for strategy in STRATEGIES:
        for name, p in (("0.999", np.full(200, 0.999)), ("0.9-0.99", np.random.default_rng(7).uniform(0.9, 0.99, 200))):
            certs, _ = _run(strategy, p, seed=8, n0=100, n=10_000, alpha=0.001)
            assert all(c.extra["decision"] == "certified" for c in certs)
            ratios[strategy, name] = np.mean([c.forward_passes for c in certs]) / fixed
    assert all(ratios[s, "0.999"] < 0.02 for s in STRATEGIES), ratios
    assert all(ratios[s, "0.9-0.99"] < 0.1 for s in STRATEGIES), ratios
    assert ratios["betting", "0.999"] < ratios["horvath", "0.999"], ratios


def test_inputs_far_below_the_threshold_abstain_early():
    p = np.full(200, 0.55)  # true radius 0.06 < r_target: the upper bound rules r_target out
    for strategy in STRATEGIES:
        certs, violated = _run(strategy, p, seed=9, n0=100, n=10_000, alpha=0.001)
        assert not violated.any()
        assert np.mean([c.extra["decision"] == "abstain_upper" for c in certs]) > 0.95
        assert np.mean([c.forward_passes for c in certs]) < 0.2 * 10_100


def test_zero_target_radius_is_a_certified_prediction_and_single_inputs_work():
    oracle = _oracle()
    x = oracle.inputs_at([0.8], torch.Generator().manual_seed(0))[0]
    for strategy in STRATEGIES:
        certifier = _build(oracle, strategy, r_target=0.0)
        cert = certifier.certify(x, generator=torch.Generator().manual_seed(1))
        again = certifier.certify(x, generator=torch.Generator().manual_seed(1))
        assert dataclasses.replace(cert, seconds=0.0) == dataclasses.replace(again, seconds=0.0)  # same seed
        assert cert.prediction == 1 and cert.radius == 0.0 and cert.p_lower > 0.5
        assert certifier.settings()["strategy"] == strategy


def test_bad_parameters_name_the_value():
    oracle = _oracle()
    for params, message in [({"strategy": "bisect"}, "unknown strategy 'bisect'"),
                            ({"r_target": -0.1}, "r_target must be a finite number >= 0, got -0.1"),
                            ({"r_target": None}, "needs r_target"),
                            ({"n0": 600}, r"n0 \(selection samples, 600\) must not exceed n"),
                            ({"alpha": 0.0}, "alpha must lie strictly between 0 and 1, got 0.0"),
                            ({"beta": 2.0}, "alpha must lie strictly between 0 and 1, got 2.0"),
                            ({"growth": 1.0}, "growth factor must be > 1, got 1.0"),
                            ({"first": 0}, "first must be an integer >= 1, got 0"),
                            ({"stages": (10, 5)}, r"stages must be positive and strictly increasing, got \(10, 5\)")]:
        strategy = params.pop("strategy", "betting")
        with pytest.raises(ValueError, match=message):
            _build(oracle, strategy, **params)
    assert rsscale.methods.info("adaptive").sound
    horvath = _build(oracle, "horvath", n=125_000)
    assert horvath.stages == [1000, 10_000, 125_000]
    assert _build(oracle, "horvath", n=500).stages == [4, 40, 500]
