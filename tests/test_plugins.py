"""A method family added from outside the repository: a module in a temporary directory, made known through
``RSSCALE_PLUGINS``, appears in ``rsscale methods``, runs in the harness with the cases it declares, and runs in the
workflow from one config entry; no file of the repository is edited."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rsscale import harness, methods

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''"""Cohen's CERTIFY under another name: a family that lives outside the repository."""

from rsscale import harness
from rsscale.methods import register
from rsscale.methods.cohen import Cohen


@register
class CohenPlugin(Cohen):
    name = "cohen_plugin"
    summary = "Cohen's CERTIFY, registered by a plug-in"

    @classmethod
    def harness_cases(cls):
        return [harness.half_space_case(cls.name, "gaussian", 10, axis=None)]
'''


@pytest.fixture
def plugin(tmp_path) -> Path:
    path = tmp_path / "plugins" / "cohen_plugin.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    return path


def _env(plugins: str, pythonpath: Path | None = None) -> dict:
    env = {**os.environ, methods.PLUGINS_VARIABLE: plugins}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return env


def _rsscale(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsscale", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def _status() -> str:
    return subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True).stdout


def test_a_plugin_file_appears_in_methods_and_runs_in_the_harness(plugin, tmp_path):
    before = _status()
    env = _env(str(plugin))
    listed = _rsscale("methods", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["cohen_plugin", "sound"] for line in listed.stdout.splitlines()), listed.stdout
    out = tmp_path / "soundness"
    run = _rsscale("harness", "--trials", "50", "--methods", "cohen_plugin", "--threads", "1", "--out", str(out),
                   env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = list(csv.DictReader((tmp_path / "soundness.csv").open()))
    assert [(r["method"], r["case"], r["position"], r["trials"], r["verdict"]) for r in rows] == [
        ("cohen_plugin", "gaussian-rotated-d10", f"p={p:g}", "50", "sound") for p in harness.HALF_SPACE_P]
    assert _status() == before  # nothing of the repository was edited


def test_a_plugin_module_name_and_a_bad_entry(plugin, tmp_path, monkeypatch):
    listed = _rsscale("methods", env=_env("cohen_plugin", pythonpath=plugin.parent), cwd=tmp_path)
    assert listed.returncode == 0 and "cohen_plugin" in listed.stdout, listed.stderr
    monkeypatch.setenv(methods.PLUGINS_VARIABLE, str(tmp_path / "missing.py"))
    with pytest.raises(ImportError, match="no such plug-in file .*missing.py"):
        methods.load_plugins()


def test_an_installed_package_plugs_in_through_the_entry_point_group(plugin, tmp_path):
    """A package on the path whose metadata declares ``cohen_plugin`` in the group ``rsscale.methods``."""
    info = plugin.parent / "cohen_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cohen-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{methods.ENTRY_POINT_GROUP}]\ncohen_plugin = cohen_plugin\n")
    listed = _rsscale("methods", env=_env("", pythonpath=plugin.parent), cwd=tmp_path)
    assert listed.returncode == 0 and "cohen_plugin" in listed.stdout, listed.stderr


@pytest.mark.slow
def test_a_plugin_runs_in_the_workflow_from_one_config_entry(plugin, tmp_path):
    before = _status()
    config = yaml.safe_load((REPO / "workflow" / "config" / "quick.yaml").read_text())
    config["extra_information"]["runs"]["plugin"] = {"method": "cohen_plugin"}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    extra = config["extra_information"]
    target = (f"results/certify/{extra['dataset']}/cohen_plugin/"
              f"plugin_sigma{extra['sigma']}_n{extra['n']}_{extra['max_inputs']}.csv")
    workdir = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(configfile), "--cores", "2", target],
        capture_output=True, text=True, env=_env(str(plugin)), timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    rows = list(csv.DictReader((workdir / target).open()))
    assert len(rows) == extra["max_inputs"]
    assert all(int(r["forward_passes"]) == config["cohen"]["n0"] + extra["n"] for r in rows)
    assert _status() == before
