"""Denoised smoothing (rsscale.training.denoiser, rsscale.methods.denoised): the DnCNN, the three objectives with
a frozen classifier, the composed checkpoint, and soundness of CERTIFY on f(D(x)) on an exact oracle."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.denoised import denoised_oracle
from rsscale.models import DnCNN, build_model, load_checkpoint, save_checkpoint
from rsscale.training.denoiser import DenoiserObjective, compose, train_denoiser

SIGMA = 0.5
TRIALS = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


def _classifier(seed=0):
    torch.manual_seed(seed)
    return build_model("cnn", image_size=4, width=4, hidden=8, num_classes=3)


def _signals(count=256, seed=0):
    """Denoisable 4x4 images: one of three fixed patterns at a random brightness in [0.5, 1]."""
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.zeros(3, 1, 4, 4)
    patterns[0, :, :2], patterns[1, :, :, :2], patterns[2, :, 1:3, 1:3] = 1, 1, 1
    which = torch.randint(0, 3, (count,), generator=gen)
    return patterns[which] * (0.5 + 0.5 * torch.rand(count, 1, 1, 1, generator=gen)), which


def test_dncnn_is_residual_and_checks_its_parameters():
    denoiser = DnCNN(1, depth=3, width=8).eval()
    torch.nn.init.zeros_(denoiser.net[-1].weight)
    torch.nn.init.zeros_(denoiser.net[-1].bias)
    x = torch.rand(5, 1, 4, 4)
    assert torch.equal(denoiser(x), x)  # a zero last layer: D(x) = x - 0
    for bad in (dict(depth=1), dict(depth=2.5), dict(width=0)):
        with pytest.raises(ValueError, match="DnCNN"):
            DnCNN(1, **bad)
    with pytest.raises(ValueError, match="image classifier"):
        build_model("denoised", classifier_arch="mlp", classifier_config={"dim": 16})


def test_objective_rejects_bad_parameters():
    f = _classifier()
    with pytest.raises(ValueError, match="unknown denoiser objective"):
        DenoiserObjective(f, SIGMA, "l1")
    with pytest.raises(ValueError, match="sigma"):
        DenoiserObjective(f, 0.0, "mse")
    with pytest.raises(ValueError, match="mse_epochs applies only"):
        DenoiserObjective(f, SIGMA, "stability", mse_epochs=2)


def test_mse_training_reduces_the_reconstruction_error():
    x, _ = _signals()
    model = compose(_classifier(), depth=3, width=8)
    objective = DenoiserObjective(model.classifier, SIGMA, "mse")
    gen = torch.Generator().manual_seed(1)

    def error():
        noisy = x + SIGMA * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            return float(((model.denoiser(noisy) - x) ** 2).mean()), float(((noisy - x) ** 2).mean())

    before, raw = error()
    report = train_denoiser(model, objective, x, epochs=15, batch_size=32, lr=0.01, generator=gen, progress=False)
    after, _ = error()
    assert after < 0.5 * min(before, raw)  # well below both the untrained denoiser's and the noise's own error
    assert report.forward_passes == report.backward_passes == 15 * len(x)  # one denoiser pass each way


def test_stability_gradient_reaches_only_the_denoiser():
    x, _ = _signals(64)
    model = compose(_classifier(), depth=3, width=8)
    frozen = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    objective = DenoiserObjective(model.classifier, SIGMA, "stability")
    loss, forward, backward = objective(model.denoiser.train(), x, None, torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.classifier.parameters())
    grads = [p.grad for p in model.denoiser.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert (forward, backward) == (3 * len(x), 2 * len(x))
    report = train_denoiser(model, objective, x, epochs=3, batch_size=16, generator=torch.Generator().manual_seed(1),
                            progress=False)
    assert all(torch.equal(v, frozen[k]) for k, v in model.classifier.state_dict().items())
    assert report.forward_passes == 3 * 3 * len(x) and report.backward_passes == 2 * 3 * len(x)


def test_mse_then_stability_switches_at_mse_epochs():
    x, _ = _signals(32)
    model = compose(_classifier(), depth=3, width=8)
    objective = DenoiserObjective(model.classifier, SIGMA, "mse_then_stability", mse_epochs=2)
    report = train_denoiser(model, objective, x, epochs=5, batch_size=32, generator=torch.Generator().manual_seed(0),
                            progress=False)
    assert report.forward_passes == (2 * 1 + 3 * 3) * len(x)  # 2 MSE epochs, then 3 stability epochs
    assert set(objective.describe()["passes_per_example"]) == {"mse", "stability"}
    objective.start_epoch(0, 10)
    assert objective.stage == "mse"
    default = DenoiserObjective(model.classifier, SIGMA, "mse_then_stability")
    default.start_epoch(5, 10)
    assert default.stage == "stability"  # default: half the epochs MSE


def test_composed_checkpoint_round_trips_and_certifies(tmp_path):
    x, _ = _signals(4)
    torch.manual_seed(3)
    model = compose(_classifier(), depth=3, width=8)
    path = tmp_path / "denoised.pt"
    save_checkpoint(model, path, sigma=SIGMA)
    loaded, meta = load_checkpoint(path)
    assert meta["arch"] == "denoised" and torch.equal(loaded(x), model(x))
    certifier = rsscale.methods.build("denoised", model=loaded, num_classes=3, sigma=SIGMA, n0=10, n=50,
                                      batch_size=64, device="cpu")
    certs = certifier.certify_many(x, generator=torch.Generator().manual_seed(0))
    cohen = rsscale.methods.build("cohen", model=loaded, num_classes=3, sigma=SIGMA, n0=10, n=50, batch_size=64,
                                  device="cpu").certify_many(x, generator=torch.Generator().manual_seed(0))
    for c, ref in zip(certs, cohen, strict=True):
        assert (c.prediction, c.radius, c.forward_passes) == (ref.prediction, ref.radius, ref.forward_passes)
        assert c.extra["denoiser_passes"] == 60 and 0 < c.extra["denoiser_seconds"] <= c.seconds
    with pytest.raises(ValueError, match="needs a model with a denoiser"):
        rsscale.methods.build("denoised", model=_classifier(), num_classes=3, sigma=SIGMA)


def test_sound_on_a_half_space_behind_a_denoiser():
    """2,000 inputs at p_A ~ U(0.5, 0.99), alpha = 0.05, n = 500: a random DnCNN whose correction is orthogonal to u
    changes x but not u . x, so g is the oracle's and the violation rate stays below alpha."""
    alpha, dim = 0.05, 16
    oracle = IntervalClassifier(unit_vector(dim, None, 3), [0.0], [0, 1], num_classes=2)
    model = denoised_oracle(oracle)
    rng, gen = np.random.default_rng(1), torch.Generator().manual_seed(1)
    ts = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * norm.ppf(rng.uniform(0.5, 0.99, TRIALS))
    xs = oracle.inputs_at(ts, gen)
    with torch.no_grad():
        moved = model.denoiser(xs[:100]) - xs[:100]
    assert float(moved.norm(dim=1).min()) > 0.05 and float((moved @ oracle.u).abs().max()) < 1e-5
    certs = rsscale.methods.build("denoised", model=model, num_classes=2, sigma=SIGMA, n0=20, n=500, alpha=alpha,
                                  batch_size=4096, device="cpu").certify_many(xs, generator=gen)
    t = oracle.projections(xs)
    noise = Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    assert np.mean([c.prediction != ABSTAIN for c in certs]) > 0.5
