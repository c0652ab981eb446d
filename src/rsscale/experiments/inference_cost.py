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

One row per run; ``label`` names the method and its setting.  The claim test
``cost_cut`` asks whether a method saves passes without losing what the
reference certifies.
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
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run


def runs(plan: Plan) -> list[str]:
    """ISS and adaptive certification (``inference_cost`` section) at the sample-count sweep's sigma, inputs and
    largest n, on the main dataset; the table adds the sweep's own runs (``sample_count.runs``)."""
    config = plan.config
    cost = config.get("inference_cost")
    if not cost:
        return []
    sweep, c = config["sample_count"], config["cohen"]
    n = max(sweep["ns"])

    def run(method, tag, **params):
        tag = f"{tag}_sigma{sweep['sigma']}_n{n}_{sweep['max_inputs']}"
        return plan.certify(c["dataset"], method, sweep["sigma"], tag,
                            {"n": n, "alpha": c["alpha"], "batch_size": c["batch_size"], **params},
                            sweep["max_inputs"], c["skip"], c["pack"])

    paths = []
    if "iss" in cost:
        paths += [run(method, method, **cost["iss"]) for method in ("iss", "iss_sound")]
    if "adaptive" in cost:
        adaptive = {k: v for k, v in cost["adaptive"].items() if k not in ("strategies", "r_targets")}
        paths += [run("adaptive", f"{strategy}_r{r}", strategy=strategy, r_target=r, **adaptive)
                  for strategy in cost["adaptive"]["strategies"] for r in cost["adaptive"]["r_targets"]]
    return paths


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


def cost_frontier_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """Left: ACR vs mean forward passes per input (Cohen's sample-count sweep as a line, ISS as markers; hollow =
    flagged unsound). Right: certified accuracy at each target radius vs passes, adaptive certifiers as markers
    (rows of :func:`cost_rows`)."""
    fig, (frontier, decisions) = plt.subplots(1, 2, figsize=(11, 3.8))
    cohen = sorted((r for r in rows if r["method"] == "cohen"), key=lambda r: r["forward_passes_mean"])
    passes = [r["forward_passes_mean"] for r in cohen]
    frontier.semilogx(passes, [r["ACR"] for r in cohen], "o-", color=color(0), label="Cohen, n = 10^2 .. 10^5")
    for i, row in enumerate(r for r in rows if r["method"] not in ("cohen", "adaptive")):
        face = color(i + 1) if row["sound"] else "none"
        frontier.semilogx(row["forward_passes_mean"], row["ACR"], "D", color=color(i + 1), markerfacecolor=face,
                          label=row["label"] + ("" if row["sound"] else " (unsound)"))
    frontier.set_xlabel("forward passes per input (mean)")
    frontier.set_ylabel("ACR (l2)")
    frontier.set_title("cost frontier")
    frontier.legend(frameon=False, fontsize=7)
    targets = sorted(float(k.split("@")[1]) for k in rows[0] if k.startswith("cert_acc@"))
    markers = {"horvath": "s", "betting": "^", "union": "v"}
    for ti, r in enumerate(targets):
        shade = color(ti)
        decisions.semilogx(passes, [c[f"cert_acc@{r:g}"] for c in cohen], "o-", color=shade, alpha=0.6,
                           label=f"Cohen, r = {r:g}")
        for row in rows:
            if row["method"] == "adaptive" and row["r_target"] == r:
                strategy = row["label"].split()[0]
                decisions.semilogx(row["forward_passes_mean"], row["cert_acc_at_target"], markers.get(strategy, "x"),
                                   color=shade, label=f"{strategy}, r = {r:g}")
    decisions.set_xlabel("forward passes per input (mean)")
    decisions.set_ylabel("certified accuracy at r")
    decisions.set_title("deciding at a target radius")
    decisions.legend(frameon=False, fontsize=7, ncol=2)
    fig.tight_layout()
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(cost_rows([read_run(p) for p in inputs]), out, reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    cost_frontier_figure(cost_rows([read_run(p) for p in inputs]), out)


@claims.test("cost_cut")
def cost_cut_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """Every run of ``method`` saves at least ``min_saving`` x the reference's forward passes (mean passes, a point
    estimate), and either keeps the ACR within ``max_acr_loss`` (relative, a point estimate) of the reference or
    takes the reference's decision at its target radius on at least ``min_agreement`` of the inputs (the lowest
    share judged on its exact 95 % interval)."""
    rows = tables["inference_cost"]
    reference = max((r for r in rows if r["method"] == "cohen"), key=lambda r: r["forward_passes_mean"], default=None)
    mine = [r for r in rows if r["method"] == params["method"]]
    quality = (f"same decision on >= {100 * params['min_agreement']:g} % of inputs" if "min_agreement" in params
               else f"ACR loss <= {100 * params.get('max_acr_loss', 0.1):g} %")
    threshold = f">= {params.get('min_saving', 1.0):g}x fewer passes and {quality}"
    if not mine or reference is None:
        return claims.not_measured("no rows", threshold)
    parts, saving_ok, quality_ok = [], [], []
    for row in mine:
        saving = row["passes_saved_x"]
        saving_ok.append(saving >= params.get("min_saving", 1.0))
        if "min_agreement" in params:
            quality = row["same_decision"]
            quality_ok.append(quality >= params["min_agreement"])
            parts.append(f"{row['label']}: {saving:.0f}x fewer passes, same decision on {100 * quality:.0f} %")
        else:
            loss = 1 - row["ACR"] / reference["ACR"] if reference["ACR"] > 0 else math.nan
            quality_ok.append(loss <= params.get("max_acr_loss", 0.1))
            parts.append(f"{row['label']}: {saving:.1f}x fewer passes, ACR {row['ACR']:.3f} vs {reference['ACR']:.3f}"
                         f" ({-100 * loss:+.1f} %)")
    measured = f"{'; '.join(parts)} (reference {reference['label']}, {int(mine[0]['inputs'])} inputs)"
    if all(saving_ok) and all(quality_ok):
        verdict = "supported"
    else:
        verdict = "not supported" if not any(saving_ok) and not any(quality_ok) else "inconclusive"
    if "min_agreement" not in params:
        saving = min(r["passes_saved_x"] for r in mine)
        return claims.Outcome(measured, verdict, saving, interval="none: the saving and the ACR loss are ratios of "
                              f"means; {claims.PER_INPUT}",
                              threshold=threshold)
    lowest = min(mine, key=lambda r: r["same_decision"])
    low, high = claims.binomial_interval(lowest["same_decision"] * lowest["inputs"], lowest["inputs"])
    agreement = claims.judge(low, high, lower=params["min_agreement"])
    if verdict == "supported" and agreement == "inconclusive":
        verdict = "inconclusive"  # the lowest agreement is above the threshold, its interval is not
    return claims.Outcome(measured, verdict, lowest["same_decision"], low, high,
                          f"exact binomial over {int(lowest['inputs'])} inputs (lowest same-decision share, "
                          f"{lowest['label']}); the saving is a ratio of mean pass counts", threshold)


register(Experiment("inference-cost", "ISS and adaptive certification against Cohen's sample-count sweep", runs, table,
                    figure))
