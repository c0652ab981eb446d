"""The public API of DESIGN.md, its error messages and determinism."""

import math
import pickle

import pytest
import torch

import rsscale
from oracles import IntervalClassifier
from rsscale import ABSTAIN, Certificate, Gaussian, SmoothedClassifier
from rsscale.models import build_model, load_checkpoint, save_checkpoint


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
    assert cert.prediction == ABSTAIN or 0 <= cert.prediction < 10
    assert cert.radius >= 0 and (cert.radius == 0.0 if cert.prediction == ABSTAIN else True)
    assert 0 <= cert.p_lower <= 1
    assert cert.forward_passes == 1100
    assert cert.seconds > 0
    assert set(cert.radii) == {"l1", "l2", "linf"}
    assert cert.radii["l2"] == cert.radius
    assert math.isclose(cert.radii["linf"], cert.radius / 8.0)  # sqrt(d), d = 64
    label = smooth.predict(x, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0))
    assert label == ABSTAIN or 0 <= label < 10
    certs = smooth.certify_many(torch.rand(3, 1, 8, 8), n0=100, n=1000, alpha=0.001,
                                generator=torch.Generator().manual_seed(0))
    assert len(certs) == 3 and all(isinstance(c, Certificate) for c in certs)
    assert ABSTAIN == -1


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
