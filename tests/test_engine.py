"""The sampling engine (rsscale.sampling.Sampler): its counts against a plain reference loop, the engine options
(autocast, channels_last, compile) -- same count semantics, recorded in the settings, clear errors -- and the
throughput profile that runs with them."""

import csv
import json

import numpy as np
import pytest
import torch

import rsscale
from rsscale import Gaussian
from rsscale.cli import main
from rsscale.models import build_model
from rsscale.profiling import profile_throughput
from rsscale.sampling import Sampler

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


pytestmark = pytest.mark.usefixtures("one_thread")


def _cnn(channels=3, seed=0):
    torch.manual_seed(seed)
    return build_model("cnn", image_size=8, in_channels=channels, num_classes=10, width=8, hidden=16).eval()


class Separated(torch.nn.Module):
    """Two classes by the sign of the mean pixel minus 1/2, with a large logit scale (rarely near a tie)."""

    def forward(self, x):
        margin = 40.0 * (x.flatten(1).mean(dim=1) - 0.5)
        return torch.stack([-margin, margin], dim=1)


def _reference_counts(model, noise, num_votes, batch_size, inputs, num_samples, generator):
    """The loop spelled out: flat sample index i * num_samples + j, chunks of batch_size, one vote at a time."""
    total = len(inputs) * num_samples
    width = min(batch_size, total)
    buffer = torch.empty((width, *inputs.shape[1:]))
    counts = torch.zeros((len(inputs), num_votes), dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, total, width):
            rows = min(width, total - start)
            draws = noise.sample_(buffer[:rows], generator)
            owners = [(start + r) // num_samples for r in range(rows)]
            batch = torch.stack([draws[r] + inputs[owners[r]] for r in range(rows)])
            for owner, vote in zip(owners, model(batch).argmax(dim=1).tolist(), strict=True):
                counts[owner, vote] += 1
    return counts


@pytest.mark.parametrize("batch_size, num_inputs, num_samples", [(100, 1, 1000), (64, 5, 37), (1000, 7, 100),
                                                                 (3, 2, 10), (50, 3, 49)])
def test_counts_match_the_reference_loop(batch_size, num_inputs, num_samples):
    model, noise = _cnn(), Gaussian(0.5)
    inputs = torch.rand(num_inputs, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    got = Sampler(model, noise, 10, batch_size).counts(inputs, num_samples, torch.Generator().manual_seed(2))
    want = _reference_counts(model, noise, 10, batch_size, inputs, num_samples, torch.Generator().manual_seed(2))
    assert torch.equal(got, want)


@pytest.mark.parametrize("batch_size, num_inputs, num_samples", [(250, 1, 1000), (64, 5, 37)])
def test_channels_last_gives_identical_counts(batch_size, num_inputs, num_samples):
    inputs = torch.rand(num_inputs, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    plain = Sampler(_cnn(), Gaussian(0.5), 10, batch_size)
    fast = Sampler(_cnn(), Gaussian(0.5), 10, batch_size, channels_last=True)
    assert fast.model.net[1].weight.is_contiguous(memory_format=torch.channels_last)
    want = plain.counts(inputs, num_samples, torch.Generator().manual_seed(4))
    assert torch.equal(fast.counts(inputs, num_samples, torch.Generator().manual_seed(4)), want)


def test_bf16_autocast_counts_close_to_float32_on_a_separated_model():
    inputs = torch.tensor([0.45, 0.5, 0.56]).view(3, 1, 1, 1).expand(3, 1, 8, 8).contiguous()
    n = 4000
    exact = Sampler(Separated(), Gaussian(0.25), 2, 1000).counts(inputs, n, torch.Generator().manual_seed(5))
    bf16 = Sampler(Separated(), Gaussian(0.25), 2, 1000, autocast="bf16").counts(
        inputs, n, torch.Generator().manual_seed(5))
    assert bf16.dtype == torch.long and torch.equal(bf16.sum(dim=1), torch.full((3,), n))
    # the same draws: only samples whose margin bf16 cannot resolve may change their vote
    assert (bf16 - exact).abs().max() <= 0.01 * n
    assert exact[0, 0] > 0.9 * n and exact[2, 1] > 0.9 * n and bf16[0, 0] > 0.9 * n and bf16[2, 1] > 0.9 * n


def test_bf16_logits_are_cast_back_to_float32():
    sampler = Sampler(_cnn(), Gaussian(0.5), 10, 10, autocast="bf16")
    with torch.inference_mode():
        assert sampler.forward(torch.rand(4, 3, 8, 8)).dtype == torch.float32


def test_options_are_recorded_in_the_certifier_settings():
    common = dict(model=_cnn(), num_classes=10, sigma=0.5, n0=10, n=20, device="cpu")
    assert {k: rsscale.methods.build("cohen", **common).settings()[k] for k in ("autocast", "channels_last",
                                                                                "compile")} == {
        "autocast": None, "channels_last": False, "compile": False}
    settings = rsscale.methods.build("cohen", **common, autocast="bf16", channels_last=True).settings()
    assert (settings["autocast"], settings["channels_last"], settings["compile"]) == ("bf16", True, False)
    cert = rsscale.methods.build("cohen", **common, autocast="bf16", channels_last=True).certify(
        torch.rand(3, 8, 8), torch.Generator().manual_seed(0))
    assert cert.forward_passes == 30


@pytest.mark.parametrize("options, match", [
    ({"autocast": "fp8"}, "autocast must be None, 'bf16' or 'fp16'"),
    ({"autocast": "fp16"}, "autocast='fp16' needs a CUDA device"),
    ({"channels_last": "yes"}, "channels_last must be true or false"),
    ({"compile": 1}, "compile must be true or false"),
])
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        Sampler(_cnn(), Gaussian(0.5), 10, 10, device="cpu", **options)


def test_channels_last_needs_4d_inputs():
    mlp = build_model("mlp", dim=16, num_classes=2, hidden=[4]).eval()
    sampler = Sampler(mlp, Gaussian(0.5), 2, 10, channels_last=True)
    with pytest.raises(ValueError, match="channels_last needs 4-D inputs"):
        sampler.counts(torch.rand(2, 16), 5)


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(model, **kwargs):
        def run(batch):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    inputs = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    sampler = Sampler(_cnn(), Gaussian(0.5), 10, 16, compile=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no compiler here.*running the model eagerly"):
        got = sampler.counts(inputs, 40, torch.Generator().manual_seed(7))
    assert sampler.settings()["compile"] is False
    assert torch.equal(got, Sampler(_cnn(), Gaussian(0.5), 10, 16).counts(inputs, 40, torch.Generator().manual_seed(7)))


def test_compile_runs_the_compiled_model(monkeypatch):
    calls = []

    def counting_compile(model, **kwargs):
        def run(batch):
            calls.append(len(batch))
            return model(batch)
        return run

    monkeypatch.setattr(torch, "compile", counting_compile)
    sampler = Sampler(_cnn(), Gaussian(0.5), 10, 16, compile=True)
    sampler.counts(torch.rand(1, 3, 8, 8), 40, torch.Generator().manual_seed(8))
    assert calls == [16, 16, 8] and sampler.settings()["compile"] is True


def test_profile_runs_with_the_options_and_records_them():
    profile = profile_throughput(_cnn(), (3, 8, 8), Gaussian(0.25), 10, batch_size=20, batches=2, repeats=2,
                                 warmup=1, channels_last=True, autocast="bf16")
    assert (profile.autocast, profile.channels_last, profile.compile) == ("bf16", True, False)
    assert profile.forward_samples_per_s > 0 and profile.certify_samples_per_s > 0
    assert 0 < profile.ratio < 100 and profile.samples_per_repeat == 40


@cuda
@pytest.mark.parametrize("options", [{}, {"channels_last": True}, {"autocast": "bf16"}, {"autocast": "fp16"}])
def test_cuda_counts_are_reproducible_and_close_to_float32(options):
    inputs = torch.tensor([0.45, 0.5, 0.56]).view(3, 1, 1, 1).expand(3, 3, 8, 8).contiguous()
    n = 10_000
    exact = Sampler(Separated(), Gaussian(0.25), 2, 1000, device="cuda").counts(
        inputs, n, torch.Generator().manual_seed(9))
    sampler = Sampler(Separated(), Gaussian(0.25), 2, 1000, device="cuda", **options)
    first = sampler.counts(inputs, n, torch.Generator().manual_seed(9))
    assert first.device.type == "cpu" and torch.equal(first.sum(dim=1), torch.full((3,), n))
    assert torch.equal(sampler.counts(inputs, n, torch.Generator().manual_seed(9)), first)
    assert (first - exact).abs().max() <= 0.01 * n


@cuda
def test_cuda_channels_last_cnn_matches_and_cohen_certifies():
    inputs = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(10))
    want = Sampler(_cnn(), Gaussian(0.5), 10, 256, device="cuda").counts(inputs, 1000, torch.Generator().manual_seed(1))
    got = Sampler(_cnn(), Gaussian(0.5), 10, 256, device="cuda", channels_last=True).counts(
        inputs, 1000, torch.Generator().manual_seed(1))
    assert (got - want).abs().sum() <= 4  # cuDNN picks other kernels for the other layout: rare flips only
    certifier = rsscale.methods.build("cohen", model=_cnn(), num_classes=10, sigma=0.5, n0=10, n=100, device="cuda",
                                      autocast="fp16", channels_last=True)
    cert = certifier.certify(inputs[0], torch.Generator().manual_seed(0))
    assert cert.forward_passes == 110 and certifier.settings()["autocast"] == "fp16"


@cuda
@pytest.mark.parametrize("name", ["gaussian", "macer"])
def test_cuda_training_and_noisy_evaluation_run_from_a_cpu_seed(name):
    """Training and evaluation take CPU generators (the CLI's seeds) and draw their noise on the device."""
    from rsscale.training import build_objective, evaluate_accuracy, fit

    gen = torch.Generator().manual_seed(3)
    x, y = torch.rand(64, 3, 8, 8, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    model = _cnn()
    fit(model, build_objective(name, sigma=0.25), x, y, epochs=1, batch_size=32, generator=gen, device="cuda")
    accuracy = evaluate_accuracy(model, x, y, 0.25, torch.Generator().manual_seed(4), device="cuda")
    assert accuracy == evaluate_accuracy(model, x, y, 0.25, torch.Generator().manual_seed(4), device="cuda")


def test_cli_profile_sizes_and_certify_record_the_options(tmp_path):
    data = tmp_path / "d.pt"
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(data)]) == 0
    models = '{"cnn-w4": {"arch": "cnn", "params": {"width": 4, "hidden": 8}}, "mlp": {"arch": "mlp"}}'
    assert main(["profile-sizes", "--data", str(data), "--models", models, "--batch-sizes", "20", "--batches", "1",
                 "--repeats", "1", "--engine", '{"channels_last": true}', "--device", "cpu",
                 "--out", str(tmp_path / "sizes.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "sizes.csv").open()))
    assert [(r["model"], r["weights"], r["channels_last"]) for r in rows] == [("cnn-w4", "untrained", "True"),
                                                                              ("mlp", "untrained", "True")]
    assert int(rows[0]["parameters"]) > 0 and float(rows[0]["ratio"]) > 0
    assert (tmp_path / "sizes.md").exists() and (tmp_path / "sizes.json").exists()

    assert main(["train", "--data", str(data), "--sigma", "0.25", "--epochs", "1", "--arch-params",
                 '{"width": 4, "hidden": 8}', "--out", str(tmp_path / "m.pt"), "--quiet", "--device", "cpu"]) == 0
    params = '{"n0": 10, "n": 20, "batch_size": 64, "autocast": "bf16", "channels_last": true}'
    assert main(["certify", "--data", str(data), "--checkpoint", str(tmp_path / "m.pt"), "--params", params,
                 "--max-inputs", "2", "--out", str(tmp_path / "c.csv"), "--quiet", "--device", "cpu"]) == 0
    sidecar = json.loads((tmp_path / "c.json").read_text())["parameters"]
    assert (sidecar["autocast"], sidecar["channels_last"], sidecar["compile"]) == ("bf16", True, False)
    bad = '{"n0": 10, "n": 20, "autocast": "fp16"}'
    assert main(["certify", "--data", str(data), "--checkpoint", str(tmp_path / "m.pt"), "--params", bad,
                 "--max-inputs", "2", "--out", str(tmp_path / "e.csv"), "--quiet", "--device", "cpu"]) == 2


def _shared_reference_counts(model, noise, num_votes, batch_size, inputs, num_samples, generator):
    """The shared-noise loop spelled out: chunks of max(1, batch_size // inputs) rows, each row added to every input."""
    chunk = min(num_samples, max(1, batch_size // len(inputs)))
    counts = torch.zeros((len(inputs), num_votes), dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, num_samples, chunk):
            draws = noise.sample_(torch.empty((min(chunk, num_samples - start), *inputs.shape[1:])), generator)
            for i, x in enumerate(inputs):
                for vote in model(draws + x).argmax(dim=1).tolist():
                    counts[i, vote] += 1
    return counts


@pytest.mark.parametrize("batch_size, num_inputs, num_samples", [(100, 4, 1000), (64, 5, 37), (3, 7, 10),
                                                                 (1000, 10, 100), (50, 3, 1)])
def test_shared_noise_counts_match_their_reference_loop(batch_size, num_inputs, num_samples):
    model, noise = _cnn(), Gaussian(0.5)
    inputs = torch.rand(num_inputs, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    sampler = Sampler(model, noise, 10, batch_size, shared_noise=True)
    got = sampler.counts(inputs, num_samples, torch.Generator().manual_seed(2))
    want = _shared_reference_counts(model, noise, 10, batch_size, inputs, num_samples, torch.Generator().manual_seed(2))
    assert torch.equal(got, want) and sampler.settings()["shared_noise"] is True


def _axis_oracle():
    from rsscale.oracles import IntervalClassifier, unit_vector
    return IntervalClassifier(unit_vector(6, 0), [0.0], [0, 1], num_classes=2)


def test_shared_noise_keeps_each_inputs_counts_binomial_and_ties_the_inputs_of_a_pack():
    """Input i's count of class 1 is Bin(n, Phi(x_i0 / sigma)) with or without sharing; sharing makes the counts of a
    pack dependent (identical for inputs that differ only off the decision axis)."""
    from scipy.stats import norm
    sigma, n, packs = 0.5, 40, 3000
    oracle, noise = _axis_oracle(), Gaussian(sigma)
    inputs = torch.zeros(3, 6)
    inputs[:, 0] = torch.tensor([0.26, 0.26, -0.1])
    inputs[1, 3] = 0.7  # off the axis: the oracle ignores it
    p = norm.cdf(inputs[:, 0].numpy() / sigma)
    gen = torch.Generator().manual_seed(7)
    shared = Sampler(oracle, noise, 2, 1000, shared_noise=True)
    ones = torch.stack([shared.counts(inputs, n, gen)[:, 1] for _ in range(packs)]).double()
    assert torch.equal(ones[:, 0], ones[:, 1])  # the same draws
    assert abs(float(ones[:, 0].mean()) / n - p[0]) < 4 * (p[0] * (1 - p[0]) / (n * packs)) ** 0.5
    assert abs(float(ones[:, 2].mean()) / n - p[2]) < 4 * (p[2] * (1 - p[2]) / (n * packs)) ** 0.5
    for i in (0, 2):
        assert 0.9 < float(ones[:, i].var()) / (n * p[i] * (1 - p[i])) < 1.1  # binomial spread: n fresh rows each
    independent = Sampler(oracle, noise, 2, 1000)
    apart = torch.stack([independent.counts(inputs, n, gen)[:, 1] for _ in range(300)])
    assert not torch.equal(apart[:, 0], apart[:, 1])


def test_cohen_with_shared_noise_violates_at_its_exact_rate():
    """Each certificate keeps its guarantee: on the half-space, input by input, the violation frequency of CERTIFY with
    one draw shared by a pack matches Cohen's exact violation probability (:mod:`rsscale.exact`)."""
    from scipy.stats import norm

    from rsscale.exact import cohen_half_space_violation
    sigma, p, n0, n, alpha, packs = 0.5, 0.6, 10, 50, 0.2, 2000
    oracle = _axis_oracle()
    smooth = rsscale.SmoothedClassifier(oracle, 2, Gaussian(sigma), batch_size=1000, shared_noise=True)
    t = sigma * norm.ppf(p)
    inputs = torch.zeros(4, 6)
    inputs[:, 0] = torch.tensor([t, t, -t, -t])
    inputs[1, 2], inputs[3, 4] = 0.3, -0.2
    gen = torch.Generator().manual_seed(11)
    violations = np.zeros((packs, 4))
    for k in range(packs):
        for i, cert in enumerate(smooth.certify_many(inputs, n0, n, alpha, gen)):
            g = int(inputs[i, 0] > 0)
            violations[k, i] = cert.prediction == 1 - g or (cert.prediction == g and cert.radius > t + 1e-9)
    exact = cohen_half_space_violation(p, n0, n, alpha)
    for pair in ((0, 2), (1, 3)):  # one input of each side per pack: the exact rate averages the two sides
        per_pack = violations[:, pair].mean(axis=1)
        assert abs(per_pack.mean() - exact) < 4 * per_pack.std() / packs**0.5 + 1e-3, (per_pack.mean(), exact)
    assert exact > 0.05  # a setting where violations happen: the check has something to compare


def test_shared_noise_is_refused_for_noise_tied_to_rows():
    from rsscale.methods.dipole import AntitheticGaussian
    with pytest.raises(ValueError, match="shared_noise needs noise whose rows are alike"):
        Sampler(_cnn(), AntitheticGaussian(0.5), 10, 10, shared_noise=True)
    with pytest.raises(ValueError, match="shared_noise must be true or false"):
        Sampler(_cnn(), Gaussian(0.5), 10, 10, shared_noise="on")
