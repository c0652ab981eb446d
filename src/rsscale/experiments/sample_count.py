"""The sample count: Cohen's CERTIFY as the estimation samples n grow (same model, sigma and inputs); wall-clock,
radius and the ceiling ``sigma Phi^-1(alpha^(1/n))`` that all-agreeing samples reach, and the claim test
``cost_in_n`` (wall-clock grows like n while the radius gains little)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import norm

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.dimension import fit_slope
from rsscale.experiments.figures import plt, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run


def runs(plan: Plan) -> list[str]:
    """Cohen's CERTIFY at every n of the ``sample_count`` section, on the main dataset."""
    sweep = plan.config["sample_count"]
    return [plan.cohen_run(plan.config["cohen"]["dataset"], sweep["sigma"], n, sweep["max_inputs"])
            for n in sweep["ns"]]


def sample_count_rows(runs: Sequence[Run], radii: Sequence[float]) -> list[dict]:
    """One row per estimation sample count n: cost and radius of Cohen's CERTIFY."""
    rows = []
    for run in sorted(runs, key=lambda r: r.parameters["n"]):
        p = run.parameters
        certified = run.radius()[run.correct & (run.radius() > 0)]
        row = {"n": int(p["n"]), "inputs": len(run), "forward_passes": int(run.columns["forward_passes"][0]),
               "seconds_median": float(np.median(run.columns["seconds"])), "ACR": run.acr(),
               "radius_median_certified": float(np.median(certified)) if len(certified) else 0.0,
               "radius_ceiling": float(p["sigma"] * norm.ppf(p["alpha"] ** (1.0 / p["n"])))}
        row.update({f"cert_acc@{r:g}": run.certified_accuracy(r) for r in radii})
        rows.append(row)
    return rows


def sample_count_figure(rows: Sequence[dict], prefix, sigma: float, alpha: float) -> list[Path]:
    """Left: wall-clock per certification vs n. Right: radius vs n, with the ceiling sigma Phi^-1(alpha^(1/n))."""
    n = np.array([row["n"] for row in rows], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.3))
    left.loglog(n, [row["seconds_median"] for row in rows], "o-", label="measured (median)")
    reference = rows[-1]["seconds_median"] * n / n[-1]
    left.loglog(n, reference, "--", color="gray", label=r"$\propto n$")
    left.set_xlabel("estimation samples n")
    left.set_ylabel("seconds per certification")
    left.legend(frameon=False)
    right.semilogx(n, [row["ACR"] for row in rows], "o-", label="ACR")
    right.semilogx(n, [row["radius_median_certified"] for row in rows], "s-", label="median radius (certified)")
    dense = np.logspace(np.log10(n.min()), np.log10(n.max()), 200)
    right.semilogx(dense, sigma * norm.ppf(alpha ** (1.0 / dense)), ":", color="gray",
                   label=r"ceiling $\sigma\Phi^{-1}(\alpha^{1/n})$")
    right.set_xlabel("estimation samples n")
    right.set_ylabel(r"$\ell_2$ radius")
    right.set_ylim(bottom=0)
    right.legend(frameon=False)
    fig.tight_layout()
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(sample_count_rows([read_run(p) for p in inputs], options.radii), out, reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    runs = [read_run(p) for p in inputs]
    sample_count_figure(sample_count_rows(runs, []), out, sigma=runs[0].parameters["sigma"],
                        alpha=runs[0].parameters["alpha"])


@claims.test("cost_in_n")
def cost_in_n_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """Wall-clock grows like n (log-log slope within ``tolerance`` of 1 for n >= ``n_min``, judged on the slope's
    95 % normal interval) while the ACR gained over the last decade of n is below ``max_gain`` (relative, a point
    estimate)."""
    rows = sorted(tables["sample_count"], key=lambda r: r["n"])
    big = [r for r in rows if r["n"] >= params.get("n_min", 1000)]
    tolerance, max_gain = params.get("tolerance", 0.2), params.get("max_gain", 0.2)
    threshold = f"time slope in [{1 - tolerance:g}, {1 + tolerance:g}] and ACR gain <= {100 * max_gain:g} %"
    if len(big) < 2:
        return claims.not_measured("fewer than 2 sample counts", threshold)
    slope, se = fit_slope([r["n"] for r in big], [r["seconds_median"] for r in big])
    se = 0.0 if math.isnan(se) else se
    last, before = rows[-1], [r for r in rows if r["n"] <= rows[-1]["n"] / 10]
    gain = last["ACR"] / before[-1]["ACR"] - 1 if before and before[-1]["ACR"] > 0 else math.nan
    measured = (f"time slope {slope:.2f} +- {se:.2f} in n = {big[0]['n']:.0f}..{big[-1]['n']:.0f}; ACR "
                f"{before[-1]['ACR']:.3f} -> {last['ACR']:.3f} (+{100 * gain:.1f} %) for 10x the samples"
                if before else f"time slope {slope:.2f} +- {se:.2f}")
    low, high = claims.normal_interval(slope, se)
    linear = claims.judge(low, high, 1 - tolerance, 1 + tolerance)
    slow = "supported" if not math.isnan(gain) and gain <= max_gain else "not supported"
    verdict = linear if linear == slow else "inconclusive"  # one part against, the other not: open
    return claims.Outcome(measured, verdict, slope, low, high, f"normal (slope +- 1.96 standard errors over "
                          f"{len(big)} sample counts; the ACR gain is a point estimate)", threshold)


register(Experiment("sample-count", "wall-clock and radius of Cohen's CERTIFY as n grows", runs, table, figure))
