"""The two remedies the survey names for the curse of dimensionality, measured across d.

* DSRS (Li et al., ICML 2022; ``dsrs_<secondary>``) against the plain Neyman-Pearson radius
  ``sigma Phi^-1(pL)`` from the same P samples at the same confidence split
  (the ``np_radius`` column of a DSRS run): the gain is the information the
  second sample set adds, its price the second set of forward passes and the
  radius search (``sampling_seconds`` and ``radius_seconds``).
* Projected RS (Pfrommer et al., TMLR 2023) against plain Gaussian RS of a
  model of the same family trained at the same sigma on the same data: the
  gain is the accuracy the base model keeps when the noise outside the data's
  subspace is discarded, in l2, and the cylinder's larger l_inf radius.

One row per (data group, d, method), long format: ``method`` is ``cohen``
(``cohen_<noise>`` for a non-Gaussian noise), ``np`` (the first DSRS run's P
samples alone; runs of one config share their seeds, hence their P samples),
``dsrs_<secondary>`` or ``projected``; ``gain_<norm>`` is the ratio of ACRs
to the row's reference (``np`` for DSRS, ``cohen`` for ``projected``; 1 for
the references themselves).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsscale.analysis.results import Run, average_certified_radius, certified_accuracy
from rsscale.noise import NORMS, convert_radius


def reference(method: str) -> str:
    """The method a row's gain is measured against."""
    return "np" if method.startswith("dsrs") else "cohen" if method == "projected" else method


def _row(run: Run, method: str, radii: dict[str, np.ndarray], l2_radii, seconds: dict[str, float]) -> dict:
    correct = run.correct
    row = {"group": run.sidecar["dataset"], "d": int(run.sidecar["dim"]), "method": method, "inputs": len(run),
           "clean_accuracy": float(correct.mean()),
           "forward_passes": int(np.median(run.columns["forward_passes"]))}
    row.update({f"ACR_{norm}": average_certified_radius(radii[norm], correct) for norm in NORMS})
    row.update({f"l2@{r:g}": certified_accuracy(radii["l2"], correct, r) for r in l2_radii})
    row.update(seconds)
    sampling = seconds["sampling_seconds"]
    row["radius_to_sampling"] = seconds["radius_seconds"] / sampling if sampling > 0 else float("nan")
    return row


def run_rows(run: Run, l2_radii: Sequence[float]) -> list[dict]:
    """The rows one run contributes: a DSRS run gives its NP baseline too."""
    method = run.parameters["method"]
    noise = run.parameters.get("noise", {}).get("name", "gaussian")
    if noise != "gaussian":
        method = f"{method}_{noise}"
    median = lambda name: float(np.median(run.columns[name]))  # noqa: E731
    radii = {norm: run.radius(norm) for norm in NORMS}
    if method != "dsrs":
        return [_row(run, method, radii, l2_radii, {"sampling_seconds": median("seconds"), "radius_seconds": 0.0})]
    d = int(run.sidecar["dim"])
    np_radii = {norm: np.array([convert_radius(r, "l2", norm, d) for r in run.columns["np_radius"]]) for norm in NORMS}
    # the NP radius is read off DSRS's P samples: it shares their sampling time and needs no search
    sampling = median("sampling_seconds")
    label = f"dsrs_{run.parameters['secondary']}"
    search = median("radius_seconds")
    return [_row(run, "np", np_radii, l2_radii, {"sampling_seconds": sampling, "radius_seconds": 0.0}),
            _row(run, label, radii, l2_radii, {"sampling_seconds": sampling, "radius_seconds": search})]


def remedy_rows(runs: Sequence[Run], l2_radii: Sequence[float] = ()) -> list[dict]:
    """Rows for every run, with ``gain_<norm>`` against the reference row of the same (group, d)."""
    index = {}
    for run in runs:
        for row in run_rows(run, l2_radii):
            index.setdefault((row["group"], row["d"], row["method"]), row)
    rows = list(index.values())
    for row in rows:
        base_row = index.get((row["group"], row["d"], reference(row["method"])))
        for norm in NORMS:
            base = base_row[f"ACR_{norm}"] if base_row else float("nan")
            row[f"gain_{norm}"] = row[f"ACR_{norm}"] / base if base > 0 else float("nan")
    order = {"cohen": 0, "projected": 1, "np": 2}
    return sorted(rows, key=lambda r: (r["group"], r["d"], order.get(r["method"], 3), r["method"]))
