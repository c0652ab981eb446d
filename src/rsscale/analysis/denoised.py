"""Denoised smoothing against no denoiser and against noise training (Salman et al., NeurIPS 2020, Table 1's
comparison): certified accuracy, ACR, clean accuracy of the smoothed classifier, training wall-clock.

Rows per sigma: the classifier trained without noise certified bare (``none``),
behind each denoiser (its objective), and a Gaussian-trained classifier
(``gaussian-trained``, Cohen et al. 2019).  Every row of a sigma is computed on
the test inputs all of that sigma's runs certified (so the main study's run
over the whole test set can stand for the Gaussian-trained model).  Training
wall-clock comes from the checkpoints' sidecars: the classifier's own, plus the
denoiser's for composed models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsscale.analysis.results import Run, average_certified_radius, certified_accuracy


def _sidecar(checkpoint: str) -> dict:
    path = Path(checkpoint).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"no training sidecar {path} for checkpoint {checkpoint}")
    return json.loads(path.read_text())


def _describe(run: Run) -> dict:
    """Which row the run is, and what training its model cost."""
    model = _sidecar(run.parameters["checkpoint"])
    if run.parameters["method"] == "denoised":
        classifier = model["classifier"]
        return {"model": "denoised", "denoiser": model["objective"]["objective"],
                "classifier_sigma": classifier["sigma"], "classifier_train_seconds": classifier["train_seconds"],
                "denoiser_train_seconds": float(model["training"]["seconds"])}
    sigma = float(model["sigma"])
    return {"model": "gaussian-trained" if sigma > 0 else "noise-free", "denoiser": "none", "classifier_sigma": sigma,
            "classifier_train_seconds": float(model["training"]["seconds"]), "denoiser_train_seconds": 0.0}


def denoised_rows(runs: Sequence[Run], radii: Sequence[float]) -> list[dict]:
    """One row per run (see the module docstring), restricted to the inputs shared by the runs of its sigma."""
    by_sigma: dict[float, list[Run]] = {}
    for run in runs:
        by_sigma.setdefault(float(run.parameters["sigma"]), []).append(run)
    order = {"noise-free": 0, "denoised": 1, "gaussian-trained": 2}
    rows = []
    for sigma, group in sorted(by_sigma.items()):
        shared = set.intersection(*(set(run.columns["idx"].astype(int).tolist()) for run in group))
        for run in group:
            keep = np.isin(run.columns["idx"].astype(int), sorted(shared))
            radius, correct = run.radius()[keep], run.correct[keep]
            row = {"sigma": sigma, **_describe(run), "inputs": int(keep.sum())}
            row.update({f"r={r:g}": certified_accuracy(radius, correct, r) for r in radii})
            row["ACR"] = average_certified_radius(radius, correct)
            row["clean_accuracy"] = float(correct.mean()) if len(correct) else float("nan")
            row["train_seconds"] = row["classifier_train_seconds"] + row["denoiser_train_seconds"]
            row["certify_seconds_per_input"] = float(np.median(run.columns["seconds"][keep]))
            denoiser = run.columns.get("denoiser_seconds")
            row["denoiser_seconds_per_input"] = float(np.median(denoiser[keep])) if denoiser is not None else 0.0
            rows.append(row)
    return sorted(rows, key=lambda r: (r["sigma"], order[r["model"]], r["denoiser"]))
