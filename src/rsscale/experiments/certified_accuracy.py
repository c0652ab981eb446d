"""Certified accuracy over sigma (Cohen et al. 2019, Table 1): one Cohen CERTIFY run per noise level sigma on the
main dataset; certified accuracy at fixed l2 radii and the ACR per sigma, curves over the radius, and the claim
test ``sigma_tradeoff`` (robustness is bought with accuracy)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.figures import plt, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.seed_replicates import seed_values
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run


def runs(plan: Plan) -> list[str]:
    """Cohen's CERTIFY on the ``cohen`` section's dataset and inputs at every sigma of ``sigmas``."""
    c = plan.config["cohen"]
    return [plan.cohen_run(c["dataset"], sigma, c["n"], c.get("max_inputs")) for sigma in plan.config["sigmas"]]


def certified_accuracy_rows(runs: Sequence[Run], radii: Sequence[float], key: str = "sigma") -> list[dict]:
    """Cohen et al.-style rows: one per run (by ``key``), certified accuracy at each radius, ACR."""
    rows = []
    for run in sorted(runs, key=lambda r: r.parameters.get(key, 0)):
        row = {key: run.parameters.get(key), "inputs": len(run)}
        row.update({f"r={r:g}": run.certified_accuracy(r) for r in radii})
        row["ACR"] = run.acr()
        rows.append(row)
    return rows


def certified_accuracy_curves(runs: Sequence[Run], prefix, key: str = "sigma", title: str = "") -> list[Path]:
    """Certified accuracy vs l2 radius, one line per run (e.g. per sigma)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for run in sorted(runs, key=lambda r: r.parameters.get(key, 0)):
        radius = run.radius()
        top = max(float(radius.max(initial=0.0)), 1e-3)
        grid = np.linspace(0.0, top * 1.05, 300)
        name = r"$\sigma$" if key == "sigma" else key
        ax.plot(grid, [run.certified_accuracy(r) for r in grid], label=f"{name} = {run.parameters.get(key)}")
    ax.set_xlabel(r"$\ell_2$ radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_xlim(left=0)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    rows = certified_accuracy_rows([read_run(p) for p in inputs], options.radii)
    write_rows(rows, out, reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    certified_accuracy_curves([read_run(p) for p in inputs], out, title=options.title)


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return float(spearmanr(x, y).statistic) if len(set(y)) > 1 else 0.0


@claims.test("sigma_tradeoff")
def sigma_tradeoff_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """Clean certified accuracy (r = 0) falls as sigma grows (Spearman <= -``min_rho``), and the largest radius
    certified for any input grows.  With the seed replicates of the sweep (table ``seed_sweep``), the Spearman
    correlation is computed for every seed and judged by its range over seeds; else it is a point estimate."""
    rows = sorted(tables["certified_accuracy"], key=lambda r: r["sigma"])
    min_rho = params.get("min_rho", 0.8)
    threshold = f"Spearman(sigma, accuracy at r = 0) <= {-min_rho:g} and the reach grows"
    if len(rows) < 3:
        return claims.not_measured("fewer than 3 sigmas", threshold)
    radii = sorted(float(k.split("=")[1]) for k in rows[0] if k.startswith("r="))
    sigmas = [r["sigma"] for r in rows]
    clean = [r["r=0"] for r in rows]
    reach = [max((rad for rad in radii if r[f"r={rad:g}"] > 0), default=0.0) for r in rows]
    rho_clean = _spearman(sigmas, clean)
    measured = (f"accuracy at r = 0: {', '.join(f'{c:.3f}' for c in clean)} (Spearman with sigma {rho_clean:+.2f}); "
                f"largest certified radius in the table: {', '.join(f'{x:g}' for x in reach)}")
    low = high = rho_clean
    interval = f"none: a rank correlation over {len(rows)} sigmas of one model seed (no seed_sweep table)"
    replicates = sorted(tables.get("seed_sweep", []), key=lambda r: r["sigma"])
    if replicates:
        by_seed = [dict(zip(str(r["seeds"]).split(), seed_values(r, "r=0"), strict=True)) for r in replicates]
        seeds = [s for s in by_seed[0] if all(s in row for row in by_seed)]
        rhos = [_spearman([r["sigma"] for r in replicates], [row[s] for row in by_seed]) for s in seeds]
        low, high = min(rhos), max(rhos)
        measured += f"; Spearman per model seed ({', '.join(seeds)}): {', '.join(f'{x:+.2f}' for x in rhos)}"
        interval = f"range over {len(seeds)} model seeds (seed_sweep), not a confidence interval"
    falls = claims.judge(low, high, upper=-min_rho)
    grows = "supported" if reach[-1] > reach[0] or max(reach) > reach[0] else "not supported"
    verdict = falls if falls == grows else "inconclusive"
    return claims.Outcome(measured, verdict, rho_clean, low, high, interval=interval, threshold=threshold)


register(Experiment("certified-accuracy", "certified accuracy and ACR per noise level sigma", runs, table, figure))
