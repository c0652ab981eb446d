"""docs/extending.md's worked examples, executed from the document's own code blocks.

"Add a method": the family's module, written outside the repository and named in ``RSSCALE_PLUGINS``, appears in
``rsscale methods`` and passes its declared harness case.  "Add an experiment": in a scratch copy of the repository,
its module and its rule file are written, its one line added to the Snakefile, and the quick config's run makes the
new table and figure."""

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsscale import harness

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "extending.md"
SKIP = shutil.ignore_patterns(".git", ".venv", "results", "logs", ".snakemake", "__pycache__", "*.egg-info",
                              ".pytest_cache", ".ruff_cache")


def example_blocks(section_title: str = "Add an experiment") -> dict[str, str]:
    """The code blocks of a section of the guide, by the path their first line names (``# <path>...``)."""
    section = GUIDE.read_text().split(f"## {section_title}", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for body in re.findall(r"```python\n(.*?)```", section, re.S):
        first, rest = body.split("\n", 1)
        blocks[first.removeprefix("# ").split(":")[0].strip()] = rest
    return blocks


def test_the_guide_names_a_module_a_rule_file_and_one_snakefile_line():
    blocks = example_blocks()
    assert set(blocks) == {"src/rsscale/experiments/abstention.py", "workflow/rules/abstention.smk", "Snakefile"}
    assert blocks["Snakefile"].strip().count("\n") == 0  # one line


def test_a_method_added_by_following_the_guide_is_listed_and_passes_its_harness_case(tmp_path):
    [(path, text)] = example_blocks("Add a method").items()
    assert path == "src/rsscale/methods/cohen_hoeffding.py"
    module = tmp_path / "cohen_hoeffding.py"
    module.write_text(text.lstrip("\n"))
    env = {**os.environ, "RSSCALE_PLUGINS": str(module)}

    def rsscale(*args):
        result = subprocess.run([sys.executable, "-m", "rsscale", *args], capture_output=True, text=True, env=env,
                                cwd=tmp_path, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    assert any(line.split()[:2] == ["cohen_hoeffding", "sound"] for line in rsscale("methods").splitlines())
    rsscale("harness", "--methods", "cohen_hoeffding", "--trials", "300", "--out", str(tmp_path / "soundness"))
    rows = list(csv.DictReader((tmp_path / "soundness.csv").open()))
    assert [(r["method"], r["case"], r["verdict"]) for r in rows] == [
        ("cohen_hoeffding", "gaussian-rotated-d10", "sound")] * len(harness.HALF_SPACE_P)  # one row per position
    assert all(int(r["trials"]) == 300 for r in rows)
    assert np.mean([float(r["certified"]) for r in rows]) > 0.5


@pytest.mark.slow
def test_an_experiment_added_by_following_the_guide_runs(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=SKIP)
    blocks = example_blocks()
    line = blocks.pop("Snakefile").strip()
    for path, text in blocks.items():
        (copy / path).write_text(text.lstrip("\n"))
    snakefile = copy / "Snakefile"
    anchor = 'include: "workflow/rules/violations.smk"\n'
    assert anchor in snakefile.read_text()
    snakefile.write_text(snakefile.read_text().replace(anchor, anchor + line + "\n"))

    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    targets = ["results/tables/abstention.csv", "figures/abstention.png"]
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory",
                             str(tmp_path / "study"), "--configfile", str(copy / "workflow/config/quick.yaml"),
                             "--cores", "2", *targets], capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    study = tmp_path / "study"
    rows = list(csv.DictReader((study / "results/tables/abstention.csv").open()))
    assert [float(r["sigma"]) for r in rows] == [0.25, 0.5]
    assert all(0.0 <= float(r["abstained"]) <= 1.0 for r in rows)
    assert (study / "results/tables/abstention.tex").read_text().startswith(r"\begin{tabular}")
    assert (study / "figures/abstention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (study / "figures/abstention.pdf").read_bytes()[:5] == b"%PDF-"
    listed = subprocess.run([sys.executable, "-m", "rsscale", "table", "--help"], capture_output=True, text=True,
                            env=env)
    assert "abstention" in listed.stdout
