"""RS-aware training against Gaussian augmentation: certified accuracy, ACR and what the training cost.

Each objective is trained twice where the config asks for it: by the study's **shared loop** (the same optimizer,
schedule and epochs for all, :func:`rsscale.training.recipes.shared`) and by its **published recipe**
(:func:`rsscale.training.recipes.published`, the optimizer, schedule, batch size and hyperparameters of its
authors' code).  Beside them, per variant, the **equal-budget baseline**: Gaussian augmentation with ``m`` noisy
copies per example, where ``m`` is the forward + backward passes per example of SmoothAdv, MACER or consistency
regularization in that variant, so that an objective is compared with a baseline that had the same compute
(Gaussian augmentation is Cohen et al. 2019; SmoothAdv, MACER and consistency are Salman et al. 2019, Zhai et
al. 2020 and Jeong & Shin 2020).

Each certification run is joined with its model's training sidecar (the ``.json`` beside the checkpoint): the
objective, the recipe, the base model's clean and noisy test accuracy, its clean held-out accuracy after the last
epoch, whether it collapsed (marked, never averaged or compared), and the training wall-clock and passes.  The
claim test ``training_gain`` compares each objective's ACR with its baseline's at the same sigma.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.figures import color, marker, plt, ratio_ticks, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run
from rsscale.training import build_objective
from rsscale.training.recipes import published

VARIANTS = {"shared": "shared loop", "published": "published recipe"}
NAN = float("nan")
CAPTION = ("RS-aware training. variant: the shared loop (Adam, cosine decay, the study's lr and batch size) or each "
           "objective's published recipe (optimizer, schedule, batch size and hyperparameters of its authors' code, "
           "epoch-defined schedules scaled to the study's epochs). gaussian xm: Gaussian augmentation with m noisy "
           "copies per example, the pass budget of the objective it is compared with (ACR_vs_equal_budget). "
           "collapsed: held-out accuracy (clean or under the training noise) below twice chance; such a row is kept "
           "out of every comparison.")


def _variants(section: dict) -> dict[str, dict]:
    """The section's variants: ``shared`` (its ``objectives``) and, with a ``recipes`` entry, ``published``."""
    variants = {"shared": {"objectives": section["objectives"], "sigmas": section["sigmas"],
                           "equal_budget": section.get("equal_budget", [])}}
    if section.get("recipes"):
        recipes = section["recipes"]
        variants["published"] = {"objectives": recipes["objectives"],
                                 "sigmas": recipes.get("sigmas", section["sigmas"]),
                                 "equal_budget": recipes.get("equal_budget", [])}
    return variants


def _training(plan: Plan, variant: str) -> dict:
    """The training overrides of a variant's models (the published recipe sets its own lr and batch size)."""
    section = plan.config["training_methods"]
    training = {"collapse": section.get("collapse", "fail")}
    if variant == "published":  # the recipe's lr; its batch size unless the config states another
        training.update({"recipe": "published", "lr": None, "batch_size": section["recipes"].get("batch_size")})
    return training


def _label(name: str, variant: str) -> str:
    return name if variant == "shared" else f"{name}-{variant}"


def training_model(plan: Plan, variant: str, name: str, sigma: float, params: dict | None = None,
                   label: str | None = None, seed: int | None = None) -> str:
    """The checkpoint of objective ``name`` of a variant at sigma (its ``params``: the config's entry; ``seed``: a
    seed replicate, else the study's seed); a ``teacher`` that names another objective (CRT distils from it) becomes
    that objective's model in the same variant and seed."""
    section = plan.config["training_methods"]
    objectives = _variants(section)[variant]["objectives"]
    params = dict(objectives[name] or {}) if params is None else params
    if params.get("teacher") in objectives:
        params["teacher"] = training_model(plan, variant, params["teacher"], sigma, seed=seed)
    return plan.model(section["dataset"], sigma, (name, params), seed=seed, training=_training(plan, variant),
                      label=_label(label or name, variant))


def certify_model(plan: Plan, model: str, sigma: float) -> str:
    """Cohen's CERTIFY on the section's inputs at sigma, on a checkpoint of :func:`training_model` (the run's tag
    ends with the checkpoint's label and seed)."""
    section = plan.config["training_methods"]
    label = re.sub(r"_sigma[^_]+", "", Path(model).stem, count=1)
    tag = f"gaussian_sigma{sigma}_n{section['n']}_{section['max_inputs']}_{label}"
    return plan.certify(section["dataset"], "cohen", sigma, tag, plan.cohen_params(section["n"]),
                        section["max_inputs"], section.get("skip", 1), plan.config["cohen"]["pack"], models=model)


def budget_copies(plan: Plan, variant: str, name: str, sigma: float) -> int:
    """Noisy copies per example that give Gaussian augmentation the passes per example of objective ``name`` in the
    variant: ``(forward + backward) / 2`` of its ``describe()``."""
    section = plan.config["training_methods"]
    params = dict(_variants(section)[variant]["objectives"].get(name) or {})
    if variant == "published":
        params = published(name, plan.config["training"]["epochs"], objective_params=params).objective_params
    passes = build_objective(name, sigma=sigma, **params).describe()["passes_per_example"]
    return max(1, round((passes["forward"] + passes["backward"]) / 2))


def runs(plan: Plan) -> list[str]:
    """One model per (variant, objective, sigma) and per equal-budget baseline, each certified with Cohen's
    CERTIFY on the same inputs."""
    section = plan.config.get("training_methods")
    if not section:
        return []
    paths = []
    for variant, spec in _variants(section).items():
        for sigma in spec["sigmas"]:
            models = [training_model(plan, variant, name, sigma) for name in spec["objectives"]]
            for name in spec["equal_budget"]:
                m = budget_copies(plan, variant, name, sigma)
                models.append(training_model(plan, variant, "gaussian", sigma, {"m": m}, f"gaussian-x{m}"))
            paths += [certify_model(plan, model, sigma) for model in dict.fromkeys(models)]
    return paths


def training_sidecar(run: Run) -> dict:
    """The training sidecar of the run's checkpoint."""
    path = Path(run.parameters["checkpoint"]).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"no training sidecar {path} for the checkpoint of {run.path}")
    return json.loads(path.read_text())


def _ratio(a: float, b: float) -> float:
    return a / b if b and b > 0 and math.isfinite(a) else float("nan")


def training_rows(runs: Sequence[Run], radii: Sequence[float]) -> list[dict]:
    """One row per (variant, objective, sigma); costs and ACR relative to Gaussian augmentation (one copy) of the same
    variant and sigma, and the ACR relative to the equal-budget Gaussian baseline (as many copies as the row's passes
    per example) where the study trained one.  Collapsed models (and baselines) give no ratio."""
    rows, run_of = [], {}
    for run in runs:
        model = training_sidecar(run)
        report, objective = model["training"], model["objective"]
        forward = report.get("forward_passes", 0)
        passes = forward + report.get("backward_passes", forward)
        name = objective["objective"]
        copies = objective.get("m", 1) if name == "gaussian" else 1
        history = report.get("history") or [{}]
        row = {"variant": VARIANTS[model.get("recipe", {}).get("name", "shared")],
               "objective": f"gaussian x{copies}" if copies > 1 else name, "sigma": float(run.parameters["sigma"]),
               "collapsed": bool(model.get("collapsed")), "inputs": len(run),
               "base_clean_accuracy": model["test_accuracy_clean"], "base_noisy_accuracy": model["test_accuracy_noisy"],
               "val_clean_accuracy": history[-1].get("val_accuracy_clean", float("nan"))}
        row.update({f"r={r:g}": run.certified_accuracy(r) for r in radii})
        per_example = passes / (2 * report["examples"]) if report.get("examples") else float("nan")
        row.update({"ACR": run.acr(), "train_seconds": float(report["seconds"]), "train_passes": int(passes),
                    "passes_per_example": per_example})
        rows.append(row)
        run_of[id(row)] = run
    by_key = {(r["variant"], r["objective"], r["sigma"]): r for r in rows if not r["collapsed"]}
    for row in rows:
        base = by_key.get((row["variant"], "gaussian", row["sigma"]))
        budget = row["passes_per_example"]
        equal = by_key.get((row["variant"], f"gaussian x{round(budget)}", row["sigma"])) \
            if math.isfinite(budget) and not row["objective"].startswith("gaussian") else None
        usable = not row["collapsed"]
        row["time_vs_gaussian"] = _ratio(row["train_seconds"], base["train_seconds"]) if base else float("nan")
        row["passes_vs_gaussian"] = _ratio(row["train_passes"], base["train_passes"]) if base else float("nan")
        for name, other in (("ACR_vs_gaussian", base), ("ACR_vs_equal_budget", equal)):
            ratio = claims.paired_acr_ratio(run_of[id(row)], run_of[id(other)]) if other and usable else (NAN,) * 3
            row.update(zip((name, f"{name}_low", f"{name}_high"), ratio, strict=True))
    def order(row):
        baseline = row["objective"].startswith("gaussian")
        return (row["variant"] != VARIANTS["shared"], not baseline, row["passes_per_example"] if baseline else 0,
                row["objective"], row["sigma"])

    return sorted(rows, key=order)


def objective_colours(objectives: Sequence[str]) -> dict[str, str]:
    """A colour per objective: the palette's in order for the objectives (Gaussian augmentation with one copy
    included), greys darkening with m for the equal-budget baselines ``gaussian xm``, so that both sets stay apart
    however many budgets the study trains."""
    budgets = [o for o in objectives if o.startswith("gaussian x")]
    own = [o for o in objectives if o not in budgets]
    greys = np.linspace(0.65, 0.3, len(budgets)) if len(budgets) > 1 else [0.5] * len(budgets)
    return {**{o: color(i) for i, o in enumerate(own)}, **{o: f"{g:.2f}" for o, g in zip(budgets, greys, strict=True)}}


def training_tradeoff_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """Left: smoothed clean accuracy vs ACR, one curve per (variant, objective) across sigma.  Right: ACR vs training
    time relative to Gaussian augmentation.  Colour: objective; marker: sigma; filled and solid: shared loop, hollow
    and dashed: published recipe; a cross: a collapsed model, off every curve (rows of ``training_rows``)."""
    fig, (tradeoff, cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    colours = objective_colours(objectives)
    sigmas = sorted({r["sigma"] for r in rows})
    shape = {s: marker(k) for k, s in enumerate(sigmas)}
    variants = tuple(zip(VARIANTS.values(), ("full", "none"), ("-", "--"), strict=True))
    for variant, fill, line in variants:
        for objective in objectives:
            subset = sorted((r for r in rows if r["objective"] == objective and r["variant"] == variant
                             and not r["collapsed"]), key=lambda r: r["sigma"])
            if not subset:
                continue
            tradeoff.plot([r["ACR"] for r in subset], [r["r=0"] for r in subset], linestyle=line,
                          color=colours[objective])
            for r in subset:
                style = {"color": colours[objective], "marker": shape[r["sigma"]], "fillstyle": fill, "linestyle": ""}
                tradeoff.plot(r["ACR"], r["r=0"], **style)
                cost.plot(r["time_vs_gaussian"], r["ACR"], **style)
    collapsed = [r for r in rows if r["collapsed"]]
    for r in collapsed:
        tradeoff.plot(r["ACR"], r["r=0"], "x", color=colours[r["objective"]], markersize=8)
    cost.set_xscale("log")
    ratio_ticks(cost, "x")
    headers = {"objective (colour)": [plt.Line2D([], [], color=colours[o], label=o) for o in objectives],
               "sigma (marker)": [plt.Line2D([], [], color="0.3", marker=shape[s], linestyle="", label=f"{s:g}")
                                  for s in sigmas],
               "variant": [plt.Line2D([], [], color="0.3", marker="o", fillstyle=f, linestyle=ls, label=v)
                           for v, f, ls in variants]}
    handles = [h for title, entries in headers.items() for h in (plt.Line2D([], [], linestyle="", label=title),
                                                                  *entries)]
    if collapsed:
        handles.append(plt.Line2D([], [], color="0.3", marker="x", linestyle="", label="collapsed (off the curves)"))
    tradeoff.set_xlabel("ACR (l2)")
    tradeoff.set_ylabel("certified accuracy at r = 0")
    tradeoff.set_title("robustness vs accuracy across sigma")
    cost.set_xlabel("training wall-clock / Gaussian augmentation (same variant, sigma)")
    cost.set_ylabel("ACR (l2)")
    cost.set_title("what the ACR costs to train")
    legend = fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.83, 0.5), frameon=False, fontsize=8)
    for text in legend.get_texts():
        if text.get_text() in headers:
            text.set_fontweight("bold")
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(training_rows([read_run(p) for p in inputs], options.radii), out, caption=CAPTION,
               reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    training_tradeoff_figure(training_rows([read_run(p) for p in inputs], [0.0]), out)


def _collapsed(row: dict) -> bool:
    return row.get("collapsed") in (True, "True", 1.0)


def _finite(x) -> bool:
    return isinstance(x, float) and not math.isnan(x)


@claims.test("training_gain")
def training_gain_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """Each objective of ``objectives`` has a larger ACR than its baseline at the same sigma at more sigmas than not;
    with ``cheaper``/``dearer``, the first trains in less wall-clock than the second (median over sigma).

    ``variant``: the rows compared (``published`` or ``shared``; default the published recipe when the table has it);
    ``baseline``: ``equal_budget`` (Gaussian augmentation with the objective's passes per example, the default) or
    ``gaussian`` (one copy).  A sigma counts as higher when the ACR ratio's 95 % paired-bootstrap interval (over the
    test inputs) lies above 1 and as lower when it lies below; one that straddles 1 is undecided, so the share of
    sigmas where the objective is higher is known between a lowest and a highest value, and the claim holds when
    even the lowest share exceeds one half for every objective.  Collapsed models never enter: their ratios are
    empty and their times are skipped.
    """
    rows = tables["training_methods"]
    variants = {r.get("variant", VARIANTS["shared"]) for r in rows}
    variant = VARIANTS[params.get("variant", "published" if VARIANTS["published"] in variants else "shared")]
    rows = [r for r in rows if r.get("variant", VARIANTS["shared"]) == variant and not _collapsed(r)]
    baseline = params.get("baseline", "equal_budget")
    column = {"equal_budget": "ACR_vs_equal_budget", "gaussian": "ACR_vs_gaussian"}[baseline]
    threshold = f"ACR above the {baseline.replace('_', '-')} baseline at more than half the sigmas" + (
        f"; {params['cheaper']} trains faster than {params['dearer']}" if "cheaper" in params else "")
    parts, verdicts, shares = [f"{variant}, against {baseline.replace('_', '-')} Gaussian augmentation"], [], []
    inputs = max((r.get("inputs", 0) for r in rows), default=0)
    for objective in params["objectives"]:
        ratios = [r for r in rows if r["objective"] == objective and _finite(r.get(column))]
        if not ratios:
            return claims.not_measured(f"no usable {variant} rows for {objective} (absent, collapsed or without a "
                                       f"{baseline} baseline)", threshold)
        higher = sum(r.get(f"{column}_low", r[column]) > 1 for r in ratios)
        lower = sum(r.get(f"{column}_high", r[column]) < 1 for r in ratios)
        share = (sum(r[column] > 1 for r in ratios) / len(ratios), higher / len(ratios),
                 (len(ratios) - lower) / len(ratios))
        parts.append(f"{objective}: ACR " + ", ".join(
            f"x{r[column]:.2f} [{r.get(f'{column}_low', NAN):.2f}, {r.get(f'{column}_high', NAN):.2f}]"
            f" at sigma {r['sigma']:g}" for r in ratios) + f" of the baseline: higher at {higher} to "
            f"{len(ratios) - lower} of {len(ratios)} sigmas")
        shares.append(share)
        verdicts.append(claims.judge(share[1], share[2], lower=0.5 + 1e-9))
    if "cheaper" in params:
        times = {o: [r["time_vs_gaussian"] for r in rows if r["objective"] == o] for o in (params["cheaper"],
                                                                                         params["dearer"])}
        if not all(times.values()):
            return claims.not_measured("; ".join(parts + [f"no usable {variant} rows for the cost comparison"]),
                                       threshold)
        time = {o: float(np.median(t)) for o, t in times.items()}
        parts.append(f"training time vs Gaussian: {params['cheaper']} x{time[params['cheaper']]:.1f}, "
                     f"{params['dearer']} x{time[params['dearer']]:.1f} (median over sigma)")
        verdicts.append("supported" if time[params["cheaper"]] < time[params["dearer"]] else "not supported")
    weakest = min(shares)
    return claims.Outcome("; ".join(parts), claims.worst(verdicts), *weakest, interval=claims.bootstrap_kind(
        inputs, "of each sigma's ACR ratio; the share of sigmas where the objective is higher, from those above 1 "
        "to those not below 1 (the objective with the smallest share)"), threshold=threshold)


register(Experiment("training-methods", "RS-aware training objectives against Gaussian augmentation", runs, table,
                    figure))
