"""SWEEN (rsscale.methods.sween): the weighted ensemble, its early exit never changing the prediction, the weight
fit, member evaluations counted, and soundness on an ensemble whose weighted vote is an exact oracle."""

import numpy as np
import pytest
import torch

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.sween import WeightedEnsemble, fit_weights

SIGMA = 0.5
TRIALS = 2000
THRESHOLDS = (-0.2, 0.2, 0.0)
#: any two of these weights outweigh the third: the weighted vote of u . x >= a over THRESHOLDS is u . x >= 0
LOGITS = np.log([0.4, 0.35, 0.25]).tolist()


pytestmark = pytest.mark.usefixtures("one_thread")


def _members(dim=16):
    u = unit_vector(dim, None, 0)
    return [IntervalClassifier(u, [a], [0, 1], num_classes=2) for a in THRESHOLDS]


def _linear(seed, dim=8, classes=5, scale=1.0):
    layer = torch.nn.Linear(dim, classes)
    with torch.no_grad():
        layer.weight.copy_(scale * torch.randn(classes, dim, generator=torch.Generator().manual_seed(seed)))
        layer.bias.zero_()
    return layer


@pytest.mark.parametrize("logits", [[0.0] * 6, [3.0, 2.0, 1.0, 0.0, -1.0, -2.0], [5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                                    [0.1, 0.0, -0.1, 0.2, 0.05, -0.3]])
def test_early_exit_never_changes_the_prediction(logits):
    members = [_linear(seed, scale=3.0) for seed in range(6)]
    x = torch.randn(20_000, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        adaptive = WeightedEnsemble(members, logits)
        adaptive.recording = True
        early = adaptive(x)
        full = WeightedEnsemble(members, logits, adaptive=False)(x)
        a = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0)
        direct = sum(a[j] * torch.softmax(m(x).double(), 1) for j, m in enumerate(members))
    assert torch.allclose(full, direct)
    assert torch.equal(early.argmax(1), full.argmax(1))
    (cost,) = adaptive.log
    assert cost.min() >= 1 and cost.max() <= 6
    if logits[0] == 5.0:  # one dominant member decides alone wherever its lead clears the rest's weight
        assert float(cost.float().mean()) < 2.0
    assert int((cost < 6).sum()) > 0


def test_fit_weights_prefers_the_accurate_member():
    truth = _linear(0, classes=3, scale=2.0)
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = truth(x).argmax(1)
    members = [_linear(5, classes=3), truth, _linear(6, classes=3)]
    w = fit_weights(members, x, y, sigma=0.25, copies=4, steps=200, generator=torch.Generator().manual_seed(0))
    assert int(np.argmax(w)) == 1 and np.exp(w[1]) / np.exp(w).sum() > 0.8
    again = fit_weights(members, x, y, sigma=0.25, copies=4, steps=200, generator=torch.Generator().manual_seed(0))
    assert w == again
    with pytest.raises(ValueError, match="explicit torch.Generator"):
        fit_weights(members, x, y, sigma=0.25)


def test_sound_on_a_weighted_majority_and_evaluations_are_counted():
    """The weighted vote of three half-spaces is the half-space u . x >= 0: 2,000 inputs at p_A ~ U(0.5, 0.99),
    alpha = 0.05; the third member runs only where the first two disagree."""
    alpha, members = 0.05, _members()
    oracle = IntervalClassifier(unit_vector(16, None, 0), [0.0], [0, 1], num_classes=2)
    rng, gen = np.random.default_rng(3), torch.Generator().manual_seed(3)
    ts = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * np.abs(rng.normal(0, 1, TRIALS)).clip(0, 2.3)
    xs = oracle.inputs_at(ts, gen)
    certifier = rsscale.methods.build("sween", model=members, num_classes=2, sigma=SIGMA, weights=LOGITS, n0=20,
                                      n=500, alpha=alpha, batch_size=1000, device="cpu")
    certs = certifier.certify_many(xs, generator=gen)
    t, noise = oracle.projections(xs), Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    assert np.mean([c.prediction != ABSTAIN for c in certs]) > 0.5
    per_sample = np.array([c.extra["evaluations_per_sample"] for c in certs])
    assert np.all((per_sample >= 2) & (per_sample <= 3)) and per_sample.mean() < 2.9
    assert all(c.extra["model_evaluations"] == round(c.extra["evaluations_per_sample"] * 520) for c in certs)
    assert all(c.forward_passes == 520 for c in certs)


def test_bad_parameters_settings_and_registry():
    members = _members()
    with pytest.raises(ValueError, match="3 finite logits"):
        rsscale.methods.build("sween", model=members, num_classes=2, sigma=SIGMA, weights=[0.0, 1.0])
    with pytest.raises(ValueError, match="non-empty list"):
        rsscale.methods.build("sween", model=[], num_classes=2, sigma=SIGMA)
    certifier = rsscale.methods.build("sween", model=members, num_classes=2, sigma=SIGMA, weights=LOGITS, n0=10,
                                      n=100, alpha=0.01, adaptive=False)
    assert certifier.settings() == {"sigma": SIGMA, "n0": 10, "n": 100, "alpha": 0.01, "members": 3,
                                    "weights": LOGITS, "adaptive": False}
    cert = certifier.certify(torch.zeros(16), generator=torch.Generator().manual_seed(0))
    assert cert.extra["model_evaluations"] == 3 * 110
    assert rsscale.methods.info("sween").sound


def test_weights_are_fitted_on_examples_no_member_trained_on(tmp_path, monkeypatch):
    """Two members trained from different seeds and SWEEN's weight fit through the training runs: the fit sees only
    held-out training examples, none of which any member trained on."""
    from rsscale.data import load_digits
    from rsscale.training import runs

    data = tmp_path / "d.pt"
    load_digits().save(data)
    seen = {"train": [], "fit": []}
    real_fit, real_fit_weights = runs.fit, runs.fit_weights
    monkeypatch.setattr(runs, "fit", lambda model, loss, x, y, **kw: seen["train"].append(x) or
                        real_fit(model, loss, x, y, **kw))
    monkeypatch.setattr(runs, "fit_weights", lambda models, x, y, *args, **kw: seen["fit"].append(x) or
                        real_fit_weights(models, x, y, *args, **kw))
    members = [str(tmp_path / f"m{seed}.pt") for seed in (0, 1)]
    for seed, out in zip((0, 1), members, strict=True):
        runs.train_classifier(str(data), out, sigma=0.25, arch="mlp", epochs=1, seed=seed, progress=False)
    record = runs.fit_sween_weights(str(data), members, tmp_path / "w.json", max_examples=10_000, copies=1, steps=2)
    (fitted,) = seen["fit"]
    assert record["examples"] == len(fitted) > 100
    fitted_rows = {tuple(row.tolist()) for row in fitted.flatten(1)}
    for trained_on in seen["train"]:
        assert len(trained_on) + len(fitted) == len(load_digits().x_train)
        assert not fitted_rows & {tuple(row.tolist()) for row in trained_on.flatten(1)}
