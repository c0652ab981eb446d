"""The curse of dimensionality: certified radii per norm as the input dimension d grows.

For each run (one dataset at one d, one noise family) the rows hold the ACR in
l1, l2 and l_inf and the certified accuracy at fixed l2 and l_inf radii.  The
slope of log ACR against log d is fitted by least squares per (data group,
noise, norm) and printed next to the slope the theory predicts when the
native-norm radius does not depend on d: with the norm conversion
``r_q = r_p / d^(1/p - 1/q)`` a Gaussian (l2) certificate gives l_inf slope
-1/2 and an l1 certificate (Laplace, uniform) gives l2 slope -1/2 and l_inf
slope -1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rsscale.analysis.results import Run
from rsscale.noise import NORMS

#: Slope of log r_norm vs log d when the native radius is constant in d.
THEORY = {
    ("l2", "l1"): 0.0,
    ("l2", "l2"): 0.0,
    ("l2", "linf"): -0.5,
    ("l1", "l1"): 0.0,
    ("l1", "l2"): -0.5,
    ("l1", "linf"): -1.0,
}


def run_dimension(run: Run) -> int:
    return int(run.sidecar["dim"])


def dimension_rows(runs: Sequence[Run], l2_radii: Sequence[float], linf_radii: Sequence[float]) -> list[dict]:
    """One row per run, sorted by (group, noise, d)."""
    rows = []
    for run in runs:
        noise = run.parameters["noise"]
        row = {"group": run.sidecar["dataset"], "d": run_dimension(run), "noise": noise["name"],
               "native_norm": noise_native_norm(noise["name"]), "inputs": len(run),
               "clean_accuracy": float(run.correct.mean())}
        row.update({f"ACR_{norm}": run.acr(norm) for norm in NORMS})
        row.update({f"l2@{r:g}": run.certified_accuracy(r, "l2") for r in l2_radii})
        row.update({f"linf@{r:g}": run.certified_accuracy(r, "linf") for r in linf_radii})
        row["seconds_median"] = float(np.median(run.columns["seconds"]))
        rows.append(row)
    return sorted(rows, key=lambda r: (r["group"], r["noise"], r["d"]))


def noise_native_norm(name: str) -> str:
    from rsscale.noise import FAMILIES

    return FAMILIES[name](1.0).native_norm


def fit_slope(d: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of log(values) on log(d) and its standard error (nan with < 3 points)."""
    d, values = np.asarray(d, float), np.asarray(values, float)
    keep = values > 0
    x, y = np.log(d[keep]), np.log(values[keep])
    if len(x) < 2:
        return float("nan"), float("nan")
    design = np.vstack([x, np.ones_like(x)]).T
    coef, residual, *_ = np.linalg.lstsq(design, y, rcond=None)
    if len(x) < 3:
        return float(coef[0]), float("nan")
    sigma2 = float(residual[0]) / (len(x) - 2) if len(residual) else 0.0
    se = math.sqrt(sigma2 / np.sum((x - x.mean()) ** 2))
    return float(coef[0]), se


def slope_rows(rows: Sequence[dict]) -> list[dict]:
    """Fitted slope of ACR vs d per (group, noise, norm), next to the theoretical slope."""
    out = []
    keys = sorted({(r["group"], r["noise"]) for r in rows})
    for group, noise in keys:
        subset = [r for r in rows if r["group"] == group and r["noise"] == noise]
        native = subset[0]["native_norm"]
        for norm in NORMS:
            slope, se = fit_slope([r["d"] for r in subset], [r[f"ACR_{norm}"] for r in subset])
            out.append({"group": group, "noise": noise, "norm": norm, "points": len(subset),
                        "d_min": min(r["d"] for r in subset), "d_max": max(r["d"] for r in subset),
                        "slope": slope, "slope_se": se, "theory_if_native_constant": THEORY[(native, norm)]})
    return out
