"""The CLI the workflow calls: determinism, resumption, and clear errors."""

import csv

import pytest

from rsscale.cli import main

PARAMS = '{"n0": 20, "n": 300, "alpha": 0.001, "batch_size": 256}'


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(root / "d.pt")]) == 0
    assert main(["train", "--data", str(root / "d.pt"), "--sigma", "0.25", "--epochs", "2", "--arch-params",
                 '{"width": 4, "hidden": 8}', "--out", str(root / "m.pt"), "--quiet", "--device", "cpu"]) == 0
    return root


def certify(root, out, *extra):
    return main(["certify", "--data", str(root / "d.pt"), "--checkpoint", str(root / "m.pt"), "--params", PARAMS,
                 "--skip", "30", "--pack", "4", "--out", str(out), "--quiet", "--device", "cpu", *extra])


def without_seconds(path):
    """The CSV's bytes with the wall-clock column blanked (the only column that may differ between runs)."""
    rows = list(csv.reader(path.open()))
    column = rows[0].index("seconds")
    return [row[:column] + row[column + 1 :] for row in rows]


def test_same_seed_gives_identical_results_and_resume_loses_nothing(trained, tmp_path):
    first, second, resumed = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    assert certify(trained, first) == 0 and certify(trained, second) == 0
    assert without_seconds(first) == without_seconds(second)
    assert len(without_seconds(first)) == 1 + 12  # header + every 30th of 360 test inputs

    # a run killed after 5 rows and a half-written 6th, then restarted
    lines = first.read_text().splitlines(keepends=True)
    resumed.write_text("".join(lines[:6]) + lines[6][:7])
    assert certify(trained, resumed) == 0
    assert without_seconds(resumed) == without_seconds(first)

    other = tmp_path / "d.csv"
    assert certify(trained, other, "--seed", "1") == 0
    assert without_seconds(other) != without_seconds(first)
    assert (tmp_path / "a.json").is_file()


def test_errors_name_the_value_and_leave_nothing_behind(trained, tmp_path, capsys):
    out = tmp_path / "bad.csv"
    assert certify(trained, out, "--method", "nope") == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["certify", "--data", str(trained / "d.pt"), "--checkpoint", str(trained / "m.pt"), "--params",
                 '{"n0": 10, "n": 100, "alpha": 2}', "--out", str(out), "--quiet"]) == 2
    assert "alpha must lie strictly between 0 and 1, got 2" in capsys.readouterr().err
    assert main(["certify", "--data", str(trained / "d.pt"), "--checkpoint", str(trained / "m.pt"), "--params",
                 '{"n0": 10, "n": 100, "batch_size": 0}', "--out", str(out), "--quiet"]) == 2
    assert "batch_size must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["certify", "--data", str(trained / "d.pt"), "--checkpoint", str(trained / "m.pt"), "--sigma", "-1",
                 "--out", str(out), "--quiet"]) == 2
    assert "sigma must be a finite number > 0, got -1.0" in capsys.readouterr().err
    assert not out.exists()
    assert main(["data", "--dataset", "nope", "--out", str(tmp_path / "x.pt")]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_methods_lists_cohen(capsys):
    assert main(["methods"]) == 0
    assert "cohen" in capsys.readouterr().out


def test_several_checkpoints_make_an_ensemble_and_the_sidecar_names_them_all(trained, tmp_path):
    import json

    assert main(["train", "--data", str(trained / "d.pt"), "--sigma", "0.25", "--epochs", "1", "--arch-params",
                 '{"width": 4, "hidden": 8}', "--seed", "1", "--out", str(trained / "m1.pt"), "--quiet",
                 "--device", "cpu"]) == 0
    out = tmp_path / "ens.csv"
    assert main(["certify", "--data", str(trained / "d.pt"), "--checkpoint", str(trained / "m.pt"),
                 str(trained / "m1.pt"), "--method", "ensemble", "--params", PARAMS, "--skip", "60", "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and all(row["members"] == "2" for row in rows)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert len(sidecar["checkpoint_sha256"]) == 2 and len(sidecar["parameters"]["checkpoint"]) == 2


def test_fit_sween_writes_weights_that_certify_reads_with_params_file(trained, tmp_path, capsys):
    import json

    members = [str(trained / "m.pt"), str(trained / "m.pt")]  # two identical members: the fit must stay symmetric
    weights = tmp_path / "w.json"
    assert main(["fit-sween", "--data", str(trained / "d.pt"), "--checkpoint", *members, "--max-examples", "30",
                 "--copies", "2", "--steps", "20", "--out", str(weights), "--device", "cpu"]) == 0
    fitted = json.loads(weights.read_text())
    assert fitted["fit"]["sigma"] == 0.25 and fitted["fit"]["examples"] == 30
    first, second = fitted["params"]["weights"]
    assert first == pytest.approx(second, abs=1e-6)  # symmetric up to float summation order
    out = tmp_path / "sween.csv"
    assert main(["certify", "--data", str(trained / "d.pt"), "--checkpoint", *members, "--method", "sween",
                 "--params", PARAMS, "--params-file", str(weights), "--skip", "90", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())["parameters"]
    assert sidecar["weights"] == fitted["params"]["weights"] and sidecar["params_file"] == str(weights)
    (tmp_path / "bad.json").write_text('{"weights": [0, 0]}')
    assert main(["certify", "--data", str(trained / "d.pt"), "--checkpoint", *members, "--method", "sween",
                 "--params-file", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.csv"), "--quiet"]) == 2
    assert "must hold a JSON object with a 'params' object" in capsys.readouterr().err
