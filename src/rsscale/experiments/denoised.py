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
from rsscale.metrics import average_certified_radius, certified_accuracy, radius_if_correct

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


#: the ACR ratios of a row to its sigma's rows of these models, with their intervals
RATIOS = {"bare": "noise-free", "gaussian": "gaussian-trained"}


def _ratios(rows: list[dict], shares: list[np.ndarray]) -> None:
    """Add to each row of one sigma its ACR over the bare (noise-free) and the Gaussian-trained row's, paired over
    their shared inputs (``shares``: per row, each input's radius * [correct] in input order), with 95 %
    paired-bootstrap intervals (:func:`claims.paired_ratio`); NaN where the sigma lacks that row."""
    for name, model in RATIOS.items():
        base = next((k for k, row in enumerate(rows) if row["model"] == model), None)
        for row, share in zip(rows, shares, strict=True):
            ratio = claims.paired_ratio(share, shares[base]) if base is not None else (math.nan,) * 3
            row.update(zip((f"ACR_vs_{name}", f"ACR_vs_{name}_low", f"ACR_vs_{name}_high"), ratio, strict=True))


def denoised_rows(runs: Sequence[Run], radii: Sequence[float]) -> list[dict]:
    """One row per run (see the module docstring), restricted to the inputs shared by the runs of its sigma, with
    its ACR over the bare and the Gaussian-trained classifier's on those inputs (``ACR_vs_bare``,
    ``ACR_vs_gaussian``, each with a 95 % paired-bootstrap interval)."""
    by_sigma: dict[float, list[Run]] = {}
    for run in runs:
        by_sigma.setdefault(float(run.parameters["sigma"]), []).append(run)
    order = {"noise-free": 0, "denoised": 1, "gaussian-trained": 2}
    rows = []
    for sigma, group in sorted(by_sigma.items()):
        shared = set.intersection(*(set(run.columns["idx"].astype(int).tolist()) for run in group))
        own, shares = [], []
        for run in group:
            keep = np.isin(run.columns["idx"].astype(int), sorted(shared))
            radius, correct = run.radius()[keep], run.correct[keep]
            shares.append(radius_if_correct(radius, correct)[np.argsort(run.columns["idx"][keep])])
            row = {"sigma": sigma, **_describe(run), "inputs": int(keep.sum())}
            row.update({f"r={r:g}": certified_accuracy(radius, correct, r) for r in radii})
            row["ACR"] = average_certified_radius(radius, correct)
            row["clean_accuracy"] = float(correct.mean()) if len(correct) else float("nan")
            row["train_seconds"] = row["classifier_train_seconds"] + row["denoiser_train_seconds"]
            row["certify_seconds_per_input"] = float(np.median(run.columns["seconds"][keep]))
            denoiser = run.columns.get("denoiser_seconds")
            row["denoiser_seconds_per_input"] = float(np.median(denoiser[keep])) if denoiser is not None else 0.0
            own.append(row)
        _ratios(own, shares)
        rows += own
    return sorted(rows, key=lambda r: (r["sigma"], order[r["model"]], r["denoiser"]))


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(denoised_rows([read_run(p) for p in inputs], options.radii), out, reference=options.reference)


@claims.test("denoiser_gain")
def denoiser_gain_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """At every sigma of the ``denoised`` table, the noise-free classifier behind the ``objective`` denoiser has an
    ACR at least ``min_gain`` x its ACR without a denoiser, and at least ``min_fraction`` of the Gaussian-trained
    classifier's ACR (Salman et al.: far above no denoiser, close to noise training).  Each ratio is judged on its
    95 % paired-bootstrap interval (``ACR_vs_bare_low/high``, ``ACR_vs_gaussian_low/high``); the key number is the
    ratio that decides (:func:`claims.all_hold`)."""
    rows = tables["denoised"]
    threshold = (f"ACR >= {params.get('min_gain', 1.5):g}x bare and >= {100 * params.get('min_fraction', 0.5):g} % "
                 "of Gaussian-trained at every sigma")
    parts, conditions, inputs = [], [], {}
    for sigma in sorted({r["sigma"] for r in rows}):
        acr = {r["denoiser"] if r["model"] != "gaussian-trained" else "gaussian": r["ACR"]
               for r in rows if r["sigma"] == sigma}
        if not all(k in acr for k in (params["objective"], "none", "gaussian")):
            return claims.not_measured(f"sigma = {sigma:g}: no {params['objective']}, bare or Gaussian-trained row",
                                       threshold)
        row = next(r for r in rows if r["sigma"] == sigma and r["denoiser"] == params["objective"])
        conditions += [claims.Condition(f"ACR over bare at sigma {sigma:g}", row["ACR_vs_bare"], row["ACR_vs_bare_low"],
                                        row["ACR_vs_bare_high"], lower=params.get("min_gain", 1.5)),
                       claims.Condition(f"ACR over Gaussian-trained at sigma {sigma:g}", row["ACR_vs_gaussian"],
                                        row["ACR_vs_gaussian_low"], row["ACR_vs_gaussian_high"],
                                        lower=params.get("min_fraction", 0.5))]
        inputs.update((condition.label, row["inputs"]) for condition in conditions[-2:])
        parts.append(f"sigma {sigma:g}: ACR {acr['none']:.3f} bare -> {row['ACR']:.3f} with the {params['objective']} "
                     f"denoiser (x{row['ACR_vs_bare']:.2f}, 95 % CI {row['ACR_vs_bare_low']:.2f} .. "
                     f"{row['ACR_vs_bare_high']:.2f}; Gaussian-trained {acr['gaussian']:.3f}, reached to "
                     f"{100 * row['ACR_vs_gaussian']:.0f} %, 95 % CI {100 * row['ACR_vs_gaussian_low']:.0f} .. "
                     f"{100 * row['ACR_vs_gaussian_high']:.0f} %)")
    if not parts:
        return claims.not_measured("no rows", threshold)
    verdict, key = claims.all_hold(conditions)
    return claims.Outcome("; ".join(parts), verdict, key.value, key.low, key.high,
                          claims.bootstrap_kind(inputs[key.label], f"{key.label} ({params['objective']} denoiser)"),
                          threshold)


register(Experiment("denoised", "denoised smoothing against no denoiser and against noise training", runs, table))
