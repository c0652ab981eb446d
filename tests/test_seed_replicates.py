"""Seed replicates: which models and runs they add, their statistics over seeds, and the claims they decide."""

import math
from pathlib import Path

import pytest
import yaml
from scipy import stats

from rsscale.experiments import certified_accuracy, claims, seed_replicates
from rsscale.experiments.plan import Plan
from rsscale.experiments.seed_replicates import Replicate, objective_rows, spread, sweep_rows

DEFAULT = Path(__file__).resolve().parents[1] / "workflow" / "config" / "default.yaml"


@pytest.fixture
def plan():
    return Plan(yaml.safe_load(DEFAULT.read_text()))


def test_the_sweep_replicates_every_sigma_from_every_seed_and_shares_the_originals(plan):
    originals = certified_accuracy.runs(plan)
    runs = seed_replicates.sweep_runs(plan)
    sigmas, seeds = plan.config["sigmas"], plan.config["seed_replicates"]["seeds"]
    assert len(runs) == len(sigmas) * (1 + len(seeds))
    assert set(originals) <= set(runs)  # the study's seed is the first replicate: its runs are the main ones
    replicate = plan.runs[[r for r in runs if r.endswith("_seed2.csv")][0]]
    assert replicate["model"].endswith("_seed2.pt") and plan.models[replicate["model"]]["seed"] == 2
    assert {k: v for k, v in plan.runs[originals[0]].items() if k != "model"} == \
        {k: v for k, v in plan.runs[runs[1]].items() if k != "model"}  # certified alike


def test_the_objective_replicates_train_crt_from_the_macer_model_of_their_own_seed(plan):
    runs = seed_replicates.objective_runs(plan)
    objectives = plan.config["training_methods"]["objectives"]
    assert len(runs) == len(objectives) * 3
    crt = plan.models[plan.runs[[r for r in runs if "crt_seed1" in r][0]]["model"]]
    assert crt["seed"] == 1 and crt["objective_params"]["teacher"].endswith("macer_sigma0.25_seed1.pt")


def test_without_the_section_nothing_is_added(plan):
    del plan.config["seed_replicates"]
    assert seed_replicates.sweep_runs(plan) == [] and seed_replicates.objective_runs(plan) == []


def test_spread_is_the_student_t_interval_of_the_mean():
    mean, low, high = spread([1.0, 2.0, 4.0])
    half = stats.t.ppf(0.975, 2) * stats.tstd([1.0, 2.0, 4.0]) / math.sqrt(3)
    assert mean == pytest.approx(7 / 3) and (low, high) == pytest.approx((7 / 3 - half, 7 / 3 + half))
    assert math.isnan(spread([1.0])[1])


def rep(objective, seed, acr, sigma=0.25, clean=0.9, collapsed=False):
    return Replicate(objective, sigma, seed, 100, clean, acr, collapsed)


def test_objectives_are_ranked_within_each_seed_and_compared_with_gaussian_of_the_same_seed():
    reps = [rep("gaussian", 0, 0.50), rep("gaussian", 1, 0.40), rep("gaussian", 2, 0.60),
            rep("macer", 0, 0.60), rep("macer", 1, 0.30), rep("macer", 2, 0.90),
            rep("crt", 0, 0.1), rep("crt", 1, 0.2), rep("crt", 2, 0.3, collapsed=True)]
    rows = {r["objective"]: r for r in objective_rows(reps)}
    assert [r["objective"] for r in objective_rows(reps)] == ["macer", "gaussian", "crt"]
    macer = rows["macer"]
    assert macer["ACR_vs_gaussian_by_seed"] == "1.2 0.75 1.5" and macer["ACR_vs_gaussian"] == pytest.approx(1.15)
    assert (macer["rank"], macer["rank_best"], macer["rank_worst"], macer["rank_by_seed"]) == (1, 1, 2, "1 2 1")
    assert rows["crt"]["collapsed"] == 1 and rows["crt"]["seeds"] == "0 1"


def test_the_sweep_has_a_row_per_sigma_in_seed_order():
    reps = [rep("gaussian", s, 0.5 + s / 10, sigma=sigma, clean=1 - sigma + s / 100)
            for sigma in (0.5, 0.25) for s in (2, 0, 1)]
    rows = sweep_rows(reps)
    assert [r["sigma"] for r in rows] == [0.25, 0.5]
    assert rows[0]["seeds"] == "0 1 2" and rows[0]["r=0_by_seed"] == "0.75 0.76 0.77"


def gain_table(ratios_by_objective):
    """Rows of ``seed_objectives`` with the given per-seed ACR ratios over Gaussian augmentation's."""
    reps = [rep("gaussian", s, 0.5) for s in range(3)]
    reps += [rep(o, s, 0.5 * x) for o, ratios in ratios_by_objective.items() for s, x in enumerate(ratios)]
    return {"seed_objectives": objective_rows(reps)}


@pytest.mark.parametrize("ratios, verdict", [
    ({"macer": [1.2, 1.25, 1.3], "smoothadv": [1.1, 1.12, 1.14]}, "supported"),
    ({"macer": [1.2, 1.25, 1.3], "smoothadv": [0.8, 0.82, 0.84]}, "not supported"),
    ({"macer": [1.2, 1.25, 1.3], "smoothadv": [0.9, 1.3, 1.1]}, "inconclusive"),
])
def test_the_seed_gain_claim_is_judged_by_the_interval_of_every_objective(ratios, verdict):
    outcome = claims.TESTS["seed_gain"](gain_table(ratios), {"objectives": list(ratios)})
    assert outcome.verdict == verdict
    weakest = min(ratios, key=lambda o: sum(ratios[o]))
    assert outcome.measured == pytest.approx(sum(ratios[weakest]) / 3) and outcome.low < outcome.measured


def test_the_seed_gain_claim_is_not_measured_without_replicates():
    outcome = claims.TESTS["seed_gain"](gain_table({"macer": [1.2]}), {"objectives": ["macer"]})
    assert outcome.verdict == "not measured"


def sweep_table(clean_by_seed):
    """``certified_accuracy`` (the first seed's numbers) and ``seed_sweep`` rows for the given accuracies at r = 0
    per sigma (one list per sigma, one value per seed)."""
    sigmas = [0.12, 0.25, 0.5, 1.0]
    main = [{"sigma": s, "r=0": c[0], "r=0.5": 0.1 * k, "ACR": 0.1} for k, (s, c) in
            enumerate(zip(sigmas, clean_by_seed, strict=True))]
    reps = [rep("gaussian", seed, 0.1, sigma=s, clean=x) for s, c in zip(sigmas, clean_by_seed, strict=True)
            for seed, x in enumerate(c)]
    return {"certified_accuracy": main, "seed_sweep": sweep_rows(reps)}


def test_the_sigma_tradeoff_is_judged_over_seeds_when_the_study_has_replicates():
    falls = sweep_table([[0.99, 0.98, 0.99], [0.97, 0.97, 0.96], [0.9, 0.91, 0.9], [0.4, 0.38, 0.41]])
    outcome = claims.TESTS["sigma_tradeoff"](falls, {})
    assert outcome.verdict == "supported" and outcome.high == -1.0 and "seeds" in outcome.interval
    one_seed_rises = sweep_table([[0.99, 0.9, 0.99], [0.97, 0.91, 0.96], [0.9, 0.92, 0.9], [0.4, 0.93, 0.41]])
    outcome = claims.TESTS["sigma_tradeoff"](one_seed_rises, {})
    assert outcome.verdict == "inconclusive" and outcome.low == -1.0 and outcome.high == 1.0
    del falls["seed_sweep"]
    assert claims.TESTS["sigma_tradeoff"](falls, {}).interval.startswith("none")
