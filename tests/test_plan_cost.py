"""The plan's counts come from the config alone: hand-computed values for the quick study, changes that must move
them, and one-line errors."""

import copy
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from rsscale import cli
from rsscale.experiments import cost

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "workflow" / "config"
BASELINE = ROOT / "workflow" / "baseline" / "default"


@pytest.fixture(scope="module")
def quick():
    return yaml.safe_load((CONFIGS / "quick.yaml").read_text())


def by_rule(config):
    jobs = cost.study_jobs(config, BASELINE)
    return {row["rule"]: row for row in cost.summary(jobs, 2)}, jobs


def dry_run_jobs(configfile: str) -> dict[str, int]:
    """Jobs per rule of the workflow's own dry run of a study config (from an empty results folder)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", configfile,
                          "--directory", tempfile.mkdtemp(), "--snakefile", str(ROOT / "Snakefile")],
                         capture_output=True, text=True, check=True).stdout
    table = out[out.index("Job stats:"):].splitlines()[3:]
    counts = {}
    for line in table:
        if not line.strip():
            break
        rule, count = line.split()
        counts[rule] = int(count)
    return counts


def test_the_plan_lists_the_jobs_of_the_workflows_dry_run(quick):
    rows, _ = by_rule(quick)
    counts = dry_run_jobs(str(ROOT / "workflow" / "config" / "quick.yaml"))
    paper = counts.get("paper", 0) + counts.get("table_view", 0)  # the report, in the run only where TeX is
    assert rows["total"]["jobs"] == counts["total"] - counts["all"] - paper
    for rule in ("certify", "train", "data", "family_cost", "profile"):
        assert rows[rule]["jobs"] == counts[rule], rule


def test_quick_counts_match_hand_computed_values(quick):
    rows, jobs = by_rule(quick)
    main = {j.output: j for j in jobs}
    # certified accuracy: digits8 has 360 test inputs (20 % of 1,797, rounded up); skip 40 -> 9, max_inputs 6
    assert main["results/certify/digits8/cohen/gaussian_sigma0.25_n100_6.csv"].forward_passes == 6 * (10 + 100)
    # one Gaussian-trained CNN: 4 epochs of 1,797 - 360 training examples less the held-out tenth, one pass each
    assert main["results/models/digits8/gaussian_sigma0.25.pt"].training_passes == 4 * (1437 - 144)
    # the 2-member ensemble: every member on every sample of 4 inputs
    ensemble = next(j for j in jobs if "/ensemble/" in j.output)
    assert ensemble.forward_passes == 4 * 2 * (10 + 100)
    # DDRS: 4 inputs x steps 2 x n_opt 10 differentiable passes on top of Cohen's
    ddrs = next(j for j in jobs if "/ddrs/" in j.output)
    assert (ddrs.forward_passes, ddrs.training_passes) == (4 * 110, 4 * 2 * 10)


def test_family_multipliers_follow_each_familys_accounting():
    assert cost.certify_passes("cohen", {"n0": 100, "n": 1000})[0] == 1100
    assert cost.certify_passes("dsrs", {"n0": 100, "n": 1000})[0] == 2100
    assert cost.certify_passes("qcrs", {"n0": 100, "n": 1000, "n_search": 50, "steps": 3})[0] == 1100 + 300
    assert cost.certify_passes("smooth_reduce", {"n0": 10, "n": 90, "grid": 3})[0] == 900
    assert cost.certify_passes("adaptive", {"n0": 10, "n": 100, "strategy": "horvath"})[0] == 3 * 10 + 100


def test_n_and_sigmas_move_the_plan_as_they_must(quick):
    rows, _ = by_rule(quick)
    more_n = copy.deepcopy(quick)
    more_n["cohen"]["n"] = 1000
    rows_n, jobs_n = by_rule(more_n)
    main = next(j for j in jobs_n if j.output == "results/certify/digits8/cohen/gaussian_sigma0.25_n1000_6.csv")
    assert main.forward_passes == 6 * 1010
    assert rows_n["certify"]["forward_passes"] > rows["certify"]["forward_passes"]
    assert rows_n["train"]["training_passes"] == rows["train"]["training_passes"]
    more_sigmas = copy.deepcopy(quick)
    more_sigmas["sigmas"] = [0.12, 0.25, 0.5, 1.0]
    rows_s, _ = by_rule(more_sigmas)
    # two more sigmas: two more main models and their main certification runs, each from every replicate seed
    replicates = 1 + len(quick["seed_replicates"]["seeds"])
    assert rows_s["train"]["jobs"] == rows["train"]["jobs"] + 2 * replicates
    assert rows_s["certify"]["jobs"] == rows["certify"]["jobs"] + 2 * replicates
    assert rows_s["certify"]["forward_passes"] == rows["certify"]["forward_passes"] + 2 * replicates * 6 * 110


def test_shards_fit_the_limit(quick):
    _, jobs = by_rule(quick)
    for job in jobs:
        job.seconds = 10.0 if job.rule == "certify" else 1.0
    total = cost.summary(jobs, 2, limit_seconds=4.0)[-1]
    assert total["shards"] == sum(job.rule == "certify" for job in jobs) * 3


@pytest.mark.parametrize("argv, message", [
    (["--configfile", "missing.yaml"], "no such config file"),
    (["--configfile", str(CONFIGS / "quick.yaml"), "--device", "tpu"], "unknown device 'tpu'"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert cli.main(["plan", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_malformed_config_is_one_line(tmp_path, quick, capsys):
    bad = copy.deepcopy(quick)
    bad["cohen"]["n"] = "many"
    path = tmp_path / "schema.yaml"
    path.write_text((CONFIGS / "schema.yaml").read_text())
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert cli.main(["plan", "--configfile", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cohen.n" in err and err.count("\n") == 1


def test_plan_vs_run_reads_each_jobs_seconds_from_a_snakemake_log():
    spec = importlib.util.spec_from_file_location("plan_vs_run", ROOT / "workflow" / "scripts" / "plan_vs_run.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    log = """[Sat Dec  5 11:18:05 2026]
rule train:
    input: results/data/digits8.pt
    output: results/models/digits8/gaussian_sigma0.25.pt, results/models/digits8/gaussian_sigma0.25.json
    jobid: 7
[Sat Dec  5 11:18:06 2026]
localrule certify:
    output: results/certify/digits8/cohen/a.csv, results/certify/digits8/cohen/a.json
    jobid: 9
[Sat Dec  5 11:18:20 2026]
Finished jobid: 7 (Rule: train)
[Sat Dec  5 11:19:06 2026]
Finished jobid: 9 (Rule: certify)
"""
    assert script.job_seconds(log) == {"results/models/digits8/gaussian_sigma0.25.pt": ("train", 15.0),
                                       "results/certify/digits8/cohen/a.csv": ("certify", 60.0)}
