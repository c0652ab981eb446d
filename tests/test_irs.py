"""Incremental RS (rsscale.methods.irs) and model modifications (rsscale.modify): the cached draws are regenerated
exactly, the fallback runs below gamma, soundness against an exact oracle of the modified model, and quantized and
pruned models that work."""

import csv

import numpy as np
import pytest
import torch
from scipy.stats import norm

import rsscale
from oracles import IntervalClassifier, allowed_rate, unit_vector, violation_rate
from rsscale import ABSTAIN, Gaussian
from rsscale.methods.irs import IRSCache, incremental_bound
from rsscale.models import build_model
from rsscale.modify import modify, zero_fraction
from rsscale.sampling import Sampler

SIGMA = 0.5
TRIALS = 2000
DIM = 16


pytestmark = pytest.mark.usefixtures("one_thread")


def _original():
    return IntervalClassifier(unit_vector(DIM, None, 0), [0.0], [0, 1], num_classes=2)


def _modified(tilt=0.02, shift=0.05):
    """The half-space slightly rotated (towards another random direction) and shifted."""
    return IntervalClassifier(unit_vector(DIM, None, 0) + tilt * unit_vector(DIM, None, 7), [shift], [0, 1],
                              num_classes=2)


def _build(model, **params):
    settings = {"n0": 20, "n": 500, "n_incremental": 200, "alpha": 0.01, "batch_size": 128, "device": "cpu",
                **params}
    return rsscale.methods.build("irs", model=model, num_classes=2, sigma=SIGMA, **settings)


class Recorder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.seen, self.input_shape = model, [], model.input_shape

    def forward(self, x):
        self.seen.append(x.clone())
        return self.model(x)


@pytest.mark.parametrize("num_samples, batch_size, limit", [(10, 4, 6), (10, 4, 8), (9, 1000, 3), (7, 7, 7)])
def test_draw_votes_replays_the_counts_stream(num_samples, batch_size, limit):
    """Same seed: the votes' bincount equals Sampler.counts, and a limited replay sees exactly the first rows."""
    recorder = Recorder(_original())
    sampler = Sampler(recorder, Gaussian(SIGMA), 2, batch_size, "cpu")
    x = torch.randn(DIM, generator=torch.Generator().manual_seed(0)) * 0.3
    votes = sampler.draw_votes(x, num_samples, torch.Generator().manual_seed(5))
    full = torch.cat(recorder.seen)
    counts = sampler.counts(x[None], num_samples, torch.Generator().manual_seed(5))[0]
    assert torch.equal(torch.bincount(votes, minlength=2), counts)
    recorder.seen.clear()
    replay = sampler.draw_votes(x, num_samples, torch.Generator().manual_seed(5), limit=limit)
    assert torch.equal(torch.cat(recorder.seen), full[:limit]) and torch.equal(replay, votes[:limit])
    with pytest.raises(ValueError, match="limit must lie"):
        sampler.draw_votes(x, num_samples, limit=num_samples + 1)


def test_incremental_path_replays_the_cached_draws():
    """f_p sees exactly the first n_p noisy inputs f saw in estimation, and f_p = f disagrees nowhere."""
    original, modified = Recorder(_original()), Recorder(_original())
    cache = IRSCache(original, 2, SIGMA, n0=20, n=300, alpha=0.01, batch_size=128, device="cpu")
    xs = _original().inputs_at([2.0, -2.5], torch.Generator().manual_seed(1))
    cache.certify_many(xs, torch.Generator().manual_seed(2))
    seen_f = torch.cat(original.seen)[2 * 20:]  # the selection rows of both inputs come first
    certs = _build(modified, cache=cache, n_incremental=150, gamma=0.9).certify_many(xs, torch.Generator())
    seen_p = torch.cat(modified.seen)
    assert torch.equal(seen_p[:150], seen_f[:150]) and torch.equal(seen_p[150:], seen_f[300:450])
    for cert in certs:
        assert cert.extra["incremental"] == 1 and cert.extra["disagreements"] == 0
        assert cert.forward_passes == 150 and cert.prediction != ABSTAIN
        p, zeta = incremental_bound(cert.extra["p_lower_original"], 0, 150, 0.001)
        assert cert.extra["zeta"] == pytest.approx(zeta) and 0 < zeta < 0.05
        assert cert.radius == pytest.approx(SIGMA * norm.ppf(p))
    assert len(cache.entries) == 2 and len(original.seen) == 1 + 2 * 3  # nothing recertified


def test_fallback_below_gamma():
    """Near the boundary (p_A < gamma) IRS runs plain CERTIFY of f_p with n_p samples; gamma = 1 forces it."""
    xs = _original().inputs_at([0.2, 3.0], torch.Generator().manual_seed(3))
    near, far = _build(_modified(), original=_original()).certify_many(xs, torch.Generator().manual_seed(4))
    assert near.extra["incremental"] == 0 and near.forward_passes == 20 + 200 and np.isnan(near.extra["zeta"])
    assert near.extra["p_lower_original"] < 0.99
    assert far.extra["incremental"] == 1 and far.forward_passes == 200 and far.extra["p_lower_original"] >= 0.99
    forced = _build(_modified(), original=_original(), gamma=1.0).certify(xs[1], torch.Generator().manual_seed(4))
    assert forced.extra["incremental"] == 0 and forced.prediction == 1


def test_sound_against_the_modified_oracle():
    """2,000 inputs at |u_p . x - b| ~ U(0, 4 sigma) around f_p's threshold b = 0.15; alpha, alpha_zeta and the
    fallback each at 0.05 / 3.  On f_p's far side P(f = 1) exceeds P(f_p = 1) by about P(f != f_p): certifying with
    f's bound alone (no zeta) violates far more often than allowed, so the oracle can tell."""
    level, original, modified = 0.05, _original(), _modified(shift=0.15)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    xs = modified.inputs_at(rng.choice([-1.0, 1.0], TRIALS) * rng.uniform(0, 4 * SIGMA, TRIALS) + 0.15, gen)
    certifier = _build(modified, original=original, alpha=level / 3, alpha_zeta=level / 3, gamma=0.9)
    certs = certifier.certify_many(xs, generator=gen)
    t = modified.projections(xs)
    noise = Gaussian(SIGMA)
    true_class, true_radius = modified.smoothed_class(t, noise), modified.true_radii(t, noise)
    predictions, radii = [c.prediction for c in certs], [c.radius for c in certs]
    assert violation_rate(predictions, radii, true_class, true_radius) <= allowed_rate(level, TRIALS)
    incremental = np.array([c.extra["incremental"] for c in certs], dtype=bool)
    assert 0.4 < incremental.mean() < 0.8
    assert np.mean([p != ABSTAIN for p in predictions]) > 0.8
    zetas = np.array([c.extra["zeta"] for c in certs])[incremental]
    assert np.all(zetas > 0) and np.median(zetas) < 0.05
    without_zeta = [SIGMA * norm.ppf(c.extra["p_lower_original"]) if c.extra["incremental"] else c.radius
                    for c in certs]
    assert violation_rate(predictions, without_zeta, true_class, true_radius) > allowed_rate(level, TRIALS)


def _cnn():
    torch.manual_seed(0)
    return build_model("cnn", image_size=8, num_classes=10, width=8, hidden=16).eval()


def test_modifications_give_working_modules():
    model = _cnn()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    reference = model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantized = modify(model, "int8")
    linear = [m for m in quantized.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(linear) == 2 and quantized.input_shape == (1, 8, 8)
    assert torch.allclose(quantized(x), reference, atol=0.05 * reference.abs().max().item())
    pruned = modify(model, "prune0.3")
    assert zero_fraction(pruned) == pytest.approx(0.3, abs=0.01) and zero_fraction(model) < 0.01
    assert not any(name.endswith("_orig") for name in pruned.state_dict())  # made permanent
    assert pruned(x).shape == (32, 10) and not torch.equal(pruned(x), reference)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    assert zero_fraction(modify(model, "prune0.5")) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="unknown model modification"):
        modify(model, "fp16")
    with pytest.raises(ValueError, match="pruning fraction"):
        modify(model, "prune1.5")


def test_bad_parameters():
    original, modified = _original(), _modified()
    with pytest.raises(ValueError, match="exactly one of cache"):
        _build(modified)
    cache = IRSCache(original, 2, SIGMA, n0=20, n=100, device="cpu")
    with pytest.raises(ValueError, match="exactly one of cache"):
        _build(modified, cache=cache, original=original)
    with pytest.raises(ValueError, match="must not exceed the cached n"):
        _build(modified, cache=cache, n_incremental=101)
    with pytest.raises(ValueError, match="gamma must lie"):
        _build(modified, original=original, gamma=0.3)
    with pytest.raises(ValueError, match="alpha must lie"):
        _build(modified, original=original, alpha_zeta=0.0)
    with pytest.raises(ValueError, match="differs from the cache"):
        rsscale.methods.build("irs", model=modified, num_classes=2, sigma=0.25, cache=cache)
    assert rsscale.methods.info("irs").sound


def test_incremental_command_writes_one_row_per_modification(tmp_path, capsys):
    from rsscale.cli import main

    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(tmp_path / "d.pt")]) == 0
    assert main(["train", "--data", str(tmp_path / "d.pt"), "--sigma", "0.25", "--epochs", "1", "--arch-params",
                 '{"width": 4, "hidden": 8}', "--out", str(tmp_path / "m.pt"), "--quiet", "--device", "cpu"]) == 0
    args = ["incremental", "--data", str(tmp_path / "d.pt"), "--checkpoint", str(tmp_path / "m.pt"), "--n0", "10",
            "--n", "200", "--n-incremental", "50", "--alpha", "0.01", "--alpha-zeta", "0.01", "--gamma", "0.9",
            "--max-inputs", "4", "--radii", "0", "0.25", "--out", str(tmp_path / "inc")]
    assert main([*args, "--modifications", "int8", "prune0.4"]) == 0
    assert "faster than from scratch" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "inc.csv")))
    assert [r["modification"] for r in rows] == ["int8", "prune0.4"]
    for row in rows:
        assert float(row["speedup"]) == pytest.approx(float(row["seconds_scratch"]) / float(row["seconds_irs"]))
        assert float(row["passes_scratch"]) == 210 and 50 <= float(row["passes_irs"]) <= 60
        assert 0 <= float(row["same_decision"]) <= 1 and "irs_r=0.25" in row
    assert (tmp_path / "inc.md").exists() and (tmp_path / "inc.tex").exists() and (tmp_path / "inc.json").exists()
    assert main([*args, "--modifications", "fp16"]) == 2
    assert "unknown model modification 'fp16'" in capsys.readouterr().err


def test_claim_verdict_from_the_incremental_table():
    from rsscale.experiments.incremental import speedup_test

    def rows(*pairs):
        return {"incremental": [{"modification": f"m{i}", "speedup": s, "same_decision": a, "zeta_mean": 0.01,
                                 "ACR_irs": 0.5, "ACR_scratch": 0.6, "inputs": 200.0, "n": 1e4, "n_incremental": 1e3}
                                for i, (s, a) in enumerate(pairs)]}

    params = {"min_speedup": 2.0, "min_agreement": 0.9}
    assert speedup_test(rows((5.0, 1.0), (3.0, 0.95)), params)[1] == "supported"  # 190/200: exact bound > 0.9
    assert speedup_test(rows((5.0, 1.0), (1.5, 0.95)), params)[1] == "inconclusive"
    assert speedup_test(rows((1.2, 1.0), (0.9, 1.0)), params)[1] == "not supported"
    assert "m0: 5.0x faster" in speedup_test(rows((5.0, 1.0)), params)[0]
