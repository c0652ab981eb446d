"""The public API of DESIGN.md, its error messages and determinism."""

import math
import pickle

import numpy as np
import pytest
import torch
from scipy.special import ndtri

import rsscale
from oracles import IntervalClassifier
from rsscale import ABSTAIN, Certificate, Gaussian, SmoothedClassifier
from rsscale.bounds import clopper_pearson_lower
from rsscale.methods.irs import IRSCache
from rsscale.models import build_model, load_checkpoint, save_checkpoint
from rsscale.smooth import abstains


class Always(torch.nn.Module):
    """A base classifier that says ``label`` on every input: g says it too, with p_A = 1 exactly."""

    input_shape = (1, 8, 8)

    def __init__(self, label: int = 3):
        super().__init__()
        self.label = label

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((len(x),), self.label), 10).float()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("cnn", image_size=8, width=8)


@pytest.fixture(scope="module")
def smooth(model):
    return SmoothedClassifier(model, num_classes=10, noise=Gaussian(sigma=0.25), batch_size=256, device="cpu")


def test_design_example_runs(smooth):
    x = torch.rand(1, 8, 8)
    cert = smooth.certify(x, n0=100, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0))
    assert isinstance(cert, Certificate)
    # the record is CERTIFY's: p_lower is the Clopper-Pearson bound of the count, the radius sigma Phi^-1(p_lower)
    assert cert.p_lower == pytest.approx(float(clopper_pearson_lower(cert.extra["count"], 1000, 0.001)))
    if cert.p_lower > 0.5:
        assert 0 <= cert.prediction < 10 and cert.radius == pytest.approx(0.25 * ndtri(cert.p_lower))
    else:
        assert cert.prediction == ABSTAIN and cert.radius == 0.0
    assert cert.forward_passes == 1100
    assert cert.seconds > 0
    assert set(cert.radii) == {"l1", "l2", "linf"}
    assert cert.radii["l2"] == cert.radius
    assert math.isclose(cert.radii["linf"], cert.radius / 8.0)  # sqrt(d), d = 64
    # a base classifier whose smoothed class and p_A are known: every number of the record is determined
    always = SmoothedClassifier(Always(3), num_classes=10, noise=Gaussian(sigma=0.25), batch_size=256, device="cpu")
    cert = always.certify(x, n0=100, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0))
    p_lower = 0.001 ** (1 / 1000)  # Clopper-Pearson with all 1,000 samples agreeing
    assert cert.prediction == 3 and cert.extra["count"] == 1000
    assert cert.p_lower == pytest.approx(p_lower) and cert.radius == pytest.approx(0.25 * ndtri(p_lower))
    label = always.predict(x, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0))
    assert label == 3
    label = smooth.predict(x, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0))
    assert label in (ABSTAIN, *range(10))
    certs = smooth.certify_many(torch.rand(3, 1, 8, 8), n0=100, n=1000, alpha=0.001,
                                generator=torch.Generator().manual_seed(0))
    assert len(certs) == 3 and all(isinstance(c, Certificate) for c in certs)
    assert ABSTAIN == -1


def test_one_abstain_rule_abstains_unless_p_lower_exceeds_one_half(monkeypatch):
    """The rule of :func:`rsscale.smooth.abstains`, and the certificates of Cohen, IRS (the original's and the
    incremental), DSRS and ISRS (the per-input-sigma families' shared CERTIFY) at p_lower = 1/2 exactly (the bound
    replaced by one that returns 1/2): each abstains with radius 0."""
    assert abstains(np.array([0.0, 0.4999, 0.5, 0.5000001, 1.0])).tolist() == [True, True, True, False, False]
    x, gen = torch.rand(1, 8, 8), torch.Generator().manual_seed(0)
    half = lambda k, n, alpha: np.full(np.shape(k), 0.5)  # noqa: E731
    monkeypatch.setattr("rsscale.smooth.clopper_pearson_lower", half)
    monkeypatch.setattr("rsscale.methods.irs.clopper_pearson_lower", half)
    monkeypatch.setattr("rsscale.methods.common.clopper_pearson_lower", half)
    monkeypatch.setattr("rsscale.methods.dsrs.clopper_pearson_interval",
                        lambda k, n, alpha: (np.full(np.shape(k), 0.5), np.full(np.shape(k), 0.6)))
    certifiers = [rsscale.methods.build(name, model=Always(3), num_classes=10, sigma=0.25, n0=10, n=100, **params)
                  for name, params in (("cohen", {}), ("irs", {"original": Always(3)}), ("dsrs", {}), ("isrs", {}))]
    certify = [lambda xs, c=c: c.certify_many(xs, generator=gen) for c in certifiers]
    certify.append(lambda xs: IRSCache(Always(3), 10, 0.25, n0=10, n=100).certify_many(xs, gen))  # IRS's original
    for run in certify:
        [cert] = run(x[None])
        assert (cert.prediction, cert.radius, cert.p_lower) == (ABSTAIN, 0.0, 0.5)


def test_methods_registry(model):
    assert "cohen" in rsscale.methods.available()
    certifier = rsscale.methods.build("cohen", model=model, num_classes=10, sigma=0.5, n0=10, n=100)
    cert = certifier.certify(torch.rand(1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert cert.forward_passes == 110
    assert rsscale.methods.info("cohen").sound
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        rsscale.methods.build("nope", model=model, num_classes=10, sigma=0.5)


def test_same_seed_same_result_different_seed_different(smooth):
    xs = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def run(seed):
        certs = smooth.certify_many(xs, 50, 500, 0.01, generator=torch.Generator().manual_seed(seed))
        return [(c.prediction, c.p_lower, c.extra["count"]) for c in certs]

    assert run(0) == run(0)
    assert run(0) != run(1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: s.certify(torch.full((1, 8, 8), float("nan")), 10, 100, 0.01), "NaN"),
        (lambda s: s.certify(torch.rand(2, 1, 8, 8), 10, 100, 0.01), r"shape \(1, 8, 8\)"),
        (lambda s: s.certify(torch.rand(1, 8, 8), 10, 100, 1.5), "alpha must lie strictly between 0 and 1, got 1.5"),
        (lambda s: s.certify(torch.rand(1, 8, 8), 10, 100, 0.0), "alpha"),
        (lambda s: s.certify(torch.rand(1, 8, 8), 0, 100, 0.01), "n0 must be an integer >= 1, got 0"),
        (lambda s: s.certify(torch.rand(1, 8, 8), 10, 0, 0.01), "n must be an integer >= 1, got 0"),
        (lambda s: s.predict(torch.rand(1, 8, 8), -5, 0.01), "n must be an integer >= 1, got -5"),
        (lambda s: s.certify(torch.rand(1, 8, 8), 200, 100, 0.01), r"n0 \(selection samples, 200\) must not exceed n"),
        (lambda s: s.certify(torch.zeros(1, 8, 8, dtype=torch.long), 10, 100, 0.01), "floating-point"),
        (lambda s: s.certify_many(torch.rand(3, 1, 9, 9), 10, 100, 0.01), r"each input must have shape"),
    ],
)
def test_bad_input_raises_clear_error(smooth, call, message):
    with pytest.raises(ValueError, match=message):
        call(smooth)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan")])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        Gaussian(sigma)


def test_bad_batch_size(model):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        SmoothedClassifier(model, 10, Gaussian(0.25), batch_size=0)


def test_sampler_counts_packed_inputs_and_bounds_memory():
    """Each input's samples are counted for that input, across batch boundaries, batch never exceeding batch_size."""

    class WhichInput(torch.nn.Module):
        seen = []

        def forward(self, x):  # the clean input i is the constant image 10 * i; noise is tiny
            self.seen.append(x.shape[0])
            cls = torch.round(x.mean(dim=(1, 2, 3)) / 10).long()
            return torch.nn.functional.one_hot(cls, 7).float()

    model = WhichInput()
    smooth = SmoothedClassifier(model, 7, Gaussian(1e-3), batch_size=64, device="cpu")
    xs = torch.stack([torch.full((1, 4, 4), 10.0 * i) for i in range(7)])
    counts = smooth.sampler.counts(xs, 37, torch.Generator().manual_seed(0))
    assert torch.equal(counts, 37 * torch.eye(7, dtype=torch.long))
    assert max(model.seen) <= 64 and sum(model.seen) == 7 * 37


def test_checkpoint_roundtrip_and_refuses_pickled_objects(tmp_path, model):
    path = tmp_path / "m.pt"
    sha = save_checkpoint(model, path, sigma=0.25, note="x")
    loaded, meta = load_checkpoint(path)
    assert meta["sha256"] == sha and meta["sigma"] == 0.25 and meta["note"] == "x"
    assert (tmp_path / "m.pt.sha256").read_text().startswith(sha)
    x = torch.rand(5, 1, 8, 8)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model.eval()(x))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "rsscale-checkpoint-v1", "payload": Certificate(0, 0.0, 0.0, 0, 0.0)}, evil)
    with pytest.raises(ValueError, match="refusing .*evil.pt.*pickled"):
        load_checkpoint(evil)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(object()))
    with pytest.raises(ValueError, match="refusing"):
        load_checkpoint(raw)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_oracle_model_has_input_shape():
    oracle = IntervalClassifier(torch.ones(5), [0.0], [0, 1], 2)
    smooth = SmoothedClassifier(oracle, 2, Gaussian(0.5))
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        smooth.certify(torch.rand(6), 10, 100, 0.01)
