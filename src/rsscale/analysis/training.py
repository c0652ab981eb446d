"""RS-aware training against Gaussian augmentation: certified accuracy, ACR and what the training cost.

Each certification run is joined with its model's training sidecar (the
``.json`` beside the checkpoint, written by ``rsscale train``): the objective,
the base model's clean and noisy test accuracy, and the training wall-clock
and passes.  Costs are reported relative to Gaussian augmentation at the same
sigma (Cohen et al. 2019) trained by the same loop, so that the ratio is the
price of the objective itself (Salman et al. 2019; Zhai et al. 2020; Jeong &
Shin 2020 for SmoothAdv, MACER and consistency regularization).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rsscale.analysis.results import Run


def training_sidecar(run: Run) -> dict:
    """The training sidecar of the run's checkpoint."""
    path = Path(run.parameters["checkpoint"]).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"no training sidecar {path} for the checkpoint of {run.path}")
    return json.loads(path.read_text())


def training_rows(runs: Sequence[Run], radii: Sequence[float]) -> list[dict]:
    """One row per (objective, sigma), with ``time_vs_gaussian`` and ``passes_vs_gaussian`` at the same sigma."""
    rows = []
    for run in runs:
        model = training_sidecar(run)
        report = model["training"]
        passes = report.get("forward_passes", 0) + report.get("backward_passes", report.get("forward_passes", 0))
        row = {"objective": model["objective"]["objective"], "sigma": float(run.parameters["sigma"]),
               "inputs": len(run), "base_clean_accuracy": model["test_accuracy_clean"],
               "base_noisy_accuracy": model["test_accuracy_noisy"]}
        row.update({f"r={r:g}": run.certified_accuracy(r) for r in radii})
        row.update({"ACR": run.acr(), "train_seconds": float(report["seconds"]), "train_passes": int(passes)})
        rows.append(row)
    baseline = {row["sigma"]: row for row in rows if row["objective"] == "gaussian"}
    for row in rows:
        base = baseline.get(row["sigma"])
        row["time_vs_gaussian"] = row["train_seconds"] / base["train_seconds"] if base else float("nan")
        row["passes_vs_gaussian"] = row["train_passes"] / base["train_passes"] if base else float("nan")
        row["ACR_vs_gaussian"] = row["ACR"] / base["ACR"] if base and base["ACR"] > 0 else float("nan")
    order = {"gaussian": 0}
    return sorted(rows, key=lambda r: (order.get(r["objective"], 1), r["objective"], r["sigma"]))
