"""The violation search (rsscale.violations): it finds a violated certificate for input-dependent sigma (QCRS, DDRS)
on the ball oracle, none for Cohen (constant sigma) or ISRS on the same inputs, and g under diagonal noise agrees with
the closed form when theta is isotropic."""

import numpy as np
import pytest
import torch

from rsscale.oracles import BallClassifier
from rsscale.violations import SoftBall, run_violations, smoothed_classes, supported

BASE = {"n0": 20, "n": 1000, "alpha": 0.001, "batch_size": 2000}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_finds_violations_for_input_dependent_sigma_and_none_for_cohen():
    specs = {"cohen": BASE, "isrs": {**BASE, "rate": 0.1}, "qcrs": {**BASE, "n_search": 100, "steps": 4},
             "ddrs+memory": {**BASE, "n_opt": 16, "steps": 15, "lr": 0.05, "memory": True}}
    rows = {r["method"]: r for r in run_violations(specs, dim=10, ball_radius=2.5, sigma=0.5, inputs=12, far=4.0,
                                                   random_points=2)}
    for sound in ("cohen", "isrs"):
        assert rows[sound]["certified"] > 6 and rows[sound]["points"] > 0 and rows[sound]["violations"] == 0
    for unsound in ("qcrs", "ddrs+memory"):
        row = rows[unsound]
        assert row["violations"] > 0 and not row["sound"]
        assert 0 < row["first_offset"] < row["first_radius"]
        assert row["first_class_point"] != row["first_class"]
        assert row["first_sigma_point"] != pytest.approx(row["first_sigma_input"])


def test_diagonal_noise_matches_the_closed_form_and_soft_ball_keeps_the_decision():
    oracle = BallClassifier(torch.zeros(5), radius=2.0)
    points = oracle.inputs_at([0.5, 1.0, 3.0, 4.0], torch.Generator().manual_seed(0))
    sigmas = np.array([0.5, 0.5, 0.5, 0.5])
    exact = smoothed_classes(oracle, points, sigmas, np.random.default_rng(0))
    mc = smoothed_classes(oracle, points, np.repeat(sigmas[:, None], 5, 1), np.random.default_rng(0))
    assert exact.tolist() == [0, 0, 1, 1] and mc.tolist() == exact.tolist()
    xs = torch.randn(500, 5, generator=torch.Generator().manual_seed(1)) * 1.5
    assert torch.equal(SoftBall(oracle)(xs).argmax(1), oracle(xs).argmax(1))


def test_methods_declare_the_noise_they_pick():
    assert {"cohen", "ddrs", "qcrs", "ancer", "isrs"} <= set(supported())
    assert "dsrs" not in supported()


def test_bad_settings():
    with pytest.raises(ValueError, match="no violation search"):
        run_violations({"dsrs": BASE}, dim=4, ball_radius=1.0, sigma=0.5, inputs=2, far=2.0)
    with pytest.raises(ValueError, match="inputs >= 1"):
        run_violations({"cohen": BASE}, dim=4, ball_radius=1.0, sigma=0.5, inputs=0, far=2.0)


def test_a_killed_search_resumes_with_the_methods_it_had_not_finished(tmp_path, monkeypatch):
    """Rows are written as each method's search finishes; a restart searches only the others and writes the table of
    an uninterrupted run (bools, counts and NaNs read back as written); rows of another search are refused."""
    from rsscale import violations
    from rsscale.experiments import violations as experiment

    specs = {"cohen": BASE, "qcrs": {**BASE, "n_search": 50, "steps": 3}, "isrs": {**BASE, "rate": 0.1}}
    settings = {"dim": 6, "ball_radius": 1.5, "sigma": 0.5, "inputs": 4, "far": 3.0, "random_points": 1,
                "mc_samples": 500}
    whole = experiment.run(tmp_path / "whole", specs, seed=2, **settings)
    lines = (tmp_path / "whole.csv").read_text().splitlines(keepends=True)
    (tmp_path / "resumed.csv").write_text("".join(lines[:2]).replace(",False,", ",0,").replace(",True,", ",1,")
                                          + lines[2][:15])  # the writer's first row, then half a row
    searched = []
    search = violations.search
    monkeypatch.setattr(violations, "search", lambda label, *a, **k: searched.append(label) or search(label, *a, **k))
    resumed = experiment.run(tmp_path / "resumed", specs, seed=2, **settings)
    assert searched == ["qcrs", "isrs"]
    for old, new in zip(whole, resumed, strict=True):
        for column in violations.COLUMNS[:-1]:  # all but seconds: same value, same type (bool, int, float, nan)
            a, b = old[column], new[column]
            assert type(a) is type(b) and (a == b or (isinstance(a, float) and np.isnan(a) and np.isnan(b))), column
    for name in ("whole", "resumed"):
        assert (tmp_path / f"{name}.md").is_file()
    cut = [line.rsplit(",", 1)[0] for line in (tmp_path / "resumed.csv").read_text().splitlines()]
    assert cut == [line.rsplit(",", 1)[0] for line in (tmp_path / "whole.csv").read_text().splitlines()]
    with pytest.raises(ValueError, match="another search"):
        experiment.run(tmp_path / "resumed", specs, seed=2, **{**settings, "inputs": 5})


@pytest.mark.parametrize("method, params", [("ddrs", {"n_opt": 16, "steps": 15, "lr": 0.05}),
                                            ("ancer", {"n_opt": 8, "steps": 3, "iso_steps": 3})])
def test_first_sigma_is_the_one_the_certificate_was_issued_with(method, params):
    """The table's first_sigma_input is the noise of the violated certificate itself (its recorded sigma, or theta's
    geometric mean), not a fresh optimisation at its input (which draws other noise and lands elsewhere)."""
    import rsscale
    from rsscale.violations import search

    oracle = BallClassifier(torch.zeros(10), radius=2.5)
    xs = oracle.inputs_at(np.random.default_rng(0).uniform(0.0, 4.0, 12), torch.Generator().manual_seed(0))
    certifier = rsscale.methods.build(method, model=SoftBall(oracle), num_classes=2, sigma=0.5, device="cpu",
                                      **BASE, **params)
    row = search(method, certifier, oracle, xs, torch.Generator().manual_seed(1), random_points=2)
    assert row["violations"] > 0
    gen = torch.Generator().manual_seed(1)
    torch.randint(0, 2**62, (1,), generator=gen)  # the search's first draw: its Monte Carlo seed
    cert = certifier.certify_many(xs, generator=gen)[row["first_input"]]
    issued = cert.extra.get("sigma_chosen", cert.extra.get("theta_geomean"))
    assert row["first_sigma_input"] == issued
