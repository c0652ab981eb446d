"""The big configs end to end (slow tier): each of cifar10, cifar10_dsrs, cifar10_training and imagenet runs every
one of its rules on stand-in files in its dataset's real on-disk format (CIFAR-10's binary batches, an ImageNet
JPEG tree: ``workflow/scripts/stand_in_data.py``), shrunk by ``workflow/scripts/smoke_overlay.py`` to one epoch,
one noise level, two inputs and 100 samples per certificate, so that the loaders, architectures, rules and tables
a user's first real run needs are exercised in minutes on a CPU. The numbers mean nothing; that the run finishes
and every table has rows does."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
BIG_CONFIGS = ["cifar10", "cifar10_dsrs", "cifar10_training", "imagenet"]

pytestmark = pytest.mark.slow


def python(*arguments, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """A Python command of this environment, with the repository's package and programs (rsscale) first."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *map(str, arguments)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """Stand-in CIFAR-10 (4 records per training batch: 2 per class; 60 test records, so every 20th gives 3) and
    ImageNet (10 classes of 2 training and 30 validation JPEGs, so every 100th of 300 gives 3)."""
    root = tmp_path_factory.mktemp("stand_in")
    made = python(SCRIPTS / "stand_in_data.py", root, "--cifar-train", 4, "--cifar-test", 60,
                  "--imagenet-classes", 10, "--imagenet-train", 2, "--imagenet-val", 30)
    assert made.returncode == 0, made.stderr[-3000:]
    return root


@pytest.mark.parametrize("name", BIG_CONFIGS)
def test_a_big_config_runs_end_to_end_on_stand_in_data(name, stand_in, tmp_path):
    config = REPO / "workflow" / "config" / f"{name}.yaml"
    overlay = python(SCRIPTS / "smoke_overlay.py", config, "--data", stand_in, "--inputs", 2, "--max-n", 100,
                     "--sigmas", 1)
    assert overlay.returncode == 0, overlay.stderr[-3000:]
    (tmp_path / "overlay.yaml").write_text(overlay.stdout)
    run = python("-m", "snakemake", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--cores", 2,
                 "--configfile", config, tmp_path / "overlay.yaml", cwd=tmp_path, timeout=1500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    captions = REPO / "workflow" / "report" / "tables"  # a study table has a caption; the paper's views may be empty
    tables = sorted(t for t in (tmp_path / "results" / "tables").glob("*.csv") if (captions / f"{t.stem}.rst").exists())
    assert len(tables) >= 3, [t.name for t in tables]  # certified accuracy, sample count, profile at least
    for table in tables:
        with table.open() as handle:
            assert list(csv.DictReader(handle)), f"{name}: {table.name} has no rows"
    assert (tmp_path / "results" / "manifest.json").is_file()
