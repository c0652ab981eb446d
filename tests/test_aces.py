"""ACES (rsscale.methods.aces): the entropy vote, one sample set for every theta, the theta = 0 / 1 limits, and
soundness of the composed classifier on an exact oracle."""

import json

import numpy as np
import pytest
import torch

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.aces import SelectiveInterval, entropy_vote, normalized_entropy, selective_truth
from rsscale.models import build_model, save_checkpoint

SIGMA = 0.5
TRIALS = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(seed, num_classes=3, dim=6):
    torch.manual_seed(seed)
    return build_model("mlp", dim=dim, num_classes=num_classes, hidden=[8])


def _build(model, core, num_classes=3, **params):
    params = {"n0": 20, "n": 300, "alpha": 0.01, "batch_size": 128, **params}
    return rsscale.methods.build("aces", model=model, num_classes=num_classes, sigma=SIGMA, core=core, device="cpu",
                                 **params)


def _inputs(count=12, dim=6, seed=0):
    return torch.rand(count, dim, generator=torch.Generator().manual_seed(seed))


def test_entropy_and_vote():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [200.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    h = normalized_entropy(logits)
    assert h[0] == pytest.approx(1.0) and h[1] == 0.0 and 0.1 < h[2] < 0.5
    vote = entropy_vote(4, [0.05, 0.5, 1.0])  # buckets: #(thetas below the entropy)
    assert vote(logits).tolist() == [0 * 4 + 2, 0 * 4 + 0, 1 * 4 + 1]
    with pytest.raises(ValueError, match="scores 4 classes, expected 3"):
        entropy_vote(3, [0.5])(logits)


def test_theta_sweep_equals_each_theta_alone():
    model, core, xs = _mlp(0), _mlp(1), _inputs()
    thetas = [0.9, 0.0, 0.45, 1.0, 0.7]
    sweep = _build(model, core).certify_thetas(xs, thetas, torch.Generator().manual_seed(3))
    for theta, certs in zip(thetas, sweep, strict=True):
        alone = _build(model, core, theta=theta).certify_many(xs, torch.Generator().manual_seed(3))
        for a, b in zip(certs, alone, strict=True):
            assert (a.prediction, a.radius, a.p_lower, a.extra) == (b.prediction, b.radius, b.p_lower, b.extra)
    selected = np.array([[c.extra["count_select"] for c in certs] for certs in sweep])
    assert np.all(selected[[1, 2, 4, 0, 3]].T == np.sort(selected.T, axis=1))  # more selected as theta grows
    assert len({c.extra["count_select"] for c in sweep[2]}) > 1  # theta 0.45 splits the samples of some inputs


def test_theta_one_is_cohen_and_theta_zero_is_the_core():
    model, core, xs = _mlp(0), _mlp(1), _inputs(20)
    cohen = rsscale.methods.build("cohen", model=model, num_classes=3, sigma=SIGMA, n0=20, n=300, alpha=0.01,
                                  batch_size=128, device="cpu").certify_many(xs, torch.Generator().manual_seed(5))
    pure, never = _build(model, core).certify_thetas(xs, [1.0, 0.0], torch.Generator().manual_seed(5))
    assert any(c.radius > 0 for c in cohen)
    for c, a in zip(cohen, pure, strict=True):
        assert (a.prediction, a.radius, a.p_lower, a.extra["count"]) == (c.prediction, c.radius, c.p_lower,
                                                                         c.extra["count"])
        assert a.extra["selected"] == 1 and a.extra["radius_select"] == np.inf
    with torch.no_grad():
        core_classes = core(xs).argmax(1).tolist()
    assert [c.prediction for c in never] == core_classes
    assert all(c.radius == 0.0 and c.extra["certified"] == 0 and c.extra["count_select"] == 0 for c in never)


def test_core_from_a_checkpoint(tmp_path):
    model, core, xs = _mlp(0), _mlp(1), _inputs(4)
    save_checkpoint(core, tmp_path / "core.pt", sigma=0.0)
    a = _build(model, tmp_path / "core.pt", theta=0.0).certify_many(xs, torch.Generator().manual_seed(1))
    b = _build(model, core, theta=0.0).certify_many(xs, torch.Generator().manual_seed(1))
    assert [c.prediction for c in a] == [c.prediction for c in b]


def _selective_oracle():
    u = unit_vector(16, None, 2)
    classes = IntervalClassifier(u, [-0.5, 0.5], [0, 1, 2], num_classes=3)
    confident = IntervalClassifier(u, [-0.2], [0, 1], num_classes=2)
    core = IntervalClassifier(u, [], [2], num_classes=3)
    return classes, confident, core


def test_sound_on_a_selective_oracle():
    """F confident (entropy ~0) for u . x >= -0.2 with classes 0 | 1 | 2 split at -0.5, 0.5, core class 2: g = g_F
    where g_s = 1 else 2.  2,000 inputs, alpha = 0.05: uncertified outputs (core fallback) claim nothing; certified
    ones stay within g's true radius.  Without the selector's radius the same certificates fail."""
    alpha = 0.05
    classes, confident, core = _selective_oracle()
    rng, gen = np.random.default_rng(4), torch.Generator().manual_seed(4)
    xs = classes.inputs_at(rng.uniform(-0.6, 1.3, TRIALS), gen)
    certifier = _build(SelectiveInterval(classes, confident), core, theta=0.5, n0=20, n=500, alpha=alpha,
                       batch_size=2000)
    certs = certifier.certify_many(xs, generator=gen)
    true_class, true_radius = selective_truth(classes, confident, core, classes.projections(xs), Gaussian(SIGMA))
    claimed = [c.prediction if c.extra["certified"] else ABSTAIN for c in certs]
    rate = violation_rate(claimed, [c.radius for c in certs], true_class, true_radius)
    assert rate <= allowed_rate(alpha, TRIALS)
    assert 0.4 < np.mean([c.extra["certified"] for c in certs]) < 0.9
    assert all(c.prediction == 2 for c in certs if not c.extra["selected"])
    radius_f_only = [c.extra["radius_f"] if c.extra["certified"] else 0.0 for c in certs]
    assert violation_rate(claimed, radius_f_only, true_class, true_radius) > 4 * max(rate, 0.01)


def test_bad_parameters_and_registry():
    model, core = _mlp(0), _mlp(1)
    with pytest.raises(ValueError, match="needs a core model"):
        _build(model, None)
    with pytest.raises(ValueError, match="core must be a torch.nn.Module"):
        _build(model, 3)
    with pytest.raises(ValueError, match=r"theta must lie in \[0, 1\]"):
        _build(model, core, theta=1.5)
    with pytest.raises(ValueError, match=r"theta must lie in \[0, 1\]"):
        _build(model, core).certify_thetas(_inputs(2), [0.5, -0.1])
    with pytest.raises(ValueError, match="core model must return logits"):
        _build(model, _mlp(1, num_classes=4)).certify_many(_inputs(2), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="alpha"):
        _build(model, core, alpha=1.0)
    info = rsscale.methods.info("aces")
    assert info.sound and "core" in info.summary


def _sweep_rows(n_inputs=40, rs_right=30, extra_right=8, aces_radius=0.45):
    """theta 0.5: the rs-certified inputs at aces_radius plus extra_right core-correct uncertified ones; theta 1: rs."""
    rows = []
    for theta in (0.5, 1.0):
        for i in range(n_inputs):
            certified = i < rs_right
            right = certified or (theta < 1 and i < rs_right + extra_right)
            rows.append({"idx": i, "label": 1, "theta": theta, "prediction": 1 if right else 0, "correct": int(right),
                         "certified": int(certified), "selected": int(certified),
                         "radius": (aces_radius if theta < 1 else 0.5) if certified else 0.0, "p_lower": 0.9,
                         "p_f": 0.9, "p_select": 0.9, "f_prediction": 1, "core_prediction": 1 if i % 2 else 0,
                         "forward_passes": 110, "seconds": 0.01})
    return rows


def _write_sweep(rows, path):
    """A complete sweep file: the CSV and a sidecar recording its completed run (tables read complete results only)."""
    from rsscale.experiments import aces as analysis

    analysis.write_sweep(rows, path)
    path.with_suffix(".json").write_text(json.dumps({"parameters": {"sigma": 0.25},
                                                     "run": {"status": "complete", "rows": len(rows)}}))


def test_table_rows_and_claim(tmp_path):
    from rsscale.experiments import aces as analysis
    from rsscale.experiments import claims

    path = tmp_path / "sigma0.25.csv"
    _write_sweep(_sweep_rows()[::-1], path)  # row order must not matter (pairing by idx)
    core, aces, rs = analysis.aces_rows([path], [0.0, 0.5])
    assert (core["method"], aces["method"], rs["method"]) == ("core", "aces", "rs")
    assert core["clean_accuracy"] == 0.5 and core["ACR"] == 0.0 and core["r=0"] == 0.0
    assert aces["clean_accuracy"] == 38 / 40 and aces["r=0"] == 30 / 40 and aces["r=0.5"] == 0.0
    assert aces["ACR"] == pytest.approx(0.45 * 30 / 40) and rs["ACR"] == pytest.approx(0.5 * 30 / 40)
    assert aces["clean_gain_p"] == pytest.approx(0.5 ** 8) and rs["clean_gain_p"] == 1.0
    assert aces["clean_gain"] == pytest.approx(8 / 40) and 0 < aces["clean_gain_low"] < 8 / 40 < aces["clean_gain_high"]
    assert rs["clean_gain_low"] == rs["clean_gain_high"] == 0.0  # pure RS against itself
    outcome = claims.TESTS["aces_tradeoff"]({"aces": [core, aces, rs]}, {})
    assert outcome.verdict == "supported" and outcome.low == aces["clean_gain_low"] and "40 inputs" in outcome.interval
    _write_sweep(_sweep_rows(aces_radius=0.2), path)
    assert claims.TESTS["aces_tradeoff"]({"aces": analysis.aces_rows([path], [0.0])}, {})[1] == "not supported"
    _write_sweep(_sweep_rows(extra_right=2), path)
    assert claims.TESTS["aces_tradeoff"]({"aces": analysis.aces_rows([path], [0.0])}, {})[1] == "inconclusive"
    _write_sweep([r for r in _sweep_rows() if r["theta"] < 1], path)
    with pytest.raises(ValueError, match="no theta = 1 rows"):
        analysis.aces_rows([path], [0.0])
