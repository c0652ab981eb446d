"""The paired-bootstrap columns of the inference-cost and denoised tables: passes saved and ACR loss against
Cohen at the largest n, ACR over the bare and the Gaussian-trained classifier."""

from pathlib import Path

import numpy as np
import pytest

from rsscale.experiments import denoised
from rsscale.experiments.denoised import denoised_rows
from rsscale.experiments.inference_cost import cost_rows
from rsscale.io import Run


def run(idx, radius, correct, passes, **parameters) -> Run:
    idx = np.asarray(idx)
    columns = {"idx": idx.astype(float), "radius": np.asarray(radius, float), "correct": np.asarray(correct, float),
               "forward_passes": np.broadcast_to(np.asarray(passes, float), idx.shape).copy(),
               "seconds": np.full(idx.shape, 0.01)}
    return Run(Path(f"{parameters['method']}.csv"), columns, {"parameters": parameters, "sound": True})


def test_the_cost_table_pairs_each_run_with_the_reference_by_input():
    rng = np.random.default_rng(0)
    radius, correct = rng.uniform(0.2, 1.0, 80), rng.random(80) < 0.9
    reference = run(range(80), radius, correct, 100100, method="cohen", n=100000)
    small = run(range(80), radius * 0.8, correct, 1100, method="cohen", n=1000)
    order = rng.permutation(80)  # the same inputs listed in another order
    iss = run(order, radius[order] * rng.uniform(0.9, 1.0, 80), correct[order], rng.integers(5000, 40000, 80),
              method="iss_sound")
    adaptive = run(range(80), radius, correct, 500, method="adaptive", strategy="betting", r_target=0.25)
    rows = {r["label"]: r for r in cost_rows([small, iss, reference, adaptive])}
    ref, cohen, mine = rows["cohen n=100000"], rows["cohen n=1000"], rows["iss_sound"]
    assert (ref["ACR_loss"], ref["ACR_loss_low"], ref["ACR_loss_high"]) == (0.0, 0.0, 0.0)
    assert cohen["ACR_loss"] == pytest.approx(0.2) and cohen["ACR_loss_low"] == pytest.approx(0.2)  # a fixed ratio
    assert cohen["passes_saved_low"] == cohen["passes_saved_x"] == cohen["passes_saved_high"] == pytest.approx(91.0)
    assert mine["ACR_loss"] == pytest.approx(1 - mine["ACR"] / ref["ACR"])
    assert 0.0 < mine["ACR_loss_low"] < mine["ACR_loss"] < mine["ACR_loss_high"] < 0.1  # paired: within 0 .. 10 %
    assert mine["passes_saved_low"] < mine["passes_saved_x"] < mine["passes_saved_high"]
    assert np.isnan(rows["betting r=0.25"]["ACR_loss"]) and rows["betting r=0.25"]["passes_saved_low"] == 200.2


def fake_describe(run: Run) -> dict:
    """The row identity ``denoised._describe`` reads from checkpoint sidecars, here from the run's parameters."""
    model = run.parameters["model"]
    return {"model": model, "denoiser": run.parameters.get("denoiser", "none"),
            "classifier_sigma": 0.25 if model == "gaussian-trained" else 0.0, "classifier_train_seconds": 1.0,
            "denoiser_train_seconds": 0.0}


def test_the_denoised_table_gives_each_row_its_acr_ratios_on_the_shared_inputs(monkeypatch):
    monkeypatch.setattr(denoised, "_describe", fake_describe)
    rng = np.random.default_rng(1)
    radius, correct = rng.uniform(0.1, 0.8, 60), rng.random(60) < 0.9
    bare = run(range(60), radius * 0.5, correct, 110, method="cohen", sigma=0.25, model="noise-free")
    order = rng.permutation(60)
    behind = run(order, (radius * rng.uniform(0.7, 0.9, 60))[order], correct[order], 110, method="denoised",
                 sigma=0.25, model="denoised", denoiser="stability")
    gaussian = run(range(70), np.r_[radius, np.ones(10)], np.r_[correct, np.ones(10, bool)], 110, method="cohen",
                   sigma=0.25, model="gaussian-trained")  # ten more inputs: left out of every row
    rows = {r["model"]: r for r in denoised_rows([gaussian, behind, bare], radii=[0.0])}
    assert all(r["inputs"] == 60 for r in rows.values())
    assert rows["gaussian-trained"]["ACR_vs_gaussian"] == rows["noise-free"]["ACR_vs_bare"] == 1.0
    assert rows["gaussian-trained"]["ACR_vs_bare"] == pytest.approx(2.0)
    mine = rows["denoised"]
    assert mine["ACR_vs_bare"] == pytest.approx(mine["ACR"] / rows["noise-free"]["ACR"])
    assert mine["ACR_vs_gaussian"] == pytest.approx(mine["ACR"] / rows["gaussian-trained"]["ACR"])
    assert 0.7 < mine["ACR_vs_gaussian_low"] < mine["ACR_vs_gaussian"] < mine["ACR_vs_gaussian_high"] < 0.9
    assert 1.4 < mine["ACR_vs_bare_low"] < mine["ACR_vs_bare_high"] < 1.8


def test_a_sigma_without_a_gaussian_trained_row_has_no_ratio_to_it(monkeypatch):
    monkeypatch.setattr(denoised, "_describe", fake_describe)
    bare = run(range(5), np.full(5, 0.5), np.ones(5), 110, method="cohen", sigma=0.5, model="noise-free")
    (row,) = denoised_rows([bare], radii=[0.0])
    assert row["ACR_vs_bare"] == 1.0 and np.isnan(row["ACR_vs_gaussian_low"])
