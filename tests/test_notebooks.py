"""The notebooks of workflow/notebooks run top to bottom against a tiny results folder made with the CLI."""

from pathlib import Path

import pytest
import torch

from rsscale.cli import main

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "workflow" / "notebooks"
NAMES = ["explore_results", "add_a_method"]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """results/ as the workflow lays it out: digits, two tiny models, two certification runs, one table."""
    threads = torch.get_num_threads()  # the CLI sets the process's thread count; give it back afterwards
    results = tmp_path_factory.mktemp("notebook_study") / "results"
    data = results / "data" / "digits8.pt"
    try:
        assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(data)]) == 0
        runs = []
        for sigma in (0.25, 0.5):
            checkpoint = results / "models" / "digits8" / f"gaussian_sigma{sigma}.pt"
            assert main(["train", "--data", str(data), "--arch", "cnn", "--arch-params", '{"width": 4, "hidden": 8}',
                         "--sigma", str(sigma), "--epochs", "1", "--batch-size", "256", "--threads", "1", "--quiet",
                         "--out", str(checkpoint)]) == 0
            run = results / "certify" / "digits8" / "cohen" / f"gaussian_sigma{sigma}_n100_6.csv"
            assert main(["certify", "--data", str(data), "--checkpoint", str(checkpoint), "--method", "cohen",
                         "--params", '{"n0": 10, "n": 100, "alpha": 0.001, "batch_size": 200}', "--skip", "40",
                         "--max-inputs", "6", "--threads", "1", "--quiet", "--out", str(run)]) == 0
            runs.append(str(run))
        assert main(["table", "certified-accuracy", "--inputs", *runs, "--radii", "0", "0.25",
                     "--out", str(results / "tables" / "certified_accuracy")]) == 0
    finally:
        torch.set_num_threads(threads)
    return results


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: commit notebooks without outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_against_a_results_folder(name, tiny_results, monkeypatch):
    monkeypatch.setenv("RSSCALE_RESULTS", str(tiny_results))  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tiny_results.parent)}})
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    text = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for out in cell.outputs)
    if name == "explore_results":
        assert "the table is reproduced from the CSVs" in text
        assert any("image/png" in out.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
                   for out in cell.outputs)
    else:
        assert "toy_fixed_budget" in str([out.get("data", {}) for out in notebook.cells[1].outputs])
        assert text.count("True), p_lower") == 2
