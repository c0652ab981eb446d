"""Denoised smoothing against no denoiser and against noise training (Salman et al., NeurIPS 2020, Table 1's
comparison): certified accuracy, ACR, clean accuracy of the smoothed classifier, training wall-clock.

Rows per sigma: the classifier trained without noise certified bare (``none``),
behind each denoiser (its objective), and a Gaussian-trained classifier
(``gaussian-trained``, Cohen et al. 2019).  Every row of a sigma is computed on
the test inputs all of that sigma's runs certified (so the main study's run
over the whole test set can stand for the Gaussian-trained model).  Training
wall-clock comes from the checkpoints' sidecars: the classifier's own, plus the
denoiser's for composed models.  The claim test ``denoiser_gain`` asks whether
the denoiser lifts the bare classifier close to the Gaussian-trained one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, TableOptions, register
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run
from rsscale.metrics import average_certified_radius, certified_accuracy

DENOISER_SETTINGS = ("depth", "width", "epochs", "batch_size", "lr")


def denoiser_path(dataset: str, objective: str, sigma: float) -> str:
    return f"results/models/{dataset}/denoised/{objective}_sigma{sigma}.pt"


def denoisers(plan: Plan) -> dict[str, dict]:
    """The composed f(D(x)) checkpoints of the ``denoised`` section -> the arguments of ``rsscale train-denoiser``:
    a DnCNN per (sigma, objective) in front of the classifier trained without noise."""
    spec = plan.config.get("denoised")
    if not spec:
        return {}
    clean = plan.model(spec["dataset"], 0.0)
    return {denoiser_path(spec["dataset"], objective, sigma):
            {"classifier": clean, "objective": objective, "sigma": sigma, **{k: spec[k] for k in DENOISER_SETTINGS}}
            for sigma in spec["sigmas"] for objective in spec["objectives"]}


def runs(plan: Plan) -> list[str]:
    """Per sigma: the noise-free classifier bare, behind each denoiser, and the Gaussian-trained model (the main
    study's run when it covers these inputs: the table keeps the inputs all runs of a sigma share)."""
    spec, c = plan.config.get("denoised"), plan.config["cohen"]
    if not spec:
        return []
    dataset, params = spec["dataset"], plan.cohen_params(spec["n"])
    clean = plan.model(dataset, 0.0)
    paths = []
    for sigma in spec["sigmas"]:
        tag = f"sigma{sigma}_n{spec['n']}_{spec['max_inputs']}"
        paths.append(plan.certify(dataset, "cohen", sigma, f"clean_{tag}", params, spec["max_inputs"], c["skip"],
                                  c["pack"], models=clean))
        for objective in spec["objectives"]:
            paths.append(plan.certify(dataset, "denoised", sigma, f"{objective}_{tag}", params, spec["max_inputs"],
                                      c["skip"], c["pack"], models=denoiser_path(dataset, objective, sigma)))
        main = dataset == c["dataset"] and sigma in plan.config["sigmas"] and spec["n"] == c["n"]
        paths.append(plan.cohen_run(dataset, sigma, spec["n"], c.get("max_inputs") if main else spec["max_inputs"]))
    return paths


def _sidecar(checkpoint: str) -> dict:
    path = Path(checkpoint).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"no training sidecar {path} for checkpoint {checkpoint}")
    return json.loads(path.read_text())


def _describe(run: Run) -> dict:
    """Which row the run is, and what training its model cost."""
    model = _sidecar(run.parameters["checkpoint"])
    if run.parameters["method"] == "denoised":
        classifier = model["classifier"]
        return {"model": "denoised", "denoiser": model["objective"]["objective"],
                "classifier_sigma": classifier["sigma"], "classifier_train_seconds": classifier["train_seconds"],
                "denoiser_train_seconds": float(model["training"]["seconds"])}
    sigma = float(model["sigma"])
    return {"model": "gaussian-trained" if sigma > 0 else "noise-free", "denoiser": "none", "classifier_sigma": sigma,
            "classifier_train_seconds": float(model["training"]["seconds"]), "denoiser_train_seconds": 0.0}


def denoised_rows(runs: Sequence[Run], radii: Sequence[float]) -> list[dict]:
    """One row per run (see the module docstring), restricted to the inputs shared by the runs of its sigma."""
    by_sigma: dict[float, list[Run]] = {}
    for run in runs:
        by_sigma.setdefault(float(run.parameters["sigma"]), []).append(run)
    order = {"noise-free": 0, "denoised": 1, "gaussian-trained": 2}
    rows = []
    for sigma, group in sorted(by_sigma.items()):
        shared = set.intersection(*(set(run.columns["idx"].astype(int).tolist()) for run in group))
        for run in group:
            keep = np.isin(run.columns["idx"].astype(int), sorted(shared))
            radius, correct = run.radius()[keep], run.correct[keep]
            row = {"sigma": sigma, **_describe(run), "inputs": int(keep.sum())}
            row.update({f"r={r:g}": certified_accuracy(radius, correct, r) for r in radii})
            row["ACR"] = average_certified_radius(radius, correct)
            row["clean_accuracy"] = float(correct.mean()) if len(correct) else float("nan")
            row["train_seconds"] = row["classifier_train_seconds"] + row["denoiser_train_seconds"]
            row["certify_seconds_per_input"] = float(np.median(run.columns["seconds"][keep]))
            denoiser = run.columns.get("denoiser_seconds")
            row["denoiser_seconds_per_input"] = float(np.median(denoiser[keep])) if denoiser is not None else 0.0
            rows.append(row)
    return sorted(rows, key=lambda r: (r["sigma"], order[r["model"]], r["denoiser"]))


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(denoised_rows([read_run(p) for p in inputs], options.radii), out, reference=options.reference)


@claims.test("denoiser_gain")
def denoiser_gain_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """At every sigma of the ``denoised`` table, the noise-free classifier behind the ``objective`` denoiser has an
    ACR at least ``min_gain`` x its ACR without a denoiser, and at least ``min_fraction`` of the Gaussian-trained
    classifier's ACR (Salman et al.: far above no denoiser, close to noise training)."""
    rows = tables["denoised"]
    threshold = (f"ACR >= {params.get('min_gain', 1.5):g}x bare and >= {100 * params.get('min_fraction', 0.5):g} % "
                 "of Gaussian-trained at every sigma")
    parts, gains, fractions = [], [], []
    for sigma in sorted({r["sigma"] for r in rows}):
        acr = {r["denoiser"] if r["model"] != "gaussian-trained" else "gaussian": r["ACR"]
               for r in rows if r["sigma"] == sigma}
        if not all(k in acr for k in (params["objective"], "none", "gaussian")):
            return claims.not_measured(f"sigma = {sigma:g}: no {params['objective']}, bare or Gaussian-trained row",
                                       threshold)
        denoised, bare, gaussian = acr[params["objective"]], acr["none"], acr["gaussian"]
        gains.append(denoised / bare if bare > 0 else math.inf if denoised > 0 else 1.0)
        fractions.append(denoised / gaussian if gaussian > 0 else math.nan)
        parts.append(f"sigma {sigma:g}: ACR {bare:.3f} bare -> {denoised:.3f} with the {params['objective']} "
                     f"denoiser (Gaussian-trained {gaussian:.3f}, {100 * fractions[-1]:.0f} %)")
    if not parts:
        return claims.not_measured("no rows", threshold)
    measured = "; ".join(parts)
    gain_ok = [g >= params.get("min_gain", 1.5) for g in gains]
    close_ok = [f >= params.get("min_fraction", 0.5) for f in fractions]
    verdict = "supported" if all(gain_ok) and all(close_ok) else "not supported" if not any(gain_ok) else \
        "inconclusive"
    return claims.Outcome(measured, verdict, min(fractions), interval=f"none: ratios of ACRs; {claims.PER_INPUT}",
                          threshold=threshold)


register(Experiment("denoised", "denoised smoothing against no denoiser and against noise training", runs, table))
