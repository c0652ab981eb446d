"""Smooth-Reduce (rsscale.methods.smooth_reduce): the patch operator and its norm, the reduced classifier, the radius
conversion for patch-space noise, the k passes per sample, and soundness on a composition that is an exact oracle."""

import numpy as np
import pytest
import torch

import rsscale
from oracles import IntervalClassifier, allowed_rate, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.smooth_reduce import PatchOperator, PatchReduce

SIGMA = 0.5
TRIALS = 2000
SHAPE = (1, 8, 8)


pytestmark = pytest.mark.usefixtures("one_thread")


class LinearPatches(torch.nn.Module):
    """Two logits ``(v . p, -v . p)`` of a patch p: with mean-of-logits reduction the composition is linear in x."""

    input_shape = SHAPE

    def __init__(self, seed=0):
        super().__init__()
        self.register_buffer("v", torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed)).flatten())

    def forward(self, p):
        s = p.flatten(1) @ self.v
        return torch.stack([s, -s], dim=1)


def _equivalent_oracle(operator):
    """The half-space of the composition: class 0 where ``w . x >= 0``, ``w = (1/k) sum_i A_i^T v``."""
    reduced = PatchReduce(LinearPatches(), operator, "mean", "logits", crop=True)
    x = torch.zeros(1, *SHAPE, requires_grad=True)
    reduced(x)[0, 0].backward()
    return IntervalClassifier(x.grad[0].flatten(), [0.0], [1, 0], num_classes=2)


def test_operator_shapes_and_norms():
    crops = PatchOperator(SHAPE, 5, 2, output_size=(5, 5))  # corners 0 and 3: the centre 2 x 2 pixels are in all 4
    x = torch.arange(64.0).view(1, *SHAPE)
    assert crops(x).shape == (1, 4, 1, 5, 5) and torch.equal(crops(x)[0, 3, 0], x[0, 0, 3:, 3:])
    assert crops.norm_upper() == pytest.approx(2.0) and crops.norm_estimate() == pytest.approx(2.0, rel=1e-6)
    for args in (((1, 8, 8), 6, 2, None), ((3, 32, 32), 24, 3, None), ((1, 8, 8), 4, 3, (6, 6))):
        resized = PatchOperator(*args)
        estimate, upper = resized.norm_estimate(), resized.norm_upper()
        assert estimate <= upper * (1 + 1e-9) and estimate > 0.9 * upper  # Schur's bound is close to the norm
    whole = PatchOperator(SHAPE, 8, 1)
    assert whole.norm_upper() == 1.0 and torch.equal(whole(x), x.unsqueeze(1))
    with pytest.raises(ValueError, match="patch_size must be at most"):
        PatchOperator(SHAPE, 9, 2)


def test_reductions():
    operator = PatchOperator(SHAPE, 6, 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        per_patch = model(operator(x).flatten(0, 1)).view(5, 4, 3)
        assert torch.allclose(PatchReduce(model, operator, "max", "logits", True)(x), per_patch.amax(1))
        assert torch.allclose(PatchReduce(model, operator, "mean", "softmax", True)(x), per_patch.softmax(2).mean(1))
        patches = operator(x)
        assert torch.allclose(PatchReduce(model, operator, "mean", "logits", False)(patches), per_patch.mean(1))


@pytest.mark.parametrize("noise_space", ["input", "patch"])
def test_sound_on_a_linear_composition(noise_space):
    """mean of the patches' linear logits = the half-space w . x >= 0 (both noise spaces: the smoothed class changes
    on that hyperplane); 2,000 inputs at p_A ~ U(0.5, 0.99) of the input-space version, alpha = 0.05.  Input-space
    noise is tight there; patch-space radii are divided by ||A||_2 >= 1."""
    alpha, operator = 0.05, PatchOperator(SHAPE, 6, 2)
    oracle = _equivalent_oracle(operator)
    rng, gen = np.random.default_rng(4), torch.Generator().manual_seed(4)
    ts = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * np.abs(rng.normal(size=TRIALS)).clip(0, 2.3)
    xs = oracle.inputs_at(ts, gen).view(TRIALS, *SHAPE)
    certifier = rsscale.methods.build("smooth_reduce", model=LinearPatches(), num_classes=2, sigma=SIGMA,
                                      patch_size=6, grid=2, reduction="mean", scores="logits",
                                      noise_space=noise_space, n0=20, n=500, alpha=alpha, batch_size=2000,
                                      device="cpu")
    certs = certifier.certify_many(xs, generator=gen)
    t, noise = oracle.projections(xs), Gaussian(SIGMA)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs], oracle.smoothed_class(t, noise),
                          oracle.true_radii(t, noise))
    assert rate <= allowed_rate(alpha, TRIALS)
    assert np.mean([c.prediction != ABSTAIN for c in certs]) > 0.5
    norm = operator.norm_upper() if noise_space == "patch" else 1.0
    for c in certs[:100]:
        assert c.radius == pytest.approx(c.extra["patch_space_radius"] / norm)
        assert c.extra["model_evaluations"] == 4 * 520 and c.extra["evaluations_per_sample"] == 4
        assert c.forward_passes == 520
    if noise_space == "patch":
        assert norm > 1.5


def test_patch_noise_radius_is_divided_by_the_operator_norm():
    """Four identical full-image "patches" (``A = [I; I; I; I]``, ``||A||_2 = 2``) and the mean of linear logits: with
    independent noise on each copy the score is ``v . x + N(0, sigma^2 ||v||^2 / 4)``, so g changes class exactly on
    ``v . x = 0`` and its true input-space radius is ``|v . x| / ||v||``, while Cohen's radius in the stacked patch
    space tends to twice that.  Divided by ||A||_2 = 2 every certificate stays below the true radius and close to it;
    undivided, each would exceed it."""
    operator = PatchOperator(SHAPE, 8, 2)
    assert operator.corners == [(0, 0)] * 4 and operator.norm_upper() == pytest.approx(2.0)
    model = LinearPatches()
    v = model.v.double()
    gen = torch.Generator().manual_seed(6)
    direction = v / v.norm()
    true = torch.tensor([0.05, 0.1, -0.15, 0.2, -0.3, 0.4], dtype=torch.float64)  # signed distances to v . x = 0
    xs = (true[:, None] * direction).float().view(-1, *SHAPE)
    certifier = rsscale.methods.build("smooth_reduce", model=model, num_classes=2, sigma=SIGMA, patch_size=8, grid=2,
                                      reduction="mean", scores="logits", noise_space="patch", n0=100, n=10_000,
                                      alpha=0.001, batch_size=4000, device="cpu")
    certs = certifier.certify_many(xs, generator=gen)
    distance = (xs.flatten(1).double() @ v).abs() / v.norm()
    for cert, r, t in zip(certs, distance.tolist(), true.tolist(), strict=True):
        assert cert.prediction == (0 if t > 0 else 1)
        assert cert.extra["operator_norm"] == pytest.approx(2.0)
        assert 0.75 * r < cert.radius <= r  # the certificate's only slack: p_lower < p_A
        assert cert.extra["patch_space_radius"] > r


def test_bad_parameters_settings_and_registry():
    build = lambda **p: rsscale.methods.build("smooth_reduce", model=LinearPatches(), num_classes=2,  # noqa: E731
                                              sigma=SIGMA, patch_size=6, **p)
    for bad, match in (({"reduction": "min"}, "reduction must be"), ({"scores": "probs"}, "scores must be"),
                       ({"noise_space": "both"}, "noise_space must be"), ({"grid": 0}, "grid must be")):
        with pytest.raises(ValueError, match=match):
            build(**bad)
    with pytest.raises(ValueError, match="input_shape"):
        rsscale.methods.build("smooth_reduce", model=torch.nn.Linear(64, 2), num_classes=2, sigma=SIGMA)
    assert build(n0=10, n=100).settings() == {
        "sigma": SIGMA, "n0": 10, "n": 100, "alpha": 0.001, "patch_size": 6, "grid": 2, "reduction": "mean",
        "scores": "softmax", "noise_space": "input", "output_size": [8, 8]}
    assert rsscale.methods.info("smooth_reduce").sound
