"""`rsscale certify` under faults: killed and restarted it ends with the uninterrupted run's file; rerun it repeats.

The kill test runs ``python -m rsscale certify`` as a subprocess, SIGKILLs it
at seeded random points (each after the CSV has grown), restarts it with the
same arguments, and compares the final CSV with that of an uninterrupted run
byte for byte, wall-clock columns apart.  The determinism test reruns every
method family in-process and checks that only timings differ, in the CSV, in
the provenance sidecar and in the certified-accuracy table built from them.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from rsscale.cli import main

INPUTS, PACK = 40, 4
KILL_PARAMS = '{"n0": 20, "n": 10000, "batch_size": 1000}'  # ~0.1-0.3 s of sampling per pack of 4 on one core
#: provenance fields that record when and from which working tree a run was made, not what it computed
WALL_CLOCK_FIELDS = {"started", "finished", "git_commit"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    threads = torch.get_num_threads()
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(root / "d.pt")]) == 0
    common = ["--data", str(root / "d.pt"), "--sigma", "0.25", "--epochs", "3", "--lr", "0.01", "--quiet",
              "--device", "cpu", "--threads", "1"]  # one thread: tiny models on a busy machine
    assert main(["train", *common, "--arch-params", '{"width": 4, "hidden": 8}', "--out", str(root / "m.pt")]) == 0
    assert main(["train", *common, "--arch", "projected", "--arch-params",
                 '{"rank": 8, "base_config": {"width": 4, "hidden": 8}}', "--out", str(root / "p.pt")]) == 0
    yield root
    torch.set_num_threads(threads)  # --threads set it for the whole test process


def is_timing(column: str) -> bool:
    """Wall-clock columns (``seconds``, ``sampling_seconds``, ``radius_seconds``, ...) differ between runs."""
    return column.endswith("seconds")


def without_timings(path) -> str:
    """The CSV's exact text with every wall-clock column cut out (values are bare numbers: no quoting)."""
    text = path.read_text()
    assert '"' not in text
    lines = text.splitlines()
    keep = [i for i, name in enumerate(lines[0].split(",")) if not is_timing(name)]
    return "".join(",".join(line.split(",")[i] for i in keep) + "\n" for line in lines)


def complete_rows(path) -> int:
    """Certificates on disk: complete lines after the header."""
    return max(path.read_bytes().count(b"\n") - 1, 0) if path.exists() else 0


def certify_process(root, out):
    command = [sys.executable, "-m", "rsscale", "certify", "--data", str(root / "d.pt"), "--checkpoint",
               str(root / "m.pt"), "--params", KILL_PARAMS, "--max-inputs", str(INPUTS), "--pack", str(PACK),
               "--seed", "5", "--out", str(out), "--quiet", "--device", "cpu", "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def test_killed_and_restarted_certify_equals_an_uninterrupted_run(trained, tmp_path):
    reference = tmp_path / "reference.csv"
    uninterrupted = certify_process(trained, reference)  # runs on the second core meanwhile

    out, sidecar = tmp_path / "killed.csv", tmp_path / "killed.json"
    rng = random.Random(2024)
    kills, history = 0, []  # rows on disk after each kill
    while kills < 3:
        before = complete_rows(out)
        target = min(before + rng.randint(1, 2 * PACK - 2), INPUTS - 1)
        process = certify_process(trained, out)
        deadline = time.monotonic() + 120
        while process.poll() is None and complete_rows(out) < target:
            assert time.monotonic() < deadline, "certify made no progress"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        if process.poll() is not None:  # it finished before the kill: nothing left to interrupt
            break
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert process.returncode == -signal.SIGKILL
        rows = complete_rows(out)
        history.append(rows)
        assert before < rows, f"a restarted run must keep what was on disk and add to it (rows after kills: {history})"
        if rows < INPUTS:
            kills += 1
            assert not sidecar.exists(), "the provenance sidecar must be written only when every row is done"
        elif sidecar.exists():
            json.loads(sidecar.read_text())  # killed while finishing: the sidecar is whole or absent
    assert kills >= 3, f"only {kills} kills landed before the run finished (rows after kills: {history})"
    print(f"rows on disk after each kill: {history}")

    final = certify_process(trained, out)
    assert final.wait(timeout=300) == 0, final.communicate()[1]
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.communicate()[1]
    assert complete_rows(out) == INPUTS
    assert without_timings(out) == without_timings(reference)
    record = json.loads(sidecar.read_text())
    assert record["summary"]["inputs"] == INPUTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.csv", "killed.json", "reference.csv",
                                                          "reference.json"], "no temporary files are left behind"


DETERMINISM = {
    "cohen-gaussian": ("m.pt", "cohen", {}),
    "cohen-laplace": ("m.pt", "cohen", {"noise": "laplace"}),
    "cohen-uniform": ("m.pt", "cohen", {"noise": "uniform"}),
    "dsrs-truncated": ("m.pt", "dsrs", {"secondary": "truncated"}),
    "dsrs-scaled": ("m.pt", "dsrs", {"secondary": "scaled"}),
    "projected": ("p.pt", "projected", {}),
}


def strip_wall_clock(value):
    """A sidecar without the fields that record when it ran (any key naming seconds counts as a timing)."""
    if isinstance(value, dict):
        return {k: strip_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK_FIELDS and "seconds" not in k}
    return value


@pytest.mark.parametrize("case", list(DETERMINISM))
def test_same_run_twice_differs_only_in_timings(trained, tmp_path, case, capsys):
    checkpoint, method, extra = DETERMINISM[case]
    params = json.dumps({"n0": 20, "n": 400, "alpha": 0.001, "batch_size": 500, **extra})
    outputs = []
    for name in ("first", "second"):
        out = tmp_path / f"{name}.csv"
        assert main(["certify", "--data", str(trained / "d.pt"), "--checkpoint", str(trained / checkpoint),
                     "--method", method, "--params", params, "--skip", "30", "--pack", "4", "--seed", "11",
                     "--out", str(out), "--quiet", "--device", "cpu", "--threads", "1"]) == 0
        table = tmp_path / f"table_{name}"
        assert main(["table", "certified-accuracy", "--inputs", str(out), "--out", str(table)]) == 0
        outputs.append(out)
    first, second = outputs
    assert without_timings(first) == without_timings(second)
    assert len(without_timings(first).splitlines()) == 1 + 12
    sidecars = [json.loads(p.with_suffix(".json").read_text()) for p in outputs]
    assert strip_wall_clock(sidecars[0]) == strip_wall_clock(sidecars[1])
    for ext in (".csv", ".md", ".tex"):
        assert (tmp_path / f"table_first{ext}").read_bytes() == (tmp_path / f"table_second{ext}").read_bytes()
    capsys.readouterr()


def test_an_interrupted_aces_sweep_resumes_to_the_uninterrupted_file(trained, tmp_path):
    args = ["aces", "--data", str(trained / "d.pt"), "--checkpoint", str(trained / "m.pt"), "--core",
            str(trained / "p.pt"), "--thetas", "0.3", "0.7", "--params", '{"n0": 20, "n": 200, "batch_size": 500}',
            "--max-inputs", "10", "--pack", "4", "--seed", "2", "--quiet", "--device", "cpu", "--threads", "1"]
    reference, out = tmp_path / "reference.csv", tmp_path / "resumed.csv"
    assert main([*args, "--out", str(reference)]) == 0
    lines = reference.read_text().splitlines(keepends=True)
    assert len(lines) == 1 + 10 * 3  # a row per (input, theta), theta = 1 included
    out.write_text("".join(lines[:17]) + lines[17][:5])  # killed in the second pack, mid row
    assert main([*args, "--out", str(out)]) == 0
    assert without_timings(out) == without_timings(reference)
    assert out.read_text().startswith("".join(lines[:17]))  # the rows on disk were kept, not recomputed


def table_cells(path, suffix: str) -> list[list[str]]:
    """The cells of a table (``.csv`` or ``.md``) without its wall-clock columns (seconds and speed-ups)."""
    text = path.with_suffix(suffix).read_text()
    if suffix == ".csv":
        rows = [line.split(",") for line in text.splitlines()]
    else:
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
        rows = [rows[0], *rows[2:]]  # without the alignment row
    keep = [i for i, name in enumerate(rows[0]) if not name.startswith(("seconds", "speedup"))]
    return [[row[i] for i in keep] for row in rows]


def test_an_interrupted_incremental_run_certifies_only_the_modifications_not_on_disk(trained, tmp_path, capsys):
    args = ["incremental", "--data", str(trained / "d.pt"), "--checkpoint", str(trained / "m.pt"), "--n0", "10",
            "--n", "200", "--n-incremental", "50", "--alpha", "0.01", "--alpha-zeta", "0.01", "--gamma", "0.9",
            "--max-inputs", "4", "--radii", "0", "0.25", "--modifications", "int8", "prune0.4", "--threads", "1"]
    reference, out = tmp_path / "reference.csv", tmp_path / "resumed.csv"
    assert main([*args, "--out", str(tmp_path / "reference")]) == 0
    lines = reference.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    out.write_text(lines[0] + lines[1] + lines[2][:7])  # int8 done, killed while writing prune0.4
    assert main([*args, "--out", str(tmp_path / "resumed")]) == 0
    assert out.read_text().splitlines()[1] == lines[1].rstrip("\n")  # int8's row (timings too) was kept
    for suffix in (".csv", ".md"):  # the Markdown prints the counts of a resumed row as integers too
        assert table_cells(out, suffix) == table_cells(reference, suffix)
    assert "int8" in capsys.readouterr().out
    assert main([*args[:-3], "--threads", "1", "--out", str(tmp_path / "resumed")]) == 2  # int8 only
    assert "the rows on disk hold modifications ['prune0.4']" in capsys.readouterr().err
