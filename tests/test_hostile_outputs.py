"""Hostile outputs: result writers that cannot damage a file, and resumes that check what they resume.

Each case is what a careless user does with the ``--out`` of a command that
writes result rows: point it at an input of the run, at a file that is not a
result, at the rows of another run, at a file another process is writing.
Every refusal is checked four ways: exit status 2, stderr exactly one line
``rsscale: error: ...`` with a distinctive piece of the message, no
traceback, and every file that existed before byte-identical afterwards (and
no file added).  The cases that succeed check what they wrote.
"""

import csv
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rsscale.cli import main
from rsscale.io import RowWriter, lock_path, run_record_path

SMALL = '{"n0": 10, "n": 50, "batch_size": 100}'
INPUTS = ["--max-inputs", "6", "--pack", "2"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    f = {"d": root / "d.pt", "m": root / "m.pt", "m2": root / "m2.pt", "p": root / "p.json"}
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(f["d"])]) == 0
    threads = torch.get_num_threads()
    for name, seed in (("m", "0"), ("m2", "1")):
        assert main(["train", "--data", str(f["d"]), "--sigma", "0.25", "--epochs", "1", "--arch-params",
                     '{"width": 4, "hidden": 8}', "--seed", seed, "--out", str(f[name]), "--quiet", "--device", "cpu",
                     "--threads", "1"]) == 0
    torch.set_num_threads(threads)
    f["p"].write_text('{"params": {"n": 40}}')
    return f


def certify(files, out, *extra, checkpoint="m", params=SMALL):
    return ["certify", "--data", str(files["d"]), "--checkpoint", str(files[checkpoint]), "--params", params,
            *INPUTS, "--out", str(out), "--quiet", "--device", "cpu", *extra]


def snapshot(*folders) -> dict[str, str]:
    """The sha256 of every file (hidden ones included) under the folders."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def refused(capsys, argv, message, *folders):
    """Run ``argv``: it must fail with one clear line holding ``message`` and change no file under ``folders``."""
    before = snapshot(*folders)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsscale: error: "), err
    assert message in lines[0], lines[0]
    assert snapshot(*folders) == before
    return lines[0]


def without_seconds(path) -> list[str]:
    lines = Path(path).read_text().splitlines()
    keep = [i for i, name in enumerate(lines[0].split(",")) if name != "seconds"]
    return [",".join(line.split(",")[i] for i in keep) for line in lines]


class Killed(Exception):
    """Stands for a kill: raised by the writer once some rows are on disk."""


def interrupted(monkeypatch, argv, packs: int = 1):
    """Run ``argv`` until ``packs`` packs are written, then stop it as a crash would (no completion)."""
    write_many = RowWriter.write_many
    calls = []

    def stop_after(self, rows):
        if len(calls) == packs:
            raise Killed
        calls.append(1)
        return write_many(self, rows)

    with monkeypatch.context() as patch:
        patch.setattr(RowWriter, "write_many", stop_after)
        with pytest.raises(Killed):
            main(argv)


@pytest.mark.parametrize("target", ["m", "d", "p", "m.json"])
def test_out_pointing_at_an_input_is_refused(files, tmp_path, capsys, target):
    out = files["m"].with_suffix(".json") if target == "m.json" else files[target]
    argv = certify(files, out, "--params-file", str(files["p"]))
    refused(capsys, argv, "an input of this run", files["d"].parent, tmp_path)


def test_aces_and_incremental_refuse_an_input_as_output(files, capsys):
    root = files["d"].parent
    aces = ["aces", "--data", str(files["d"]), "--checkpoint", str(files["m"]), "--core", str(files["m2"]),
            "--thetas", "0.5", "--params", SMALL, "--quiet", "--device", "cpu", "--out", str(files["m2"])]
    refused(capsys, aces, "an input of this run", root)
    incremental = ["incremental", "--data", str(files["d"]), "--checkpoint", str(files["m"]), "--n0", "10", "--n",
                   "50", "--max-inputs", "2", "--out", str(root / "m")]  # m.json: the checkpoint's sidecar
    refused(capsys, incremental, "an input of this run", root)


@pytest.mark.parametrize("content", ["a,b\n1,2\n", "a,b\n1,2", "just a note", ""])
@pytest.mark.parametrize("restart", [False, True])
def test_a_foreign_file_is_never_touched(files, tmp_path, capsys, content, restart):
    out = tmp_path / "notes.csv"
    out.write_text(content)
    refused(capsys, certify(files, out, *(["--restart"] if restart else [])), "is not a result file", tmp_path)


def test_a_foreign_sidecar_is_never_touched(files, tmp_path, capsys):
    (tmp_path / "run.json").write_text('{"mine": true}')
    refused(capsys, certify(files, tmp_path / "run.csv"), "is not a result's sidecar", tmp_path)


OTHER_RUNS = {
    "sigma": (["--sigma", "0.5"], {}, "settings.sigma"),
    "n": ([], {"params": '{"n0": 10, "n": 60, "batch_size": 100}'}, "settings.n"),
    "checkpoint": ([], {"checkpoint": "m2"}, "checkpoint_sha256"),
    "noise": ([], {"params": '{"n0": 10, "n": 50, "batch_size": 100, "noise": "laplace"}'}, "method_params.noise"),
    "max-inputs": (["--max-inputs", "5"], {}, "max_inputs: 6 on disk, 5 here"),
    "seed": (["--seed", "1"], {}, "seed: 0 on disk, 1 here"),
}


@pytest.mark.parametrize("state", ["killed", "complete"])
@pytest.mark.parametrize("other", list(OTHER_RUNS))
def test_resuming_another_run_is_refused_naming_what_differs(files, tmp_path, capsys, monkeypatch, state, other):
    out = tmp_path / "run.csv"
    if state == "killed":
        interrupted(monkeypatch, certify(files, out))
        assert run_record_path(out).is_file() and not out.with_suffix(".json").exists()
    else:
        assert main(certify(files, out)) == 0
    capsys.readouterr()
    extra, options, field = OTHER_RUNS[other]
    line = refused(capsys, certify(files, out, *extra, **options), "holds the rows of another certification run",
                   tmp_path, files["d"].parent)
    assert field in line and "--restart" in line


def test_a_killed_run_resumes_to_the_uninterrupted_file_and_restart_starts_afresh(files, tmp_path, capsys,
                                                                                  monkeypatch):
    reference, out = tmp_path / "reference.csv", tmp_path / "run.csv"
    assert main(certify(files, reference)) == 0
    interrupted(monkeypatch, certify(files, out), packs=2)
    capsys.readouterr()
    table = ["table", "certified-accuracy", "--inputs", str(out), "--out", str(tmp_path / "table")]
    refused(capsys, table, "is incomplete", tmp_path)  # no table from a partial result
    assert main(certify(files, out)) == 0
    assert without_seconds(out) == without_seconds(reference)
    run = json.loads(out.with_suffix(".json").read_text())["run"]
    assert run["status"] == "complete" and run["rows"] == 6 and run["resumed_rows"] == 4
    assert run["forward_passes_spent"] == 2 * 60  # the last pack only: 2 inputs x (n0 + n)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.csv", "reference.json", "run.csv", "run.json"]

    capsys.readouterr()
    assert main(certify(files, out, "--sigma", "0.5", "--restart")) == 0
    assert "discarding" in capsys.readouterr().err
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["parameters"]["sigma"] == 0.5 and record["run"]["resumed_rows"] == 0
    assert record["run"]["identity"]["settings"]["sigma"] == 0.5


def test_the_workflow_flag_discards_a_stale_partial_file_and_says_so(files, tmp_path, capsys, monkeypatch):
    out, partial = tmp_path / "run.csv", tmp_path / "partial" / "run.csv"
    interrupted(monkeypatch, certify(files, out, "--partial", str(partial)))
    assert partial.is_file() and not out.exists()  # rows go to the partial file until the run is complete
    capsys.readouterr()
    assert main(certify(files, out, "--partial", str(partial), "--sigma", "0.5", "--discard-stale")) == 0
    err = capsys.readouterr().err
    assert f"discarding {partial}: rows of another certification run (" in err
    assert "settings.sigma: 0.25 on disk, 0.5 here" in err
    assert json.loads(out.with_suffix(".json").read_text())["run"]["resumed_rows"] == 0
    assert not partial.exists() and not run_record_path(partial).exists() and not lock_path(out).exists()


def test_a_second_writer_fails_at_once(files, tmp_path, capsys):
    out = tmp_path / "run.csv"
    slow = certify(files, out, "--threads", "1", params='{"n0": 10, "n": 200000, "batch_size": 1000}')
    slow[slow.index("6")] = "40"  # --max-inputs 40: a run of many seconds
    first = subprocess.Popen([sys.executable, "-m", "rsscale", *slow], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not out.exists():  # its first pack is on disk: it holds the lock
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.01)
        started = time.monotonic()
        assert main(slow) == 2
        assert time.monotonic() - started < 10  # fails at once, without waiting for the first writer
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another process is writing" in err and "Traceback" not in err
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    rows = out.read_text().count("\n")
    assert rows >= 3 and len(set(out.read_text().splitlines())) == rows  # the first writer's rows only, no duplicates


REPO = Path(__file__).resolve().parents[1]
#: A study small enough to run twice, with certification jobs of several packs each (one pack: about a second).
KILL_CONFIG = {
    "seed": 0,
    "datasets": {"digits8": {"name": "digits", "params": {"resolution": 8}}},
    "model": {"arch": "cnn", "params": {"width": 4, "hidden": 8}},
    "training": {"objective": "gaussian", "epochs": 1, "batch_size": 128, "lr": 0.01, "collapse": "finding"},
    "sigmas": [0.25, 0.5],
    "cohen": {"dataset": "digits8", "n0": 10, "n": 100000, "alpha": 0.001, "batch_size": 1000, "pack": 2, "skip": 40,
              "max_inputs": 8},
    "radii": [0.0, 0.25],
    "sample_count": {"sigma": 0.25, "ns": [10, 100], "max_inputs": 4},
    "profile": {"sigmas": [0.25], "batch_sizes": [50], "batches": 1, "repeats": 1},
}


def snakemake(workdir: Path, config: Path, *extra: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(config), "--cores", "2", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finished(process: subprocess.Popen) -> str:
    output = process.communicate(timeout=1200)[0]
    assert process.returncode == 0, output[-4000:]
    return output


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_snakemake_killed_mid_certification_resumes_to_the_same_tables(tmp_path):
    import yaml

    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump(KILL_CONFIG))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    finished(snakemake(whole, config))

    study = snakemake(killed, config, start_new_session=True)
    partial_root = killed / "results" / ".partial" / "certify"
    deadline, victim = time.monotonic() + 900, None
    while victim is None:
        assert study.poll() is None and time.monotonic() < deadline, "the study ended before a kill could land"
        for partial in partial_root.rglob("*.csv") if partial_root.exists() else []:
            if 2 <= complete_lines(partial) < 1 + KILL_CONFIG["cohen"]["max_inputs"] - 2:  # a pack or more, not all
                victim = partial
        time.sleep(0.005)
    os.killpg(study.pid, signal.SIGKILL)
    study.communicate()
    on_disk = complete_lines(victim) - 1
    result = killed / "results" / victim.relative_to(partial_root.parent)
    assert not result.exists() and on_disk >= 1

    finished(snakemake(killed, config, "--unlock"))
    finished(snakemake(killed, config, "--rerun-incomplete"))

    spec = importlib.util.spec_from_file_location("compare_tables", REPO / "workflow/scripts/compare_tables.py")
    compare_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_tables)
    assert compare_tables.compare(whole / "results/tables", killed / "results/tables") == []
    run = json.loads(result.with_suffix(".json").read_text())["run"]
    assert run["resumed_rows"] == on_disk  # every row on disk at the kill was kept
    rows = list(csv.DictReader(result.open()))
    needed = sum(int(float(row["forward_passes"])) for row in rows[run["resumed_rows"]:])
    assert 0 < run["forward_passes_spent"] <= needed, (run, needed)
    assert [p for p in (killed / "results" / ".partial").rglob("*") if p.is_file()] == []
