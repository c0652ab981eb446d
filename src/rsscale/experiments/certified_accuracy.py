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


@claims.test("sigma_tradeoff")
def sigma_tradeoff_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """Clean certified accuracy (r = 0) falls as sigma grows (Spearman <= -``min_rho``, a point estimate over the
    sigmas), and the largest radius certified for any input grows."""
    rows = sorted(tables["certified_accuracy"], key=lambda r: r["sigma"])
    threshold = f"Spearman(sigma, accuracy at r = 0) <= {-params.get('min_rho', 0.8):g} and the reach grows"
    if len(rows) < 3:
        return claims.not_measured("fewer than 3 sigmas", threshold)
    radii = sorted(float(k.split("=")[1]) for k in rows[0] if k.startswith("r="))
    sigmas = [r["sigma"] for r in rows]
    clean = [r["r=0"] for r in rows]
    reach = [max((rad for rad in radii if r[f"r={rad:g}"] > 0), default=0.0) for r in rows]
    rho_clean = spearmanr(sigmas, clean).statistic if len(set(clean)) > 1 else 0.0
    measured = (f"accuracy at r = 0: {', '.join(f'{c:.3f}' for c in clean)} (Spearman with sigma {rho_clean:+.2f}); "
                f"largest certified radius in the table: {', '.join(f'{x:g}' for x in reach)}")
    falls = rho_clean <= -params.get("min_rho", 0.8)
    grows = reach[-1] > reach[0] or max(reach) > reach[0]
    verdict = "supported" if falls and grows else "not supported" if not falls and not grows else "inconclusive"
    return claims.Outcome(measured, verdict, rho_clean, interval=f"none: a rank correlation over {len(rows)} "
                          f"sigmas; {claims.PER_INPUT}", threshold=threshold)


register(Experiment("certified-accuracy", "certified accuracy and ACR per noise level sigma", runs, table, figure))
