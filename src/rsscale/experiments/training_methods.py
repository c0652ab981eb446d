"""RS-aware training against Gaussian augmentation: certified accuracy, ACR and what the training cost.

Each certification run is joined with its model's training sidecar (the
``.json`` beside the checkpoint, written by ``rsscale train``): the objective,
the base model's clean and noisy test accuracy, and the training wall-clock
and passes.  Costs are reported relative to Gaussian augmentation at the same
sigma (Cohen et al. 2019) trained by the same loop, so that the ratio is the
price of the objective itself (Salman et al. 2019; Zhai et al. 2020; Jeong &
Shin 2020 for SmoothAdv, MACER and consistency regularization).  The claim test
``training_gain`` compares each objective's ACR with Gaussian augmentation's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.figures import plt, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run


def training_objective(plan: Plan, name: str, sigma: float) -> tuple[str, dict]:
    """``(name, params)`` of a ``training_methods`` objective at sigma; a ``teacher`` that names another objective
    (CRT distils from it) becomes the checkpoint of that objective's model at the same sigma."""
    section = plan.config["training_methods"]
    params = dict(section["objectives"][name] or {})
    if params.get("teacher") in section["objectives"]:
        params["teacher"] = plan.model(section["dataset"], sigma, training_objective(plan, params["teacher"], sigma))
    return name, params


def runs(plan: Plan) -> list[str]:
    """One model per (objective, sigma) of the ``training_methods`` section, each certified with Cohen's CERTIFY."""
    section = plan.config.get("training_methods")
    if not section:
        return []
    return [plan.certify(section["dataset"], "cohen", sigma,
                         f"gaussian_sigma{sigma}_n{section['n']}_{section['max_inputs']}_{objective}",
                         plan.cohen_params(section["n"]), section["max_inputs"], section.get("skip", 1),
                         plan.config["cohen"]["pack"], objective=training_objective(plan, objective, sigma))
            for objective in section["objectives"] for sigma in section["sigmas"]]


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


def training_tradeoff_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """Left: smoothed clean accuracy vs ACR, one curve per training objective across sigma.
    Right: ACR vs training time relative to Gaussian augmentation (rows of ``training_rows``)."""
    fig, (tradeoff, cost) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, objective in enumerate(dict.fromkeys(r["objective"] for r in rows)):
        subset = sorted((r for r in rows if r["objective"] == objective), key=lambda r: r["sigma"])
        acr = [r["ACR"] for r in subset]
        tradeoff.plot(acr, [r["r=0"] for r in subset], "o-", color=f"C{i}", label=objective)
        for r in subset:
            tradeoff.annotate(f"{r['sigma']:g}", (r["ACR"], r["r=0"]), fontsize=7, xytext=(3, 3),
                              textcoords="offset points")
        cost.semilogx([r["time_vs_gaussian"] for r in subset], acr, "o", color=f"C{i}", label=objective)
    tradeoff.set_xlabel("ACR (l2)")
    tradeoff.set_ylabel("certified accuracy at r = 0")
    tradeoff.set_title("robustness vs accuracy (labels: sigma)")
    tradeoff.legend(frameon=False, fontsize=8)
    cost.set_xlabel("training wall-clock / Gaussian augmentation")
    cost.set_ylabel("ACR (l2)")
    cost.set_title("what the ACR costs to train")
    fig.tight_layout()
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(training_rows([read_run(p) for p in inputs], options.radii), out, reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    training_tradeoff_figure(training_rows([read_run(p) for p in inputs], [0.0]), out)


@claims.test("training_gain")
def training_gain_test(tables: dict[str, claims.Rows], params: dict) -> tuple[str, str]:
    """Each objective of ``objectives`` has a larger ACR than Gaussian augmentation at the same sigma at more
    sigmas than not; with ``cheaper``/``dearer``, the first trains in less wall-clock than the second."""
    rows = tables["training_methods"]
    parts, holds, against = [], [], []
    for objective in params["objectives"]:
        ratios = [r["ACR_vs_gaussian"] for r in rows if r["objective"] == objective]
        ratios = [x for x in ratios if isinstance(x, float) and not math.isnan(x)]
        if not ratios:
            return f"no rows for {objective}", "not measured"
        above = sum(x > 1 for x in ratios)
        parts.append(f"{objective}: ACR x{min(ratios):.2f}..x{max(ratios):.2f} of Gaussian, higher at {above}/"
                     f"{len(ratios)} sigmas")
        holds.append(above > len(ratios) / 2)
        against.append(above < len(ratios) / 2)
    if "cheaper" in params:
        time = {o: float(np.median([r["time_vs_gaussian"] for r in rows if r["objective"] == o]))
                for o in (params["cheaper"], params["dearer"])}
        parts.append(f"training time vs Gaussian: {params['cheaper']} x{time[params['cheaper']]:.1f}, "
                     f"{params['dearer']} x{time[params['dearer']]:.1f} (median over sigma)")
        holds.append(time[params["cheaper"]] < time[params["dearer"]])
        against.append(time[params["cheaper"]] >= time[params["dearer"]])
    measured = "; ".join(parts)
    if all(holds):
        return measured, "supported"
    return measured, "not supported" if all(against) else "inconclusive"


register(Experiment("training-methods", "RS-aware training objectives against Gaussian augmentation", runs, table,
                    figure))
