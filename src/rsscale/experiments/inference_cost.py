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
from rsscale.metrics import radius_if_correct


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


#: the relative ACR loss against the reference and its interval
ACR_LOSS = ("ACR_loss", "ACR_loss_low", "ACR_loss_high")


def _saving_interval(reference: Run, run: Run, paired: list[int], shared: list[int]) -> dict:
    """The interval of the reference's mean passes over the run's, paired over the inputs both certified."""
    if not shared:
        return {"passes_saved_low": math.nan, "passes_saved_high": math.nan}
    passes = "forward_passes"
    _, low, high = claims.paired_ratio(reference.columns[passes][paired], run.columns[passes][shared])
    return {"passes_saved_low": low, "passes_saved_high": high}


def _acr_loss(reference: Run, run: Run, paired: list[int], shared: list[int]) -> dict:
    """``1 - ACR / reference's ACR`` on the inputs both certified, with its interval (from the ACR ratio's)."""
    if not shared:
        return dict.fromkeys(ACR_LOSS, math.nan)
    ratio, low, high = claims.paired_ratio(radius_if_correct(run.radius(), run.correct)[shared],
                                           radius_if_correct(reference.radius(), reference.correct)[paired])
    return dict(zip(ACR_LOSS, (1 - ratio, 1 - high, 1 - low), strict=True))


def cost_rows(runs: Sequence[Run]) -> list[dict]:
    """Rows for every run against the Cohen run with the largest n (the reference), with ``cert_acc@<r>`` at
    every target radius of the adaptive runs (for a radius-certifying run: correct with radius >= r).  The passes
    saved (``passes_saved_low/high``) and, for a radius-certifying run, the relative ACR loss (``ACR_loss``, with
    ``ACR_loss_low/high``) have 95 % paired-bootstrap intervals over the inputs the run shares with the reference
    (:func:`claims.paired_ratio`)."""
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
        shared = [k for k, i in enumerate(run.columns["idx"]) if int(i) in ref_index]
        paired = [ref_index[int(run.columns["idx"][k])] for k in shared]
        row = {"label": run_label(run), "method": p["method"], "sound": bool(run.sidecar.get("sound", True)),
               "inputs": len(run), "forward_passes_mean": passes, "passes_saved_x": ref_passes / passes,
               **_saving_interval(reference, run, paired, shared),
               "seconds_median": float(np.median(run.columns["seconds"])),
               "ACR": run.acr() if target is None else float("nan"),
               **(_acr_loss(reference, run, paired, shared) if target is None else dict.fromkeys(ACR_LOSS, math.nan)),
               "r_target": target if target else float("nan"),
               "cert_acc_at_target": float("nan"), "same_decision": float("nan")}
        if target is not None:
            mine = _decisions(run, target)[shared]
            theirs = _decisions(reference, target)[paired]
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
    """Every run of ``method`` saves at least ``min_saving`` x the reference's forward passes, and either keeps the
    ACR within ``max_acr_loss`` (relative) of the reference or takes the reference's decision at its target radius
    on at least ``min_agreement`` of the inputs.  With ``max_acr_loss`` the saving and the ACR loss of every run are
    judged on their 95 % paired-bootstrap intervals (the table's ``passes_saved_low/high``, ``ACR_loss_low/high``);
    the key number is the one that decides (:func:`claims.all_hold`).  With ``min_agreement`` the saving is a point
    estimate and the lowest share is judged on its exact 95 % interval."""
    rows = tables["inference_cost"]
    reference = max((r for r in rows if r["method"] == "cohen"), key=lambda r: r["forward_passes_mean"], default=None)
    mine = [r for r in rows if r["method"] == params["method"]]
    quality = (f"same decision on >= {100 * params['min_agreement']:g} % of inputs" if "min_agreement" in params
               else f"ACR loss <= {100 * params.get('max_acr_loss', 0.1):g} %")
    threshold = f">= {params.get('min_saving', 1.0):g}x fewer passes and {quality}"
    if not mine or reference is None:
        return claims.not_measured("no rows", threshold)
    if "min_agreement" not in params:
        return _acr_cut(mine, reference, params, threshold)
    parts, saving_ok, quality_ok = [], [], []
    for row in mine:
        saving, quality = row["passes_saved_x"], row["same_decision"]
        saving_ok.append(saving >= params.get("min_saving", 1.0))
        quality_ok.append(quality >= params["min_agreement"])
        parts.append(f"{row['label']}: {saving:.0f}x fewer passes, same decision on {100 * quality:.0f} %")
    measured = f"{'; '.join(parts)} (reference {reference['label']}, {int(mine[0]['inputs'])} inputs)"
    if all(saving_ok) and all(quality_ok):
        verdict = "supported"
    else:
        verdict = "not supported" if not any(saving_ok) and not any(quality_ok) else "inconclusive"
    lowest = min(mine, key=lambda r: r["same_decision"])
    low, high = claims.binomial_interval(lowest["same_decision"] * lowest["inputs"], lowest["inputs"])
    agreement = claims.judge(low, high, lower=params["min_agreement"])
    if verdict == "supported" and agreement == "inconclusive":
        verdict = "inconclusive"  # the lowest agreement is above the threshold, its interval is not
    return claims.Outcome(measured, verdict, lowest["same_decision"], low, high,
                          f"exact binomial over {int(lowest['inputs'])} inputs (lowest same-decision share, "
                          f"{lowest['label']}); the saving is a ratio of mean pass counts", threshold)


def _acr_cut(mine: claims.Rows, reference: dict, params: dict, threshold: str) -> claims.Outcome:
    """``cost_cut`` with ``max_acr_loss``: the passes saved and the ACR loss of every run, each on its interval."""
    parts, conditions = [], []
    for row in mine:
        saving, loss = row["passes_saved_x"], row["ACR_loss"]
        conditions += [claims.Condition(f"passes saved by {row['label']}", saving, row["passes_saved_low"],
                                        row["passes_saved_high"], lower=params.get("min_saving", 1.0)),
                       claims.Condition(f"relative ACR loss of {row['label']}", loss, row["ACR_loss_low"],
                                        row["ACR_loss_high"], upper=params.get("max_acr_loss", 0.1))]
        parts.append(f"{row['label']}: {saving:.1f}x fewer passes (95 % CI {row['passes_saved_low']:.1f} .. "
                     f"{row['passes_saved_high']:.1f}), ACR {row['ACR']:.3f} vs {reference['ACR']:.3f} "
                     f"({-100 * loss:+.1f} %, 95 % CI of the loss {100 * row['ACR_loss_low']:+.1f} .. "
                     f"{100 * row['ACR_loss_high']:+.1f} %)")
    verdict, key = claims.all_hold(conditions)
    measured = f"{'; '.join(parts)} (reference {reference['label']}, {int(mine[0]['inputs'])} inputs)"
    return claims.Outcome(measured, verdict, key.value, key.low, key.high,
                          claims.bootstrap_kind(mine[0]["inputs"], f"{key.label} against {reference['label']}"),
                          threshold)


register(Experiment("inference-cost", "ISS and adaptive certification against Cohen's sample-count sweep", runs, table,
                    figure))
