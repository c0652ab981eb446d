"""The Snakemake workflow end to end on a tiny config, and its refusal of bad configs."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "workflow" / "config" / "quick.yaml"


def own_config(run: Path) -> Path:
    """The quick config of a repository copy: the file its study ran with (the manifest's params name it)."""
    return run / TINY.relative_to(REPO)


def snakemake(workdir: Path, configfile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Snakemake in ``workdir`` with its own Snakefile (a copy of the repository) or else the repository's."""
    snakefile = workdir / "Snakefile" if (workdir / "Snakefile").is_file() else REPO / "Snakefile"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def finished_run(quick_study_copy):
    """The quick study, run once per test session in a copy of the repository (tests/conftest.py)."""
    return quick_study_copy


def _declared_outputs(workdir: Path) -> list[str]:
    result = snakemake(workdir, own_config(workdir), "--list-target-rules")
    assert result.returncode == 0
    summary = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(own_config(workdir)), "--summary", "--cores", "1"],
        capture_output=True, text=True, timeout=300)
    assert summary.returncode == 0, summary.stderr[-3000:]
    lines = summary.stdout.strip().splitlines()
    return [line.split("\t")[0] for line in lines[1:] if line.strip()]


@pytest.mark.slow
def test_every_declared_output_exists_and_parses(finished_run):
    outputs = _declared_outputs(finished_run)
    assert any(o.endswith("certified_accuracy.tex") for o in outputs)
    for name in outputs:
        path = finished_run / name
        assert path.is_file() and path.stat().st_size > 0, name
        if path.suffix == ".csv":
            rows = list(csv.DictReader(path.open()))
            assert rows, name
        elif path.suffix == ".json":
            record = json.loads(path.read_text())
            assert "git_commit" in record and "versions" in record, name
        elif path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        elif path.suffix == ".pdf":
            assert path.read_bytes()[:5] == b"%PDF-", name
        elif path.name == "numbers.tex":  # the report's settings, as macros
            assert r"\newcommand" in path.read_text(), name
        elif path.suffix == ".tex":
            assert r"\begin{tabular}" in path.read_text(), name
    certified = list(csv.DictReader((finished_run / "results/tables/certified_accuracy.csv").open()))
    assert [float(row["sigma"]) for row in certified] == [0.25, 0.5]
    remedies = list(csv.DictReader((finished_run / "results/tables/dimension_remedies.csv").open()))
    assert sorted((int(r["d"]), r["method"]) for r in remedies) == sorted(
        (d, m) for d in (10, 100) for m in ("cohen", "projected", "np", "dsrs_truncated"))
    verdicts = list(csv.DictReader((finished_run / "results/tables/claims.csv").open()))
    ledger = yaml.safe_load((REPO / "workflow/config/claims.yaml").read_text())["claims"]
    assert [r["id"] for r in verdicts] == [c["id"] for c in ledger]
    # each verdict is what the ledger's test says on this run's tables, and the quick study measures claims
    from rsscale.experiments import claims

    recomputed = claims.evaluate(ledger, finished_run / "results/tables")
    assert [(r["verdict"], r["details"]) for r in verdicts] == [(r["verdict"], r["details"]) for r in recomputed]
    assert sum(r["verdict"] in ("supported", "not supported", "inconclusive") for r in verdicts) >= len(ledger) // 2
    soundness = list(csv.DictReader((finished_run / "results/tables/soundness.csv").open()))
    assert soundness and all(r["verdict"] != "FAIL" for r in soundness)
    trained = list(csv.DictReader((finished_run / "results/tables/training_methods.csv").open()))
    assert {(r["variant"], r["objective"]) for r in trained} >= {
        ("shared loop", "gaussian"), ("shared loop", "gaussian x2"), ("shared loop", "macer"),
        ("published recipe", "gaussian x3"), ("published recipe", "consistency"), ("published recipe", "crt")}
    assert all(r["collapsed"] in ("True", "False") for r in trained)
    cost = list(csv.DictReader((finished_run / "results/tables/inference_cost.csv").open()))
    assert {r["method"] for r in cost} == {"cohen", "iss", "iss_sound", "adaptive"}
    dsrs = [r for r in remedies if r["method"] == "dsrs_truncated"]
    assert all(float(r["gain_l2"]) >= 1.0 or float(r["ACR_l2"]) == 0.0 for r in dsrs)  # never below NP
    extra = list(csv.DictReader((finished_run / "results/tables/extra_information.csv").open()))
    assert [r["method"] for r in extra] == ["baseline", "dipole", "ensemble", "sween", "ddrs"]
    assert float(extra[2]["cost_ratio_evaluations"]) > 1.0  # two members
    weights = json.loads((finished_run / "results/sween/digits8/weights_sigma0.25.json").read_text())
    assert len(weights["params"]["weights"]) == 2 and "git_commit" in weights  # fitted by its rule, with provenance


@pytest.mark.slow
def test_the_html_report_holds_every_table_and_figure_with_a_caption(finished_run):
    from rsscale.experiments.views import VIEWS  # the paper's views of the tables (where TeX is): not in the report

    tables = sorted(p.stem for p in (finished_run / "results/tables").glob("*.csv") if p.stem not in VIEWS)
    captions = REPO / "workflow" / "report" / "tables"
    assert [t for t in tables if not (captions / f"{t}.rst").is_file()] == []
    result = snakemake(finished_run, own_config(finished_run), "--report", "report.html")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = (finished_run / "report.html").read_text()
    for name in tables:
        assert f"{name}.csv" in html, name
    for figure in (finished_run / "figures").glob("*.png"):
        assert figure.name in html, figure.name


@pytest.mark.slow
def test_rerun_is_a_no_op_and_a_config_change_reruns_dependents(finished_run, tmp_path):
    result = snakemake(finished_run, own_config(finished_run), "--dry-run")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr
    changed = yaml.safe_load(TINY.read_text())
    changed["cohen"]["n"] = 50
    config = tmp_path / "changed.yaml"
    config.write_text(yaml.safe_dump(changed))
    dry = snakemake(finished_run, config, "--dry-run")
    assert dry.returncode == 0
    text = dry.stdout + dry.stderr
    assert "rule certify:" in text and "table_certified_accuracy" in text
    assert "rule train:" not in text and "localrule train:" not in text


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["cohen"].update(alpha=1.5), "alpha"),
        (lambda c: c.update(sigmas=[0.25, -1.0]), "sigmas"),
        (lambda c: c["datasets"]["digits8"].update(name="imagenet21k"), "imagenet21k"),
        (lambda c: c.update(unexpected_key=1), "unexpected_key"),
    ],
)
@pytest.mark.slow
def test_bad_config_is_refused_before_any_job(tmp_path, mutate, message):
    config = yaml.safe_load(TINY.read_text())
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, path)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert message in text
    assert not (tmp_path / "results").exists()


# the larger studies (workflow/config/*.yaml for GPU machines), each dry-run from an empty folder without its data
GPU_CONFIGS = ["cifar10", "cifar10_dsrs", "imagenet", "cifar10_training"]


@pytest.mark.slow
@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_config_dry_runs_without_data(tmp_path, name):
    (tmp_path / "data").mkdir()
    result = snakemake(tmp_path, REPO / "workflow" / "config" / f"{name}.yaml", "--dry-run", "--printshellcmds")
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-4000:]
    assert "table_certified_accuracy" in text
    if name == "cifar10_training":  # ResNet-110, the three tables, each given its published numbers
        assert "--arch resnet --arch-params '{\"depth\": 110}'" in text
        for table in ("training-methods", "denoised", "aces"):
            assert f"rsscale table {table} " in text
        assert text.count("--reference '{\"rows\": [{\"match\"") == 3


def test_snakefile_lints_clean():
    if shutil.which("git") is None:
        pytest.skip("git missing")
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(REPO), "--lint"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
