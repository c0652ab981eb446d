"""Projected randomized smoothing (rsscale.methods.projected): the PCA fit, the equivalence of full-dimensional
smoothing of base(P(x)) with smoothing in the subspace, exact-oracle soundness of the cylinder's l1 / l2 / l_inf
radii, checkpoints and the CLI."""

import csv
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, violation_rate
from rsscale import ABSTAIN, Gaussian, SmoothedClassifier
from rsscale.cli import main
from rsscale.data import Dataset
from rsscale.methods.projected import fit_projection, projection_norms
from rsscale.models import build_model, load_checkpoint, save_checkpoint

SIGMA = 0.5
TRIALS = 2000
DIM = 20
BLOCKS = [(0, 2), (2, 6), (6, 12)]  # the planted subspace: one direction per block; coordinates 12..19 outside


def planted_data(num=400, noise=0.0, seed=0):
    """Inputs ``1/2 + c B`` (+ noise) with B ``[3, DIM]`` orthonormal, row j a random-sign block, variances 9, 4, 1."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.zeros(3, DIM, dtype=torch.float64)
    for j, (lo, hi) in enumerate(BLOCKS):
        basis[j, lo:hi] = (2.0 * torch.randint(0, 2, (hi - lo,), generator=gen) - 1) / math.sqrt(hi - lo)
    coefficients = torch.randn(num, 3, generator=gen, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0])
    x = 0.5 + coefficients @ basis + noise * torch.randn(num, DIM, generator=gen, dtype=torch.float64)
    return x.float(), basis


def projected_around(base, x_train, rank=3):
    """A "projected" model fitted on ``x_train`` whose base network is replaced by ``base``."""
    model = build_model("projected", base_arch="mlp", base_config={"dim": DIM}, rank=rank, dim=DIM)
    model.set_projection(*fit_projection(x_train, rank))
    model.base = base
    return model


def test_fit_projection_recovers_a_planted_subspace_with_orthonormal_rows():
    x, basis = planted_data(noise=0.01)
    U, mu = fit_projection(x, 3)
    assert U.shape == (3, DIM) and U.dtype == torch.float32 and mu.shape == (DIM,)
    assert torch.allclose(U @ U.T, torch.eye(3), atol=1e-6)
    assert torch.allclose(mu, x.mean(dim=0), atol=1e-6)
    U64 = U.double()
    assert (U64.T @ U64 - basis.T @ basis).abs().max() < 0.01  # the same subspace
    assert ((U64 * basis).sum(dim=1).abs() > 0.99).all()  # in order of variance
    # deterministic signs: each row's largest-magnitude coordinate is positive, whatever the order of the data
    assert (U.gather(1, U.abs().argmax(dim=1, keepdim=True)) > 0).all()
    shuffled, _ = fit_projection(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))], 3)
    assert torch.allclose(shuffled, U, atol=1e-5)
    for rank in (0, DIM + 1):
        with pytest.raises(ValueError, match="rank must lie in"):
            fit_projection(x, rank)


def test_operator_norms_are_valid_and_tight():
    """kappa_1 is the largest column norm; kappa_inf lies between the brute-force maximum over the cube's vertices and
    sqrt(pi/2) times it (Shor's relaxation), below sqrt(d) and the sum of column norms, and is exact for a line."""
    d = 12
    vertices = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=torch.float64)
    for rank in (1, 2, 3, 5):
        gen = torch.Generator().manual_seed(rank)
        U = torch.linalg.qr(torch.randn(d, rank, generator=gen, dtype=torch.float64)).Q.T
        kappa_1, kappa_inf = projection_norms(U)
        assert kappa_1 == pytest.approx(float(U.norm(dim=0).max()), rel=1e-12)
        truth = float((vertices @ U.T).norm(dim=1).max())
        bounds = (math.sqrt(d), float(U.norm(dim=0).sum()), math.sqrt(math.pi / 2) * truth)
        assert truth * (1 - 1e-9) <= kappa_inf <= min(bounds) * (1 + 1e-9)
        if rank == 1:
            assert kappa_inf == pytest.approx(float(U.abs().sum()), rel=1e-6)
    # the planted blocks: sqrt(12) (the blocks' support) where the norm conversion gives sqrt(20)
    kappa_1, kappa_inf = projection_norms(fit_projection(planted_data()[0], 3)[0])
    assert kappa_1 == pytest.approx(1 / math.sqrt(2), rel=1e-5)
    assert kappa_inf == pytest.approx(math.sqrt(12), rel=1e-5)


def test_full_dimensional_noise_through_the_projection_is_subspace_noise():
    """The base sees U^T (z + U e) + mu, z = U (x - mu), and U e ~ N(0, sigma^2 I_p) for e ~ N(0, sigma^2 I_d)."""
    seen = []

    class Record(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(len(x), 2)

    x_train, _ = planted_data()
    model = projected_around(Record(), x_train)
    U, mu = model.U.double(), model.mu.double()
    x = x_train[0] + 0.3  # off the subspace
    z = U @ (x.double() - mu)
    gen = torch.Generator().manual_seed(0)

    e = SIGMA * torch.randn(DIM, generator=gen)  # exact algebra on one draw
    model((x + e)[None])
    assert torch.allclose(seen[0][0].double(), U.T @ (z + U @ e.double()) + mu, atol=1e-5)

    seen.clear()  # moments of the sampler's d-dimensional draws after the projection
    n = 40_000
    SmoothedClassifier(model, 2, Gaussian(SIGMA), batch_size=10_000, device="cpu").sampler.counts(x[None], n, gen)
    inputs = torch.cat(seen).double() - mu
    assert inputs.shape == (n, DIM)
    assert (inputs - (inputs @ U.T) @ U).abs().max() < 1e-5  # on the affine subspace
    eps = inputs @ U.T - z
    assert eps.mean(dim=0).abs().max() < 4 * SIGMA / math.sqrt(n)
    assert (eps.T @ eps / n - SIGMA**2 * torch.eye(3)).abs().max() < 4 * SIGMA**2 * math.sqrt(2 / n)


@pytest.mark.parametrize("spread", [False, True], ids=["concentrated", "spread"])
def test_cylinder_radii_never_exceed_the_true_radii_beyond_alpha(spread):
    """A half-space u . x > 0 with unit u in the subspace: P(f(x + e) = 1) = Phi(t / sigma), t = u . x, and g flips
    first, over the l_q ball, along the delta maximizing u . delta: the true l_q radius is |t| / ||u||_q* (q* dual).

    u concentrated on the smallest block makes l1 tight (||u||_inf = kappa_1), u spread evenly over the blocks makes
    l_inf tight (||u||_1 = kappa_inf); l2 is tight for both.
    """
    x_train, basis = planted_data()
    weights = torch.tensor([math.sqrt(hi - lo) for lo, hi in BLOCKS], dtype=torch.float64)
    u = (weights @ basis / weights.norm()) if spread else basis[0]
    oracle = IntervalClassifier(u.float(), [0.0], [0, 1], num_classes=2)
    alpha, n = 0.05, 200
    certifier = rsscale.methods.build("projected", model=projected_around(oracle, x_train), num_classes=2,
                                      sigma=SIGMA, n0=20, n=n, alpha=alpha, batch_size=4096, device="cpu")
    gen = torch.Generator().manual_seed(1)
    xs = torch.stack([oracle.input_at(t, gen) for t in np.random.default_rng(0).uniform(-1.5, 1.5, TRIALS)])
    certs = certifier.certify_many(xs, generator=gen)
    ts = np.array([oracle.projection(x) for x in xs])
    true_classes = (ts > 0).astype(int)
    u_dual = {"l1": float(u.abs().max()), "l2": 1.0, "linf": float(u.abs().sum())}
    predictions = [c.prediction for c in certs]
    kappa = {"l1": certifier.kappa_1, "l2": 1.0, "linf": certifier.kappa_inf}
    for q in ("l1", "l2", "linf"):
        true_radii = np.abs(ts) / u_dual[q]
        radii = [c.radii[q] for c in certs]
        assert violation_rate(predictions, radii, true_classes, true_radii) <= allowed_rate(alpha, TRIALS), q
        if q in ("l2", "linf" if spread else "l1"):  # the point estimate in place of the bound is caught
            naive = [SIGMA * norm.ppf(min(c.extra["count"] / n, 1 - 1e-9)) / kappa[q] if c.prediction != ABSTAIN
                     else 0.0 for c in certs]
            assert violation_rate(predictions, naive, true_classes, true_radii) > allowed_rate(alpha, TRIALS), q
    certified = [c for c in certs if c.prediction != ABSTAIN]
    assert len(certified) > TRIALS / 2
    # beyond Cohen's norm conversion of the l2 ball (r in l1, r / sqrt(d) in l_inf)
    assert all(c.radii["l1"] > 1.4 * c.radius and c.radii["linf"] > 1.2 * c.radius / math.sqrt(DIM) for c in certified)
    assert all(c.extra["subspace_radius"] == c.radius and c.extra["rank"] == 3 for c in certs)


def test_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    config = {"base_arch": "cnn", "base_config": {"image_size": 8, "width": 4, "hidden": 8}, "rank": 5, "dim": 64}
    model = build_model("projected", **config)
    x = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model.set_projection(*fit_projection(x, 5))
    save_checkpoint(model, tmp_path / "p.pt", sigma=0.25)
    loaded, meta = load_checkpoint(tmp_path / "p.pt")
    assert meta["arch"] == "projected" and meta["config"] == config and loaded.input_shape == (1, 8, 8)
    assert torch.equal(loaded.U, model.U) and torch.equal(loaded.mu, model.mu)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model.eval()(x))
        off = torch.randn(64, generator=torch.Generator().manual_seed(2))
        off = (off - model.U.T @ (model.U @ off)).view(1, 8, 8)  # orthogonal to the subspace: invisible
        assert torch.allclose(loaded(x + off), loaded(x), atol=1e-4)
    with pytest.raises(ValueError, match=r"expected U of shape \(5, 64\)"):
        model.set_projection(torch.zeros(4, 64), torch.zeros(64))
    with pytest.raises(ValueError, match="dim = 63 does not match"):
        build_model("projected", **{**config, "dim": 63})


def test_cli_trains_a_projected_model_and_certifies_it(tmp_path, capsys):
    data, ckpt, out = tmp_path / "d.pt", tmp_path / "m.pt", tmp_path / "c.csv"
    assert main(["data", "--dataset", "digits", "--out", str(data)]) == 0
    train = ["train", "--data", str(data), "--arch", "projected", "--sigma", "0.25", "--epochs", "2", "--out",
             str(ckpt), "--quiet", "--device", "cpu"]
    assert main([*train, "--arch-params", '{"rank": 10, "base_config": {"width": 4, "hidden": 8}}']) == 0
    model, meta = load_checkpoint(ckpt)
    dataset = Dataset.load(data)
    assert model.arch == "projected" and meta["config"]["base_arch"] == "cnn"
    assert {"image_size": 8, "in_channels": 1, "num_classes": 10}.items() <= meta["config"]["base_config"].items()
    U, mu = fit_projection(dataset.x_train, 10)  # label-free: fitted on the whole training split
    assert torch.equal(model.U, U) and torch.equal(model.mu, mu)  # loaded before training, kept by it

    assert main(["certify", "--data", str(data), "--checkpoint", str(ckpt), "--method", "projected", "--params",
                 '{"n0": 20, "n": 200}', "--skip", "60", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and {"kappa_1", "kappa_inf", "rank", "subspace_radius"} <= set(rows[0])
    assert all(float(r["radius_l1"]) >= float(r["radius"]) >= float(r["radius_linf"]) for r in rows)

    assert main([*train, "--arch-params", '{"base_arch": "mlp"}']) == 2
    assert "rank" in capsys.readouterr().err


def test_certifier_rejects_a_model_that_is_not_projected():
    assert "projected" in rsscale.methods.available() and rsscale.methods.info("projected").sound
    with pytest.raises(ValueError, match="projected RS needs a model of architecture 'projected'.*got 'cnn'"):
        rsscale.methods.build("projected", model=build_model("cnn", image_size=8), num_classes=10, sigma=0.25)
    with pytest.raises(ValueError, match="got 'IntervalClassifier'"):
        rsscale.methods.build("projected", model=IntervalClassifier(torch.ones(4), [0.0], [0, 1], 2), num_classes=2,
                              sigma=0.25)
