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
the references themselves).  The DSRS comparison section (``dsrs``: DSRS and NP from the same P samples at one
d) is written by the same table.  The claim test ``gain_over_d`` judges a remedy's gain across d with a one-sided
sign test (binomial, p = 1/2) on how many dimensions show a gain, and the trend with Spearman's rank correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, spearmanr

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.dimension import dimension_run
from rsscale.experiments.figures import color, plt, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run
from rsscale.metrics import average_certified_radius, certified_accuracy
from rsscale.noise import NORMS, convert_radius


def projected_dataset(plan: Plan, dataset: str, rank: int) -> str:
    """The dataset whose model is the PCA-projected version of the dataset's model."""
    spec = plan.dataset(dataset)
    base = spec.get("model", plan.config["model"])
    model = {"arch": "projected", "params": {"rank": rank, "base_arch": base["arch"],
                                             "base_config": base.get("params", {})}}
    return plan.add_dataset(f"{dataset}-pca{rank}", {**spec, "model": model})


def runs(plan: Plan) -> list[str]:
    """Plain Gaussian RS, DSRS (with NP on its P samples) and projected RS at every d of the ``dimension`` section."""
    dim = plan.config.get("dimension")
    if not dim or ("dsrs" not in dim and "projected" not in dim):
        return []
    paths = [dimension_run(plan, dataset, "cohen", "gaussian", noise="gaussian") for dataset in dim["datasets"]]
    if "dsrs" in dim:
        paths += [dimension_run(plan, dataset, "dsrs", dim["dsrs"]["secondary"], **dim["dsrs"])
                  for dataset in dim["datasets"]]
    if "projected" in dim:
        rank = dim["projected"]["rank"]
        paths += [dimension_run(plan, projected_dataset(plan, dataset, rank), "projected", "gaussian")
                  for dataset in dim["projected"]["datasets"]]
    return list(dict.fromkeys(paths))


def dsrs_run(plan: Plan, secondary: str) -> str:
    """One run of the DSRS comparison section (NP comes from the same P samples)."""
    c = plan.config["dsrs"]
    extra = {"sigma_q": c["sigma_q"]} if secondary == "scaled" and "sigma_q" in c else {}
    if secondary == "truncated" and "truncation" in c:
        extra = {"truncation": c["truncation"]}
    if c.get("k"):
        extra["k"] = c["k"]
    params = {"n0": c["n0"], "n": c["n"], "alpha": c["alpha"], "batch_size": c.get("batch_size", 1000),
              "secondary": secondary, **extra}
    tag = f"{secondary}_sigma{c['sigma']}_n{c['n']}_{c.get('max_inputs') or 'all'}"
    return plan.certify(c["dataset"], "dsrs", c["sigma"], tag, params, c.get("max_inputs"), c["skip"], c["pack"])


def dsrs_runs(plan: Plan) -> list[str]:
    """The runs of the DSRS comparison section (``dsrs``), one per secondary distribution."""
    return [dsrs_run(plan, secondary) for secondary in plan.config["dsrs"]["secondaries"]] \
        if "dsrs" in plan.config else []


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


REMEDY_STYLE = {"cohen": (color(0), "o"), "projected": (color(2), "^"), "np": (color(6), "s"), "dsrs": (color(3), "D")}


def _legend_below(ax) -> None:
    """The axes' legend under it, one entry per label, markers only (the line style encodes the data group)."""
    entries: dict = {}
    for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
        entries.setdefault(label, plt.Line2D([], [], linestyle="", color=handle.get_color(), label=label,
                                             marker=handle.get_marker(), markerfacecolor=handle.get_markerfacecolor()))
    ax.legend(handles=list(entries.values()), frameon=False, fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.3))


def remedies_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """DSRS gain, projected-RS gain and cost per input vs d (rows of :func:`remedy_rows`); line style: data group,
    colour and marker: method (hollow: DSRS's radius search)."""
    fig, (gain_dsrs, gain_projected, cost) = plt.subplots(1, 3, figsize=(13, 4.6))
    groups = sorted({r["group"] for r in rows})
    lines = ["-", "--", ":"]

    dsrs = sorted({r["method"] for r in rows if r["method"].startswith("dsrs")})

    def series(group, method, key):
        subset = sorted((r for r in rows if r["group"] == group and r["method"] == method), key=lambda r: r["d"])
        return np.array([r["d"] for r in subset], float), np.array([r[key] for r in subset], float)

    for gi, group in enumerate(groups):
        style = lines[gi % len(lines)]
        for di, method in enumerate(dsrs):
            d, gain = series(group, method, "gain_l2")
            if len(d):
                gain_dsrs.semilogx(d, gain, style, marker="D", color=color(3 + 2 * di), label=method)
        for norm, shade in (("l2", color(2)), ("linf", color(4))):
            d, gain = series(group, "projected", f"gain_{norm}")
            if len(d):
                label = r"$\ell_2$" if norm == "l2" else r"$\ell_\infty$"
                gain_projected.semilogx(d, gain, style, marker="^", color=shade, label=label)
        costs = [("cohen", "sampling_seconds", "Cohen: sampling"),
                 ("projected", "sampling_seconds", "projected: sampling")]
        for method in dsrs:
            costs += [(method, "sampling_seconds", f"{method}: sampling (P and Q)"),
                      (method, "radius_seconds", f"{method}: radius search")]
        for method, key, label in costs:
            d, seconds = series(group, method, key)
            if len(d):
                shade, marker = REMEDY_STYLE["dsrs" if method.startswith("dsrs") else method]
                face = "none" if key == "radius_seconds" else shade
                cost.loglog(d, seconds, style, marker=marker, color=shade, markerfacecolor=face, label=label)
    for ax in (gain_dsrs, gain_projected, cost):
        ax.set_xlabel("input dimension d")
        _legend_below(ax)
    for ax in (gain_dsrs, gain_projected):
        ax.axhline(1.0, color="0.5", lw=0.8)
    gain_dsrs.set_title("DSRS: ACR / NP ACR (same P samples)")
    gain_dsrs.set_ylabel(r"$\ell_2$ ACR ratio")
    gain_projected.set_title("projected RS: ACR / plain Gaussian RS ACR")
    gain_projected.set_ylabel("ACR ratio")
    cost.set_title("cost per input (median)")
    cost.set_ylabel("seconds")
    fig.legend(handles=[plt.Line2D([], [], color="0.3", linestyle=lines[gi % len(lines)], label=f"{group} data")
                        for gi, group in enumerate(groups)], loc="upper center", ncol=len(groups), frameon=False,
               fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    rows = remedy_rows([read_run(p) for p in inputs], options.radii)
    for row in rows:
        print(f"{row['group']:>10s} d={row['d']:<7d} {row['method']:>10s}: ACR l2 {row['ACR_l2']:.4f}"
              f" (x{row['gain_l2']:.3f}), l_inf {row['ACR_linf']:.3g} (x{row['gain_linf']:.3f}),"
              f" sampling {row['sampling_seconds']:.3g} s, radius {row['radius_seconds']:.3g} s per input"
              f" (radius / sampling {row['radius_to_sampling']:.3g})")
    write_rows(rows, out, reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    remedies_figure(remedy_rows([read_run(p) for p in inputs]), out)


def _sign_test(gains: Sequence[float], min_gain: float = 0.0) -> tuple[int, float]:
    """How many gains exceed 1 + min_gain, and the one-sided sign-test p-value of that count under no effect."""
    above = sum(g > 1 + min_gain for g in gains)
    return above, float(binomtest(above, len(gains), 0.5, alternative="greater").pvalue) if gains else math.nan


@claims.test("gain_over_d")
def gain_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """``method``'s ACR gain over its reference exceeds ``1 + min_gain`` at more dimensions than chance: the share of
    dimensions with that gain, judged on its exact one-sided 95 % bounds against 1/2 (the dual of the one-sided
    sign test); with ``cost``, the method also costs more than the reference (median wall-clock ratio, a point
    estimate)."""
    rows = [r for r in tables["dimension_remedies"] if r["method"] == params["method"]
            and (params.get("group") is None or r["group"] == params["group"])]
    gains = [r[f"gain_{params.get('norm', 'l2')}"] for r in rows]
    gains = [g for g in gains if isinstance(g, float) and not math.isnan(g)]
    min_gain = params.get("min_gain", 0.0)
    threshold = f"share of d with gain > {1 + min_gain:g} above 1/2" + (" and cost above the reference's"
                                                                       if "cost" in params else "")
    if not gains:
        return claims.not_measured("no rows", threshold)
    above, p = _sign_test(gains, min_gain)
    measured = (f"gain {min(gains):.3f}..{max(gains):.3f} (median {np.median(gains):.3f}); > {1 + min_gain:g} at "
                f"{above}/{len(gains)} d (sign test p = {p:.3g})")
    if params.get("growing"):
        d = [r["d"] for r in rows]
        rho = spearmanr(d, [r[f"gain_{params.get('norm', 'l2')}"] for r in rows]).statistic
        measured += f"; Spearman(d, gain) = {rho:+.2f}"
    low, high = claims.binomial_interval(above, len(gains), one_sided=True)
    parts = [claims.judge(low, high, lower=0.5)]
    if len(gains) < params.get("min_points", 3):
        measured += f"; fewer than {params.get('min_points', 3)} dimensions"
        parts.append("inconclusive")
    if "cost" in params:
        cost = params["cost"]
        ratios = []
        for row in rows:
            ref = [r for r in tables["dimension_remedies"] if r["group"] == row["group"] and r["d"] == row["d"]
                   and r["method"] == cost["reference"]]
            if ref:
                mine = sum(row[c] for c in cost["columns"])
                theirs = sum(ref[0][c] for c in cost["columns"])
                ratios.append(mine / theirs if theirs > 0 else math.inf)
        if ratios:
            measured += f"; cost vs {cost['reference']}: x{np.median(ratios):.2f} median"
            parts.append("supported" if np.median(ratios) > 1 else "not supported")
    return claims.Outcome(measured, claims.worst(parts), above / len(gains), low, high,
                          f"exact binomial one-sided 95 % bounds over {len(gains)} dimensions", threshold)


register(Experiment("remedies", "DSRS vs NP and projected vs plain RS across d: gains and their cost", runs, table,
                    figure))
