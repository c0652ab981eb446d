"""Scaling out, end to end (slow tier): certification runs split into shards, through Snakemake on this machine and
through the SLURM profile on a real single-node SLURM, give the unsharded run's result files and tables."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rsscale.io import read_rows

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "workflow" / "config" / "quick.yaml"
LOCAL_SLURM = REPO / "workflow" / "scripts" / "local_slurm.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
#: The tables whose runs certify through the shared certify rule: two cheap ones on the study's main models (that
#: shards give each family's own rows is checked in the fast tier, tests/test_shards.py).
TABLES = ["certified_accuracy", "sample_count"]

_spec = importlib.util.spec_from_file_location("compare_tables", REPO / "workflow" / "scripts" / "compare_tables.py")
compare_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_tables)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The quick study with packs of 2 inputs, so that its runs hold several packs and shards split them."""
    study = yaml.safe_load(QUICK.read_text())
    study["cohen"]["pack"] = study["dimension"]["pack"] = 2
    path = tmp_path_factory.mktemp("config") / "quick_packs2.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def snakemake(workdir: Path, config: Path, *extra: str) -> float:
    """Run the workflow for the tables; return its wall-clock seconds."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(config), *extra, "--", *(f"results/tables/{t}.csv" for t in TABLES)]
    tic = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    return time.perf_counter() - tic


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, config):
    workdir = tmp_path_factory.mktemp("unsharded")
    seconds = snakemake(workdir, config, "--cores", "2")
    print(f"\nunsharded local run: {seconds:.0f} s")
    return workdir


def without_hashes(record: dict) -> dict:
    """A run record without the sha256 of its input files: a dataset or checkpoint file written by another run of
    the workflow holds the same tensors in other bytes (torch.save names its archive after the temporary file)."""
    return {**record, "identity": {k: v for k, v in record["identity"].items() if not k.endswith("sha256")}}


def assert_same_results(new: Path, reference: Path) -> None:
    """Every certification run's file equal but for wall-clock columns, the same run record, the same tables."""
    runs = sorted(p.relative_to(reference) for p in (reference / "results" / "certify").rglob("*.csv"))
    assert runs and runs == sorted(p.relative_to(new) for p in (new / "results" / "certify").rglob("*.csv"))
    for run in runs:
        old, here = read_rows(reference / run, as_text=True), read_rows(new / run, as_text=True)
        assert list(old[0]) == list(here[0]), run
        keep = [c for c in old[0] if not compare_tables.is_wall_clock(c)]
        assert [[r[c] for c in keep] for r in here] == [[r[c] for c in keep] for r in old], run
        sidecars = [json.loads((root / run).with_suffix(".json").read_text()) for root in (reference, new)]
        assert [without_hashes(s["run"]) for s in sidecars] == [without_hashes(sidecars[0]["run"])] * 2, run
        assert sidecars[0]["parameters"] == sidecars[1]["parameters"], run
    assert compare_tables.compare(reference / "results" / "tables", new / "results" / "tables") == []
    assert not (new / "results" / "shards").exists() or not any((new / "results" / "shards").rglob("*.csv"))


def test_local_shards_give_the_unsharded_results(unsharded, config, tmp_path):
    seconds = snakemake(tmp_path, config, "--cores", "2", "--config", "shards=3")
    print(f"\n3 shards per run, local: {seconds:.0f} s")
    assert_same_results(tmp_path, unsharded)


def _slurm_overrides() -> list[str]:
    """The profile's per-rule resources made to fit one 2-core node without a GPU."""
    rules = yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"]
    resources = [f"{rule}:{key}={value}" for rule in rules for key, value in
                 {"gpu": 0, "slurm_partition": "cpu", "cpus_per_task": 1, "mem_mb": 2000, "runtime": 30}.items()]
    return ["--default-resources", "slurm_partition=cpu", "mem_mb=1000", "runtime=30", "cpus_per_task=1",
            "--set-resources", *resources, "--set-threads", *(f"{rule}=1" for rule in rules)]


@pytest.fixture(scope="module")
def slurm():
    """A single-node SLURM started by workflow/scripts/local_slurm.sh (skips when it cannot start), stopped after
    the test unless it was running before."""
    state = Path(os.environ.get("LOCAL_SLURM_DIR", "/tmp/rsscale-slurm"))
    was_running = (state / "started").is_file() and bool((state / "started").read_text().strip())
    started = subprocess.run(["bash", str(LOCAL_SLURM), "start"], capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        pytest.skip(f"cannot start a local SLURM (root and apt-get needed): {started.stderr.strip()[-500:]}")
    yield
    if not was_running:
        subprocess.run(["bash", str(LOCAL_SLURM), "stop"], capture_output=True, text=True, timeout=120)


def test_slurm_profile_with_shards_gives_the_local_results(unsharded, config, slurm, tmp_path):
    seconds = snakemake(tmp_path, config, "--workflow-profile", str(PROFILE), "--config", "shards=2", "--jobs", "2",
                        "--cores", "2", "--latency-wait", "5", "--slurm-status-command", "squeue",
                        "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
                        *_slurm_overrides())
    print(f"\n2 shards per run on SLURM (1-CPU jobs, 2 at once): {seconds:.0f} s")
    logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert any("certify_shard" in str(p) for p in logs)  # the shards ran as SLURM jobs
    assert_same_results(tmp_path, unsharded)
