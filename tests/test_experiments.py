"""The experiments registry: one module and one rule file per experiment, every claim test registered by the
package alone, the CLI dispatching through it, and a plan that refuses a path asked for with two settings."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rsscale import experiments
from rsscale.cli import build_parser
from rsscale.experiments.plan import Plan

REPO = Path(__file__).resolve().parents[1]
QUICK = yaml.safe_load((REPO / "workflow" / "config" / "quick.yaml").read_text())


def test_every_experiment_has_its_rule_file():
    names = experiments.available()
    assert {"certified-accuracy", "sample-count", "dimension", "remedies", "inference-cost", "training-methods",
            "denoised", "aces", "extra-information", "incremental", "soundness", "violations", "profile"} <= set(names)
    for name in names:  # an experiment's module is the one that defines its functions (one may hold two)
        experiment = experiments.get(name)
        module = next((f.__module__.rsplit(".", 1)[1] for f in (experiment.runs, experiment.table, experiment.figure)
                       if f is not None and not f.__module__.endswith(".base")), name.replace("-", "_"))
        assert (REPO / "src" / "rsscale" / "experiments" / f"{module}.py").is_file(), name
        assert (REPO / "workflow" / "rules" / f"{module}.smk").is_file(), name


def test_the_package_alone_registers_every_claim_test_of_the_ledger():
    ledger = yaml.safe_load((REPO / "workflow" / "config" / "claims.yaml").read_text())["claims"]
    code = "import rsscale.experiments.claims as c; print(' '.join(sorted(c.TESTS)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert {claim["test"] for claim in ledger} <= set(out)
    assert "rsscale.cli" not in subprocess.run(
        [sys.executable, "-c", "import sys, rsscale.experiments; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True).stdout


def test_table_and_figure_dispatch_through_the_registry():
    parser = build_parser()
    assert parser.parse_args(["table", "denoised", "--inputs", "x", "--out", "y"]).kind == "denoised"
    with pytest.raises(SystemExit):
        parser.parse_args(["figure", "denoised", "--inputs", "x", "--out", "y"])  # no figure
    with pytest.raises(SystemExit):
        parser.parse_args(["table", "soundness", "--inputs", "x", "--out", "y"])  # the harness writes it


def test_runs_are_a_function_of_the_config_and_shared_runs_coincide():
    plan = Plan(QUICK)
    main = experiments.get("certified-accuracy").runs(plan)
    assert main == ["results/certify/digits8/cohen/gaussian_sigma0.25_n100_6.csv",
                    "results/certify/digits8/cohen/gaussian_sigma0.5_n100_6.csv"]
    assert main[0] in experiments.get("denoised").runs(plan)  # the main run stands for the Gaussian-trained model
    for name in experiments.available():
        experiments.get(name).runs(plan)
    assert len(plan.runs) == 46  # the quick study's certify jobs (9 training recipes and budgets, 6 seed replicates)
    assert experiments.get("dimension").runs(Plan({**QUICK, "dimension": None})) == []


def test_a_path_asked_for_with_two_settings_is_refused():
    plan = Plan(QUICK)
    plan.cohen_run("digits8", 0.25, 100, 6)
    with pytest.raises(ValueError, match="two different settings"):
        plan.certify("digits8", "cohen", 0.25, "gaussian_sigma0.25_n100_6", {"n": 7})
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        plan.model("nope", 0.25)
