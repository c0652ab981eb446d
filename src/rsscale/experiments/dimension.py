"""The curse of dimensionality: certified radii per norm as the input dimension d grows.

For each run (one dataset at one d, one noise family) the rows hold the ACR in
l1, l2 and l_inf and the certified accuracy at fixed l2 and l_inf radii.  The
slope of log ACR against log d is fitted by least squares per (data group,
noise, norm) and printed next to the slope the theory predicts when the
native-norm radius does not depend on d: with the norm conversion
``r_q = r_p / d^(1/p - 1/q)`` a Gaussian (l2) certificate gives l_inf slope
-1/2 and an l1 certificate (Laplace, uniform) gives l2 slope -1/2 and l_inf
slope -1.  The claim test ``slope`` compares a fitted slope with the expected one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.figures import color, plt, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows, write_table
from rsscale.io import Run, read_run
from rsscale.noise import FAMILIES, NORMS

#: Slope of log r_norm vs log d when the native radius is constant in d.
THEORY = {
    ("l2", "l1"): 0.0,
    ("l2", "l2"): 0.0,
    ("l2", "linf"): -0.5,
    ("l1", "l1"): 0.0,
    ("l1", "l2"): -0.5,
    ("l1", "linf"): -1.0,
}


def dimension_run(plan: Plan, dataset: str, method: str, label: str, **params) -> str:
    """One certification of the dimension sweep (the ``dimension`` section's sigma, n0, n, inputs and pack)."""
    dim = plan.config["dimension"]
    n = params.pop("n", dim["n"])
    tag = f"{label}_sigma{dim['sigma']}_n{n}_{dim['max_inputs']}"
    params = plan.cohen_params(n, n0=dim["n0"], **params)
    return plan.certify(dataset, method, dim["sigma"], tag, params, dim["max_inputs"], 1, dim["pack"])


def runs(plan: Plan) -> list[str]:
    """Cohen's CERTIFY with every noise family of the ``dimension`` section on each of its datasets."""
    dim = plan.config.get("dimension")
    if not dim:
        return []
    return [dimension_run(plan, dataset, "cohen", noise, noise=noise)
            for dataset in dim["datasets"] for noise in dim["noises"]]


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


NOISE_STYLE = {"gaussian": (color(0), "o"), "laplace": (color(1), "s"), "uniform": (color(2), "^")}


def dimension_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """ACR per norm vs d (log-log), one line per (data group, noise), with theory slopes from the first point."""

    norms = ["l1", "l2", "linf"]
    groups = sorted({r["group"] for r in rows})
    fig, axes = plt.subplots(len(groups), 3, figsize=(11, 3.2 * len(groups)), squeeze=False)
    for gi, group in enumerate(groups):
        for ni, norm in enumerate(norms):
            ax = axes[gi][ni]
            for noise in sorted({r["noise"] for r in rows if r["group"] == group}):
                subset = sorted((r for r in rows if r["group"] == group and r["noise"] == noise), key=lambda r: r["d"])
                d = np.array([r["d"] for r in subset], float)
                acr = np.array([r[f"ACR_{norm}"] for r in subset])
                color, marker = NOISE_STYLE.get(noise, ("k", "x"))
                ax.loglog(d, np.where(acr > 0, acr, np.nan), marker=marker, color=color, label=noise)
                slope = THEORY[(subset[0]["native_norm"], norm)]
                if acr[0] > 0:
                    ax.loglog(d, acr[0] * (d / d[0]) ** slope, ":", color=color, alpha=0.7)
            ax.set_title(f"{group}: ACR in {norm.replace('inf', '_inf')}")
            ax.set_xlabel("input dimension d")
            if ni == 0:
                ax.set_ylabel("average certified radius")
    noises = sorted({r["noise"] for r in rows})
    handles = [plt.Line2D([], [], color=NOISE_STYLE.get(n, ("k", "x"))[0], marker=NOISE_STYLE.get(n, ("k", "x"))[1],
                          label=f"{n} noise") for n in noises]
    handles.append(plt.Line2D([], [], color="0.4", linestyle=":",
                              label="theoretical slope if the native-norm radius were constant in d"))
    fig.tight_layout(rect=(0, 0.06 / len(groups), 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    """The dimension table, and beside it (``<out>_slopes``) the fitted slopes."""
    rows = dimension_rows([read_run(p) for p in inputs], options.radii, options.linf_radii)
    slopes = slope_rows(rows)
    write_table(slopes, list(slopes[0]), f"{out}_slopes")
    for row in slopes:
        print(f"{row['group']:>10s} {row['noise']:>8s} {row['norm']:>4s}: slope {row['slope']:+.3f}"
              f" +- {row['slope_se']:.3f} (theory if the native radius were constant: "
              f"{row['theory_if_native_constant']:+.1f})")
    write_rows(rows, out, reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    dimension_figure(dimension_rows([read_run(p) for p in inputs], [], []), out)


@claims.test("slope")
def slope_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """A fitted log-log slope of ACR vs d equals ``expected`` within ``tolerance``, judged on the slope's 95 % normal
    interval (1.96 standard errors of the least-squares fit over the dimensions)."""
    rows = [r for r in tables["dimension_slopes"]
            if r["group"] == params["group"] and r["noise"] == params["noise"] and r["norm"] == params["norm"]]
    expected, tolerance = params["expected"], params["tolerance"]
    threshold = f"slope in [{expected - tolerance:+g}, {expected + tolerance:+g}]"
    if not rows:
        return claims.not_measured("no such slope in the table", threshold)
    slope, se = rows[0]["slope"], rows[0]["slope_se"]
    if isinstance(slope, str) or math.isnan(slope):
        return claims.Outcome("no slope (fewer than 2 dimensions with a positive ACR)", "inconclusive",
                              interval="none: no slope", threshold=threshold)
    se = 0.0 if isinstance(se, str) or math.isnan(se) else se
    low, high = claims.normal_interval(slope, se)
    measured = f"slope {slope:+.3f} +- {se:.3f} (d = {rows[0]['d_min']:.0f}..{rows[0]['d_max']:.0f})"
    return claims.Outcome(measured, claims.judge(low, high, expected - tolerance, expected + tolerance), slope, low,
                          high, f"normal (slope +- 1.96 standard errors over {rows[0]['d_min']:.0f}.."
                          f"{rows[0]['d_max']:.0f})", threshold)


register(Experiment("dimension", "radii per norm as the input dimension d grows; fitted log-log slopes", runs, table,
                    figure))
