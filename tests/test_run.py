"""``rsscale.run.certify_dataset``: the seeded, resumable certification loop as a library function."""

import pytest
import torch

from rsscale import methods
from rsscale.data import Dataset
from rsscale.io import read_run
from rsscale.models import build_model
from rsscale.run import certify_dataset, derived_seed, input_indices


@pytest.fixture(scope="module")
def dataset():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 6, generator=gen)
    y = (x[:, 0] > 0.5).long()
    return Dataset("toy", x[:10], y[:10], x[10:], y[10:], num_classes=2)


@pytest.fixture(scope="module")
def certifier():
    torch.manual_seed(0)
    model = build_model("mlp", dim=6, num_classes=2, hidden=[8]).eval()
    return methods.build("cohen", model=model, num_classes=2, sigma=0.25, n0=20, n=200, alpha=0.01,
                         batch_size=128, device="cpu")


def without_seconds(path) -> list[list[str]]:
    lines = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if name != "seconds"]
    return [[line[i] for i in keep] for line in lines]


def test_indices_and_seeds():
    assert input_indices(10, 3) == [0, 3, 6, 9] and input_indices(10, 3, 2) == [0, 3] and input_indices(0) == []
    assert derived_seed(5, 0) == derived_seed(5, 0) != derived_seed(5, 1) != derived_seed(6, 1)


def test_same_seed_same_rows_and_another_seed_other_draws(certifier, dataset, tmp_path):
    first = certify_dataset(certifier, dataset, tmp_path / "a.csv", seed=3, pack=4, progress=False)
    certify_dataset(certifier, dataset, tmp_path / "b.csv", seed=3, pack=4, progress=False)
    certify_dataset(certifier, dataset, tmp_path / "c.csv", seed=4, pack=4, progress=False)
    assert first.indices == list(range(30)) and first.resumed == 0
    assert without_seconds(tmp_path / "a.csv") == without_seconds(tmp_path / "b.csv")
    assert without_seconds(tmp_path / "a.csv") != without_seconds(tmp_path / "c.csv")
    run = read_run(tmp_path / "a.csv")
    assert run.columns["idx"].tolist() == list(range(30)) and set(run.columns["forward_passes"]) == {220.0}


def test_each_pack_draws_from_its_own_seed(certifier, dataset, tmp_path):
    """The rows of a pack equal certify_many on that pack with the generator seeded (seed, position)."""
    certify_dataset(certifier, dataset, tmp_path / "run.csv", seed=7, skip=2, max_inputs=9, pack=4, progress=False)
    run = read_run(tmp_path / "run.csv")
    assert run.columns["idx"].tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    chunk = [8, 10, 12, 14]  # the second pack: positions 4..7
    certs = certifier.certify_many(dataset.x_test[chunk], generator=torch.Generator().manual_seed(derived_seed(7, 4)))
    assert run.columns["p_lower"][4:8].tolist() == [c.p_lower for c in certs]
    assert run.columns["prediction"][4:8].tolist() == [c.prediction for c in certs]


@pytest.mark.parametrize("cut", ["whole rows", "mid row", "header only"])
def test_resume_after_a_partial_file_gives_the_identical_file(certifier, dataset, tmp_path, cut):
    reference = tmp_path / "reference.csv"
    certify_dataset(certifier, dataset, reference, seed=1, pack=4, progress=False)
    text = reference.read_text()
    lines = text.splitlines(keepends=True)
    partial = {"whole rows": "".join(lines[:7]),  # header and 6 rows: the second pack half written
               "mid row": "".join(lines[:12]) + lines[12][:9],  # a killed process's half line
               "header only": lines[0]}[cut]
    out = tmp_path / "resumed.csv"
    out.write_text(partial)
    result = certify_dataset(certifier, dataset, out, seed=1, pack=4, progress=False)
    assert result.resumed == {"whole rows": 6, "mid row": 11, "header only": 0}[cut]
    assert without_seconds(out) == without_seconds(reference)
    kept = partial[: partial.rfind("\n") + 1]
    assert out.read_text().startswith(kept)  # rows on disk are never rewritten
    again = certify_dataset(certifier, dataset, out, seed=1, pack=4, progress=False)  # complete: nothing to do
    assert again.resumed == 30 and without_seconds(out) == without_seconds(reference)
