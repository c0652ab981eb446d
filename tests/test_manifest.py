"""The provenance manifest: `rsscale manifest` records checksums, `rsscale verify` catches any change."""

import json
import subprocess
import sys

import pytest

from rsscale.cli import main
from rsscale.provenance import MANIFEST_FORMAT, build_manifest, verify_manifest


@pytest.fixture
def study(tmp_path):
    """A small results tree: tables, a run with its sidecar, figures, a hidden temporary file, a config."""
    root = tmp_path / "study"
    (root / "results/tables").mkdir(parents=True)
    (root / "results/certify/digits8/cohen").mkdir(parents=True)
    (root / "figures").mkdir()
    (root / "results/tables/certified_accuracy.csv").write_text("sigma,ACR\n0.25,0.5\n")
    (root / "results/tables/certified_accuracy.tex").write_text("\\begin{tabular}{rr}\n\\end{tabular}\n")
    (root / "results/certify/digits8/cohen/run.csv").write_text("idx,label,prediction\n0,1,1\n")
    (root / "results/certify/digits8/cohen/run.json").write_text(json.dumps({"device": "Test CPU (2 threads)"}))
    (root / "results/tables/.certified_accuracy.csv.abc.tmp").write_text("half-written")
    (root / "figures/certified_accuracy.pdf").write_bytes(b"%PDF-1.4 not really a figure\n")
    config = tmp_path / "config.yaml"
    config.write_text("seed: 0\n")
    manifest = root / "results/manifest.json"
    code = main(["manifest", "--root", str(root), "--config", str(config), "--out", str(manifest),
                 "results", "figures"])
    assert code == 0
    return root, manifest, config


def _verify(root, manifest, capsys):
    """Exit status of `rsscale verify` and what it printed to stderr."""
    capsys.readouterr()
    try:
        code = main(["verify", str(manifest), "--root", str(root)])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def test_manifest_records_every_artifact_and_its_provenance(study):
    root, manifest, config = study
    record = json.loads(manifest.read_text())
    assert record["format"] == MANIFEST_FORMAT
    assert sorted(record["files"]) == [
        "figures/certified_accuracy.pdf",
        "results/certify/digits8/cohen/run.csv",
        "results/certify/digits8/cohen/run.json",
        "results/tables/certified_accuracy.csv",
        "results/tables/certified_accuracy.tex",
    ]  # the manifest itself and the hidden temporary file are left out
    assert list(record["configs"]) == [config.resolve().as_posix()]  # outside the root: an absolute path
    assert len(record["files"]["results/tables/certified_accuracy.csv"]["sha256"]) == 64
    assert record["files"]["results/tables/certified_accuracy.csv"]["bytes"] == len("sigma,ACR\n0.25,0.5\n")
    assert record["sidecar_devices"] == ["Test CPU (2 threads)"]
    for key in ("git_commit", "package_git_commit", "versions", "device", "created"):
        assert record[key], key
    assert "torch" in record["versions"] and "python" in record["versions"]


def test_verify_passes_on_an_untouched_study(study, capsys):
    root, manifest, _ = study
    code, err = _verify(root, manifest, capsys)
    assert code == 0 and err == ""
    assert verify_manifest(manifest, root) == (6, [])


def test_verify_fails_naming_a_file_with_one_byte_changed(study, capsys):
    root, manifest, _ = study
    table = root / "results/tables/certified_accuracy.csv"
    data = bytearray(table.read_bytes())
    data[-2] ^= 1  # same size, one byte different
    table.write_bytes(bytes(data))
    code, err = _verify(root, manifest, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "CHANGED" in lines[0] and "results/tables/certified_accuracy.csv" in lines[0]


def test_verify_fails_naming_each_missing_file(study, capsys):
    root, manifest, config = study
    (root / "figures/certified_accuracy.pdf").unlink()
    config.unlink()
    code, err = _verify(root, manifest, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all("MISSING" in line for line in lines)
    assert any(line.endswith("figures/certified_accuracy.pdf") for line in lines)
    assert any(line.endswith(config.resolve().as_posix()) for line in lines)


def test_a_new_file_does_not_fail_verify_but_a_new_manifest_records_it(study, capsys):
    root, manifest, _ = study
    (root / "results/tables/extra.csv").write_text("a\n1\n")
    assert _verify(root, manifest, capsys)[0] == 0
    assert "results/tables/extra.csv" in build_manifest(root, ["results"])["files"]


def test_manifest_refuses_a_missing_folder_and_verify_refuses_a_non_manifest(tmp_path, capsys):
    assert main(["manifest", "--root", str(tmp_path), "--out", str(tmp_path / "m.json"), "results"]) == 2
    assert "results" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"files": {}}))
    assert main(["verify", str(bogus)]) == 2
    assert "not an rsscale manifest" in capsys.readouterr().err


def test_verify_exit_status_from_the_command_line(study):
    root, manifest, _ = study
    (root / "results/tables/certified_accuracy.tex").write_text("changed\n")
    result = subprocess.run([sys.executable, "-m", "rsscale", "verify", str(manifest), "--root", str(root)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "results/tables/certified_accuracy.tex" in result.stderr
