"""The inference cost, attacked: forward passes per input against what they certify.

Every run is compared with a reference Cohen run (the largest n) on the same
model and inputs:

* runs that certify a radius (Cohen at each n, ISS as published, ISS with
  fresh samples; Chen et al. 2022) give their ACR and the mean forward passes
  per input -- the cost frontier;
* runs that decide at a target radius r (adaptive sampling of Horvath et al.
  2022, betting and union-bound confidence sequences after Voracek 2024) give
  their certified accuracy at r, the fraction of inputs on which their
  decision (certified correctly at r, or not) equals the reference's, and the
  reference's passes over theirs.

One row per run; ``label`` names the method and its setting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsscale.analysis.results import Run


def run_label(run: Run) -> str:
    p = run.parameters
    if p["method"] == "cohen":
        return f"cohen n={int(p['n'])}"
    if p["method"] == "adaptive":
        return f"{p['strategy']} r={p['r_target']:g}"
    return str(p["method"])


def _decisions(run: Run, r: float) -> np.ndarray:
    """Per input: certified, correct, at radius >= r."""
    return run.correct & (run.radius() >= r)


def cost_rows(runs: Sequence[Run]) -> list[dict]:
    """Rows for every run against the Cohen run with the largest n (the reference), with ``cert_acc@<r>`` at
    every target radius of the adaptive runs (for a radius-certifying run: correct with radius >= r)."""
    cohen = [run for run in runs if run.parameters["method"] == "cohen"]
    if not cohen:
        raise ValueError("the cost table needs a Cohen run as its reference")
    reference = max(cohen, key=lambda run: run.parameters["n"])
    ref_passes = float(np.mean(reference.columns["forward_passes"]))
    ref_index = {int(i): k for k, i in enumerate(reference.columns["idx"])}
    rows = []
    for run in runs:
        p = run.parameters
        passes = float(np.mean(run.columns["forward_passes"]))
        target = p.get("r_target") if p["method"] == "adaptive" else None
        row = {"label": run_label(run), "method": p["method"], "sound": bool(run.sidecar.get("sound", True)),
               "inputs": len(run), "forward_passes_mean": passes, "passes_saved_x": ref_passes / passes,
               "seconds_median": float(np.median(run.columns["seconds"])),
               "ACR": run.acr() if target is None else float("nan"), "r_target": target if target else float("nan"),
               "cert_acc_at_target": float("nan"), "same_decision": float("nan")}
        if target is not None:
            shared = [k for k, i in enumerate(run.columns["idx"]) if int(i) in ref_index]
            mine = _decisions(run, target)[shared]
            theirs = _decisions(reference, target)[[ref_index[int(run.columns["idx"][k])] for k in shared]]
            row["cert_acc_at_target"] = float(_decisions(run, target).mean())
            row["same_decision"] = float(np.mean(mine == theirs)) if shared else float("nan")
        rows.append(row)
    targets = sorted({float(run.parameters["r_target"]) for run in runs if run.parameters["method"] == "adaptive"})
    for run, row in zip(runs, rows, strict=True):
        for r in targets:
            own = row["method"] != "adaptive" or row["r_target"] == r
            row[f"cert_acc@{r:g}"] = float(_decisions(run, r).mean()) if own else float("nan")
    order = {"cohen": 0, "iss": 1, "iss_sound": 2, "adaptive": 3}
    return sorted(rows, key=lambda r: (order.get(r["method"], 9), r["forward_passes_mean"], r["label"]))
