"""ANCER (rsscale.methods.ancer), its anisotropic noise (rsscale.noise.DiagonalGaussian) and the memory-based fix
shared with DDRS (rsscale.memory): per-coordinate noise through the sampler, theta growing along directions the
model ignores, the per-input certificate on a half-space, and mutually consistent certificates with memory."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import BallClassifier, IntervalClassifier, Recorder, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.certificate import Certificate
from rsscale.memory import Memory
from rsscale.noise import DiagonalGaussian
from rsscale.sampling import Sampler
from rsscale.violations import SoftBall

SIGMA = 0.25
TRIALS = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


class SoftBand(torch.nn.Module):
    """Logits ((a^2 - x_0^2) / w, 0): class 0 on the band |x_0| < a; the other coordinates are ignored."""

    def __init__(self, dim=8, a=0.6, w=0.05):
        super().__init__()
        self.a, self.w, self.input_shape = a, w, (dim,)

    def forward(self, x):
        return torch.stack([(self.a**2 - x[:, 0] ** 2) / self.w, torch.zeros_like(x[:, 0])], dim=1)


def _build(model, **params):
    return rsscale.methods.build("ancer", model=model, num_classes=2, sigma=SIGMA, batch_size=1000, device="cpu",
                                 **params)


def test_each_input_gets_its_own_diagonal_noise():
    recorder = Recorder()
    thetas = torch.tensor([[0.1, 1.0, 2.0], [3.0, 0.5, 0.2]])
    noise = DiagonalGaussian(torch.ones(3)).start(thetas, 3000)
    Sampler(recorder, noise, 2, 777, "cpu").counts(torch.zeros(2, 3), 3000, torch.Generator().manual_seed(0))
    rows = torch.cat(recorder.seen).view(2, 3000, 3)
    assert np.allclose(rows.std(dim=1).numpy(), thetas.numpy(), rtol=0.05)
    assert DiagonalGaussian(torch.tensor([0.5, 2.0])).radius(0.9) == pytest.approx(0.5 * norm.ppf(0.9))
    with pytest.raises(ValueError, match="theta"):
        DiagonalGaussian(torch.tensor([0.5, 0.0]))


def test_theta_grows_along_ignored_coordinates():
    """Only x_0 matters, so the volume term raises theta on the other coordinates while the gap keeps theta_0 near
    sigma: the proxy radius (geometric mean) exceeds the l2 radius (min theta)."""
    certs = _build(SoftBand(), n0=20, n=500, n_opt=16, steps=20, lr=0.1).certify_many(
        torch.zeros(2, 8), generator=torch.Generator().manual_seed(0))
    for cert in certs:
        assert cert.prediction == 0 and cert.extra["theta_min"] >= 0.25 * SIGMA  # DDRS's floor: low * sigma
        assert cert.extra["theta_max"] > 2 * cert.extra["theta_min"]
        assert cert.extra["proxy_radius"] > 1.5 * cert.radius > 0
        assert cert.radius == pytest.approx(cert.extra["theta_min"] * norm.ppf(cert.p_lower), rel=1e-5)
        assert cert.forward_passes == (100 + 20) * 16 + 520  # DDRS's 100 default steps, then ANCER's 20


def test_per_input_certificate_holds_on_a_half_space():
    """g_theta on a half-space is sign(u . x) for every theta, and min(theta) Phi^-1(p_A) <= |u . x| whenever p_A is a
    valid bound: 2,000 inputs at alpha = 0.05, violation rate below alpha plus 3 binomial errors."""
    alpha = 0.05
    oracle = IntervalClassifier(unit_vector(16, None, 0), [0.0], [0, 1], num_classes=2)
    rng, gen = np.random.default_rng(5), torch.Generator().manual_seed(5)
    ts = rng.choice([-1.0, 1.0], TRIALS) * SIGMA * norm.ppf(rng.uniform(0.5, 0.99, TRIALS))
    xs = oracle.inputs_at(ts, gen)
    certs = _build(oracle, n0=20, n=500, alpha=alpha, n_opt=4, steps=3, iso_steps=3).certify_many(xs, generator=gen)
    t = oracle.projections(xs)
    rate = violation_rate([c.prediction for c in certs], [c.radius for c in certs],
                          oracle.smoothed_class(t, Gaussian(SIGMA)), np.abs(t))
    assert rate <= allowed_rate(alpha, TRIALS)
    assert max(c.extra["theta_max"] for c in certs) > SIGMA


def _cert(cls, radius, **extra):
    return Certificate(cls, radius, 0.9, 1, 0.0, radii={"l2": radius, "linf": radius / 2}, extra=extra)


def test_memory_shrinks_balls_exactly_and_ellipsoids_soundly():
    memory = Memory()
    xs = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.5, 0.0], [0.0, 2.0]])
    certs = memory.apply(xs, [_cert(0, 2.0), _cert(1, 2.0), _cert(1, 1.0), _cert(0, 5.0)])
    assert certs[0].radius == 2.0 and certs[1].radius == pytest.approx(1.0)  # 3 - 2: touching, not overlapping
    assert certs[1].radii["linf"] == pytest.approx(0.5) and certs[1].extra["memory_factor"] == pytest.approx(0.5)
    assert certs[2].prediction == ABSTAIN and certs[2].radius == 0.0  # inside the class-0 ball
    assert certs[3].radius == pytest.approx(np.hypot(3.0, 2.0) - 1.0)  # same class as ball 0: only ball 1 counts
    assert len(memory) == 3
    # ellipsoids: random pairs; the shrunk scale must leave the two ellipsoids disjoint (checked on dense samples)
    rng = np.random.default_rng(0)
    checked = shrunk = 0
    for _ in range(20):
        memory = Memory()
        centers = torch.as_tensor(rng.normal(size=(2, 2)) * 2)
        axes = torch.as_tensor(rng.uniform(0.2, 2.0, size=(2, 2)))
        certs = [_cert(0, 0.0, scale=1.0), _cert(1, 0.0, scale=5.0)]
        memory.apply(centers, certs, axes=axes, scale_key="scale")
        inside = float((((centers[1] - centers[0]) / axes[0]) ** 2).sum()) <= 1.0
        if certs[1].prediction == ABSTAIN:  # only when its centre lies in the first ellipsoid
            assert inside and certs[1].extra["scale"] == 0.0
            continue
        checked += 1
        shrunk += certs[1].extra["scale"] < 5.0
        angles = rng.uniform(0, 2 * np.pi, 20000)
        radial = np.sqrt(rng.uniform(0, 1, 20000))[:, None]
        disc = radial * np.stack([np.cos(angles), np.sin(angles)], 1)
        new = centers[1].numpy() + certs[1].extra["scale"] * axes[1].numpy() * disc
        inside_old = (((new - centers[0].numpy()) / axes[0].numpy()) ** 2).sum(1) <= 1.0
        assert not inside_old.any()
    assert checked >= 15 and shrunk >= 10  # the disjointness check ran, mostly on ellipsoids the memory shrank


def test_memory_makes_ddrs_certificates_mutually_consistent():
    """On the (differentiable) ball oracle, certificates of different classes never overlap with memory=True; without
    it they do."""
    oracle = BallClassifier(torch.zeros(10), radius=2.5)
    gen = torch.Generator().manual_seed(3)
    xs = oracle.inputs_at(np.random.default_rng(3).uniform(0.0, 4.0, 40), gen)
    for method, params in [("ddrs", {"n_opt": 16, "steps": 15, "lr": 0.05})]:
        overlaps = {}
        for memory in (False, True):
            certifier = rsscale.methods.build(method, model=SoftBall(oracle), num_classes=2, sigma=0.5, n0=20, n=300,
                                              alpha=0.05, device="cpu", memory=memory, **params)
            certs = certifier.certify_many(xs, generator=torch.Generator().manual_seed(4))
            pred, rad = np.array([c.prediction for c in certs]), np.array([c.radius for c in certs])
            dist = torch.cdist(xs.double(), xs.double()).numpy()
            clash = (pred[:, None] != pred[None]) & (pred[:, None] >= 0) & (pred[None] >= 0)
            overlaps[memory] = int((clash & (rad[:, None] + rad[None] > dist + 1e-9)).sum())
        assert overlaps[False] > 0 and overlaps[True] == 0, (method, overlaps)


def test_registry_and_bad_parameters():
    info = rsscale.methods.info("ancer")
    assert not info.sound and "Sukenik" in info.unsound_reason
    for params, message in [({"lr": 0.0}, "lr must be"), ({"kappa": -1.0}, "kappa must be"),
                            ({"steps": 1.5}, "steps must be"), ({"memory": "yes"}, "memory must be")]:
        with pytest.raises(ValueError, match=message):
            _build(SoftBand(), **params)


def test_starts_from_and_is_floored_at_each_inputs_ddrs_sigma():
    """The authors' pipeline: the isotropic DDRS sigma s(x) of each input is ANCER's starting point and floor, so
    every optimised theta coordinate is >= s(x) (and the floor binds on x_0, whose gap shrinks as theta_0 grows)."""
    xs = torch.tensor([[0.0] * 8, [0.3] + [0.0] * 7, [-0.45] + [0.2] * 7])
    iso = dict(n_opt=16, iso_steps=10, iso_lr=0.05)
    ddrs = rsscale.methods.build("ddrs", model=SoftBand(), num_classes=2, sigma=SIGMA, n_opt=16, steps=10, lr=0.05,
                                 device="cpu")
    s = torch.as_tensor(ddrs.noise_at(xs, torch.Generator().manual_seed(0)), dtype=torch.float32)
    assert float((s - SIGMA).abs().min()) > 1e-3  # DDRS moved every sigma: starting at SIGMA would be caught
    ancer = _build(SoftBand(), steps=20, lr=0.1, **iso)
    start = ancer.isotropic_thetas(xs, torch.Generator().manual_seed(0))
    assert torch.equal(start, s[:, None].expand(xs.shape))
    thetas = ancer.optimise_thetas(xs, torch.Generator().manual_seed(0))
    assert bool((thetas >= start).all()) and bool((thetas[:, 1:] > start[:, 1:]).all())
    assert torch.equal(thetas[:, 0], s)
    certs = ancer.certify_many(xs, generator=torch.Generator().manual_seed(1))
    assert all(cert.extra["search_passes"] == (10 + 20) * 16 for cert in certs)
