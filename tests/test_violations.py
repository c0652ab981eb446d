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
