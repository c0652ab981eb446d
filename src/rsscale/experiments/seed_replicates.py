"""Seed replicates: the main sigma sweep and the shared-loop training objectives retrained from other seeds.

A result from one trained model is one draw of the training randomness (initialisation, batch order, noise).  The
section ``seed_replicates`` retrains the models of two comparisons from each seed of ``seeds`` (the study's seed is
the first replicate) and certifies each like its original (same inputs, n, alpha and certification seed), so that
what they show comes with its spread over seeds:

* **seed-sweep** (table ``seed_sweep``): Cohen's CERTIFY at every sigma of the study (``certified_accuracy``);
* **seed-objectives** (table ``seed_objectives``): the shared-loop objectives of ``training_methods`` at
  ``objectives_sigma``, ranked by ACR within each seed.

Each number is the mean over seeds with its 95 % Student-t interval (``mean +- t_{0.975, k-1} s / sqrt(k)`` over
``k`` seeds; wide for three seeds, by design) and the value of every seed (``<column>_by_seed``, in the order of
``seeds``).  A collapsed model (see ``training_methods``) is left out of its row's statistics and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.figures import color, plt, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.experiments.training_methods import certify_model, training_model, training_sidecar
from rsscale.io import Run, read_run

SWEEP_CAPTION = ("The main sigma sweep (certified_accuracy) retrained from each seed of seeds and certified alike. "
                 "r=0: certified accuracy at radius 0; each number is the mean over seeds, _low/_high its 95 % "
                 "Student-t interval, _by_seed the value of every seed in the order of seeds.")
OBJECTIVES_CAPTION = ("The shared-loop training objectives (training_methods) at one sigma, retrained from each seed "
                      "of seeds and certified alike. Means over seeds with 95 % Student-t intervals (_low/_high) and "
                      "every seed's value (_by_seed); ACR_vs_gaussian: the objective's ACR over Gaussian "
                      "augmentation's from the same seed; rank: by ACR among the objectives within a seed (1: the "
                      "largest), rank_best/rank_worst over seeds. collapsed: seeds whose model collapsed (left out).")


def _seeds(plan: Plan) -> list[int | None]:
    """The replicates' seeds as :meth:`Plan.model` takes them: None (the study's seed, the original models), then
    each seed of the section other than the study's."""
    study = plan.config["seed"]
    return [None] + [s for s in plan.config["seed_replicates"]["seeds"] if s != study]


def sweep_runs(plan: Plan) -> list[str]:
    """Cohen's CERTIFY of the ``cohen`` section at every sigma of ``sigmas``, on the model of every seed."""
    if not plan.config.get("seed_replicates"):
        return []
    c = plan.config["cohen"]
    return [plan.cohen_run(c["dataset"], sigma, c["n"], c.get("max_inputs"), seed=seed)
            for sigma in plan.config["sigmas"] for seed in _seeds(plan)]


def objective_runs(plan: Plan) -> list[str]:
    """The shared-loop objectives of ``training_methods`` at ``objectives_sigma``, one model per seed, each certified
    like the section's own runs (none without either setting)."""
    section = plan.config.get("seed_replicates") or {}
    sigma = section.get("objectives_sigma")
    if sigma is None or not plan.config.get("training_methods"):
        return []
    objectives = plan.config["training_methods"]["objectives"]
    return [certify_model(plan, training_model(plan, "shared", name, sigma, seed=seed), sigma)
            for name in objectives for seed in _seeds(plan)]


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95 % Student-t interval (NaN ends for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _summary(column: str, by_seed: Sequence[float]) -> dict:
    """``column`` (the mean over seeds), ``column_low``/``_high`` and ``column_by_seed`` (every seed's value)."""
    mean, low, high = spread(by_seed)
    return {column: mean, f"{column}_low": low, f"{column}_high": high,
            f"{column}_by_seed": " ".join(f"{v:.4g}" for v in by_seed)}


@dataclass(frozen=True)
class Replicate:
    """One certification run of a seed replicate: its key (objective, sigma), seed and results."""

    objective: str
    sigma: float
    seed: int
    inputs: int
    clean: float  # certified accuracy at r = 0
    acr: float
    collapsed: bool = False

    @classmethod
    def of(cls, run: Run) -> Replicate:
        """The replicate of a run, its model's objective, seed and collapse read from the training sidecar."""
        model = training_sidecar(run)
        objective = model["objective"]
        copies = objective.get("m", 1) if objective["objective"] == "gaussian" else 1
        return cls(objective["objective"] if copies == 1 else f"gaussian x{copies}", float(run.parameters["sigma"]),
                   int(model["seed"]), len(run), run.certified_accuracy(0.0), run.acr(), bool(model.get("collapsed")))


def _groups(replicates: Sequence[Replicate]) -> dict[tuple[str, float], list[Replicate]]:
    """Replicates by (objective, sigma), each group in seed order; a group whose runs certify different input
    counts is refused."""
    groups: dict[tuple[str, float], list[Replicate]] = {}
    for rep in sorted(replicates, key=lambda r: r.seed):
        groups.setdefault((rep.objective, rep.sigma), []).append(rep)
    for (objective, sigma), group in groups.items():
        if len({r.inputs for r in group}) > 1:
            raise ValueError(f"the seed replicates of {objective} at sigma {sigma} certify different input counts: "
                             f"{[r.inputs for r in group]}")
    return groups


def _row(group: Sequence[Replicate]) -> dict:
    usable = [r for r in group if not r.collapsed]
    row = {"objective": group[0].objective, "sigma": group[0].sigma, "inputs": group[0].inputs,
           "seeds": " ".join(str(r.seed) for r in usable), "collapsed": len(group) - len(usable)}
    return {**row, **_summary("r=0", [r.clean for r in usable]), **_summary("ACR", [r.acr for r in usable])}


def sweep_rows(replicates: Sequence[Replicate]) -> list[dict]:
    """One row per sigma: certified accuracy at r = 0 and ACR over seeds."""
    return [{k: v for k, v in _row(group).items() if k != "objective"}
            for _, group in sorted(_groups(replicates).items(), key=lambda item: item[0][1])]


def _ranks(acrs: dict[str, float]) -> dict[str, int]:
    """Rank by ACR (1: the largest; ties share the better rank)."""
    return {name: 1 + sum(other > acr for other in acrs.values()) for name, acr in acrs.items()}


def objective_rows(replicates: Sequence[Replicate]) -> list[dict]:
    """One row per objective, best mean ACR first: certified accuracy at r = 0, ACR, ACR over Gaussian
    augmentation's (same seed) and the rank by ACR among the objectives within each seed, over seeds (seeds where a
    model collapsed are left out)."""
    groups = _groups(replicates)
    acr = {(r.objective, r.seed): r.acr for g in groups.values() for r in g if not r.collapsed}
    seeds = sorted({seed for _, seed in acr})
    ranks = {seed: _ranks({o: value for (o, s), value in acr.items() if s == seed}) for seed in seeds}
    rows = [_row(group) for group in groups.values()]
    overall = _ranks({row["objective"]: row["ACR"] for row in rows if not math.isnan(row["ACR"])})
    for row in rows:
        objective = row["objective"]
        mine = [s for s in seeds if (objective, s) in acr]
        row.update(_summary("ACR_vs_gaussian", [acr[objective, s] / acr["gaussian", s] for s in mine
                                                if acr.get(("gaussian", s), 0) > 0]))
        by_seed = [ranks[s][objective] for s in mine]
        row.update({"rank": overall.get(objective, math.nan), "rank_best": min(by_seed, default=math.nan),
                    "rank_worst": max(by_seed, default=math.nan), "rank_by_seed": " ".join(map(str, by_seed))})
    return sorted(rows, key=lambda r: (math.isnan(r["rank"]), r["rank"], r["objective"]))


def _replicates(inputs: Sequence[str]) -> list[Replicate]:
    return [Replicate.of(read_run(p)) for p in inputs]


def sweep_table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(sweep_rows(_replicates(inputs)), out, caption=SWEEP_CAPTION)


def objectives_table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    write_rows(objective_rows(_replicates(inputs)), out, caption=OBJECTIVES_CAPTION)


def seed_figure(replicates: Sequence[Replicate], prefix, by: str) -> list[Path]:
    """Certified accuracy at r = 0 (left) and ACR (right) per sigma (``by="sigma"``) or objective, one dot per
    seed (colour: seed) and the mean over seeds with its 95 % t-interval (black)."""
    groups = _groups(replicates)
    keys = sorted(groups, key=lambda k: k[1]) if by == "sigma" else \
        [(row["objective"], row["sigma"]) for row in objective_rows(replicates)]
    labels = [f"{k[1]:g}" if by == "sigma" else k[0] for k in keys]
    seeds = sorted({r.seed for r in replicates})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, name in zip(axes, ("clean", "acr"), ("certified accuracy at r = 0", "ACR (l2)"), strict=True):
        for x, key in enumerate(keys):
            usable = [r for r in groups[key] if not r.collapsed]
            values = [getattr(r, metric) for r in usable]
            mean, low, high = spread(values)
            for r in usable:
                ax.plot(x - 0.1 + 0.08 * (seeds.index(r.seed) - (len(seeds) - 1) / 2), getattr(r, metric), "o",
                        color=color(seeds.index(r.seed)), markersize=5, label=f"seed {r.seed}" if x == 0 else None)
            if not math.isnan(low):
                ax.errorbar(x + 0.2, mean, yerr=[[mean - low], [high - mean]], fmt="_", color="black", capsize=4,
                            markersize=14, label="mean, 95 % t-interval" if x == 0 else None)
        ax.set_xticks(range(len(keys)), labels, rotation=0 if by == "sigma" else 20,
                      ha="center" if by == "sigma" else "right")
        ax.set_xlabel(r"$\sigma$" if by == "sigma" else f"objective (shared loop, sigma = {keys[0][1]:g})")
        ax.set_ylabel(name)
    axes[1].legend(frameon=False, fontsize=8, loc="best")
    fig.tight_layout()
    return save(fig, prefix)


def sweep_figure(inputs: Sequence[str], out: str, options: FigureOptions) -> list[Path]:
    return seed_figure(_replicates(inputs), out, by="sigma")


def objectives_figure(inputs: Sequence[str], out: str, options: FigureOptions) -> list[Path]:
    return seed_figure(_replicates(inputs), out, by="objective")


def seed_values(row: dict, column: str) -> list[float]:
    """Every seed's value of ``column`` in a row of these tables (``<column>_by_seed``)."""
    return [float(v) for v in str(row[f"{column}_by_seed"]).split()]


@claims.test("seed_gain")
def seed_gain_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """Each objective of ``objectives`` has a larger ACR than Gaussian augmentation trained from the same seed: the
    95 % t-interval over seeds of its ratio ``ACR_vs_gaussian`` lies above 1 (supported), below 1 (not supported),
    or straddles it (inconclusive); the claim holds when it holds for every objective.  The deciding number is the
    smallest mean ratio, with its interval."""
    rows = {r["objective"]: r for r in tables["seed_objectives"]}
    threshold = "95 % t-interval over seeds of ACR / Gaussian augmentation's ACR (same seed) above 1, every objective"
    absent = [o for o in params["objectives"] if o not in rows or math.isnan(rows[o]["ACR_vs_gaussian_low"])]
    if absent:
        return claims.not_measured(f"no seed interval for {', '.join(absent)} (absent, collapsed or one seed)",
                                   threshold)
    verdicts, parts = [], []
    for objective in params["objectives"]:
        row = rows[objective]
        verdicts.append(claims.judge(row["ACR_vs_gaussian_low"], row["ACR_vs_gaussian_high"], lower=1.0))
        parts.append(f"{objective}: ACR x{row['ACR_vs_gaussian']:.3f} [{row['ACR_vs_gaussian_low']:.3f}, "
                     f"{row['ACR_vs_gaussian_high']:.3f}] of Gaussian's (seeds {row['seeds']}: "
                     f"{row['ACR_vs_gaussian_by_seed']}), rank {row['rank_best']:g}-{row['rank_worst']:g}")
    weakest = min(params["objectives"], key=lambda o: rows[o]["ACR_vs_gaussian"])
    row = rows[weakest]
    seeds = len(str(row["seeds"]).split())
    return claims.Outcome("; ".join(parts), claims.worst(verdicts), row["ACR_vs_gaussian"],
                          row["ACR_vs_gaussian_low"], row["ACR_vs_gaussian_high"],
                          interval=f"Student-t 95 % over {seeds} model seeds ({weakest}, the smallest mean ratio)",
                          threshold=threshold)


register(Experiment("seed-sweep", "the main sigma sweep over seed replicates", sweep_runs, sweep_table,
                    sweep_figure))
register(Experiment("seed-objectives", "the shared-loop training objectives over seed replicates", objective_runs,
                    objectives_table, objectives_figure))
