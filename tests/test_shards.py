"""Shards of a certification run: K jobs over whole packs, gathered into the unsharded run's file."""

import csv
import json

import pytest

from rsscale.cli import main
from rsscale.io import read_run, run_record_path
from rsscale.shards import Shard, gather_shards

PARAMS = '{"n0": 10, "n": 100, "alpha": 0.001, "batch_size": 256}'


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(root / "d.pt")]) == 0
    assert main(["train", "--data", str(root / "d.pt"), "--sigma", "0.25", "--epochs", "1", "--arch-params",
                 '{"width": 4, "hidden": 8}', "--out", str(root / "m.pt"), "--quiet", "--device", "cpu"]) == 0
    return root


def certify(root, out, *extra):
    """12 inputs (every 30th of 360) in 6 packs of 2."""
    return main(["certify", "--data", str(root / "d.pt"), "--checkpoint", str(root / "m.pt"), "--params", PARAMS,
                 "--skip", "30", "--pack", "2", "--seed", "5", "--out", str(out), "--quiet", "--device", "cpu",
                 *extra])


def sharded(root, folder, count, *extra):
    paths = [folder / f"{i}-of-{count}.csv" for i in range(count)]
    for i, path in enumerate(paths):
        assert certify(root, path, "--shard", f"{i}/{count}", *extra) == 0
    return paths


def without_wall_clock(path):
    """The CSV's cells, the wall-clock columns (seconds) left out."""
    rows = list(csv.reader(path.open()))
    keep = [i for i, name in enumerate(rows[0]) if "seconds" not in name]
    return [[row[i] for i in keep] for row in rows]


@pytest.fixture(scope="module")
def unsharded(trained):
    assert certify(trained, trained / "whole.csv") == 0
    return trained / "whole.csv"


@pytest.mark.parametrize("inputs,pack", [(12, 2), (13, 4), (5, 10), (100, 7), (1, 1)])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_are_whole_contiguous_disjoint_covering_and_even(inputs, pack, count):
    spans = [Shard(i, count).positions(inputs, pack) for i in range(count)]
    assert [p for span in spans for p in span] == list(range(inputs))
    assert all(span.start % pack == 0 for span in spans if span)
    packs = [-(-len(span) // pack) for span in spans]
    assert max(packs) - min(packs) <= 1


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "0/0"])
def test_a_malformed_shard_is_refused(text):
    with pytest.raises(ValueError, match="i/K"):
        Shard.parse(text)


@pytest.mark.parametrize("count", [2, 3, 7])
def test_gathered_shards_equal_the_unsharded_run(trained, unsharded, tmp_path, count):
    merged = tmp_path / "merged.csv"
    paths = sharded(trained, tmp_path, count)
    assert main(["gather", "--shards", *map(str, reversed(paths)), "--out", str(merged)]) == 0
    assert without_wall_clock(merged) == without_wall_clock(unsharded)
    assert merged.read_text().splitlines()[0] == unsharded.read_text().splitlines()[0]
    whole, gathered = read_run(unsharded).sidecar, read_run(merged).sidecar
    assert gathered["run"] == whole["run"]  # identity (no shard in it), rows, resumed rows, forward passes spent
    assert gathered["parameters"] == whole["parameters"] and gathered["dataset"] == whole["dataset"]
    assert gathered["summary"]["ACR"] == whole["summary"]["ACR"]
    assert [s["index"] for s in gathered["shards"]] == list(range(count)) and "shard" not in gathered
    if count == 7:  # 6 packs: one shard holds none, and its file is empty
        assert sum(s["rows"] == 0 for s in (b["run"] for b in gathered["shards"])) == 1


def test_gather_refuses_anything_but_the_k_shards_of_one_run(trained, tmp_path):
    paths = sharded(trained, tmp_path, 3)
    out = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="missing \\[1\\]"):
        gather_shards([paths[0], paths[2]], out)
    with pytest.raises(ValueError, match="twice \\[0\\]"):
        gather_shards([paths[0], paths[0], paths[2]], out)
    other = sharded(trained, tmp_path / "other", 3, "--seed", "6")
    with pytest.raises(ValueError, match="another run.*seed"):
        gather_shards([paths[0], other[1], paths[2]], out)
    two = sharded(trained, tmp_path / "two", 2)
    with pytest.raises(ValueError, match="one of 3"):
        gather_shards([paths[0], two[1], paths[2]], out)
    assert certify(trained, tmp_path / "whole.csv") == 0
    with pytest.raises(ValueError, match="not a shard"):
        gather_shards([tmp_path / "whole.csv"], out)
    run_record_path(paths[1]).write_text(json.dumps({"identity": {}, "status": "running"}))
    with pytest.raises(ValueError, match="incomplete shard"):
        gather_shards(paths, out)
    assert not out.exists()


def test_a_shard_resumes_its_own_rows_and_refuses_another_shards(trained, tmp_path, capsys):
    first = sharded(trained, tmp_path / "a", 2)[0]
    killed = tmp_path / "killed.csv"
    lines = first.read_text().splitlines(keepends=True)
    killed.write_text("".join(lines[:3]) + lines[3][:5])  # header, 2 rows, half a row
    run_record_path(killed).write_text(json.dumps({"identity": json.loads(first.with_suffix(".json").read_text())
                                                   ["run"]["identity"], "status": "running"}))
    assert certify(trained, killed, "--shard", "0/2") == 0
    assert without_wall_clock(killed) == without_wall_clock(first)
    assert certify(trained, killed, "--shard", "1/2") == 2
    assert "shard.index: 0 on disk, 1 here" in capsys.readouterr().err


def test_an_empty_shard_completes_reruns_and_is_refused_to_another_shard(trained, tmp_path):
    empty = tmp_path / "0-of-7.csv"  # 6 packs over 7 shards: shard 0 holds none
    assert certify(trained, empty, "--shard", "0/7") == 0
    assert empty.read_bytes() == b"" and json.loads(empty.with_suffix(".json").read_text())["run"]["rows"] == 0
    assert certify(trained, empty, "--shard", "0/7") == 0
    assert certify(trained, empty, "--shard", "1/7") == 2
