"""``rsscale.io``: the one reader of result and table CSVs, the resumable row writer, atomic writes."""

import math
from pathlib import Path

import numpy as np
import pytest

import rsscale
from rsscale import Certificate
from rsscale.io import (
    RowWriter,
    atomic_path,
    certificate_row,
    file_sha256,
    format_cell,
    parse_cell,
    read_columns,
    read_rows,
    read_run,
    write_csv_atomic,
    write_text_atomic,
)


def test_cells_round_trip():
    assert [parse_cell(t) for t in ("1", "0.25", "-3e-05")] == [1.0, 0.25, -3e-05]
    assert math.isnan(parse_cell("nan")) and parse_cell("inf") == math.inf
    assert parse_cell("") == "" and parse_cell("cnn-w8") == "cnn-w8" and parse_cell("{'a': 1}") == "{'a': 1}"
    for value in (0.1, 1 / 3, 1e-300, 12345678.9, -0.0):
        assert parse_cell(format_cell(value)) == value
    assert format_cell(True) == "1" and format_cell(np.float64(0.5)) == "0.5" and format_cell(float("nan")) == "nan"


def test_read_rows_types_cells(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("model,batch_size,ratio,note,n\n0001,50,0.75,,10\nresnet,100,nan,fast,20\n")
    rows = read_rows(path)
    assert rows[0] == {"model": 1.0, "batch_size": 50.0, "ratio": 0.75, "note": "", "n": 10.0}
    assert math.isnan(rows[1]["ratio"]) and rows[1]["note"] == "fast"
    typed = read_rows(path, text_columns=("model",), int_columns=("n",))
    assert typed[0]["model"] == "0001" and typed[0]["n"] == 10 and isinstance(typed[0]["n"], int)
    columns = read_columns(path)
    assert columns["batch_size"].dtype == np.float64 and columns["note"].tolist() == ["", "fast"]
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="has no rows"):
        read_columns(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="has no certificates"):
        read_run(tmp_path / "empty.csv")


def test_io_holds_the_only_csv_reader():
    """Result files and tables are read in one place: no other module of the package parses CSV itself."""
    package = Path(rsscale.__file__).parent
    readers = [str(path.relative_to(package)) for path in package.rglob("*.py")
               if path.name != "io.py" and ("DictReader" in path.read_text() or "csv.reader" in path.read_text())]
    assert readers == []


def test_certificate_rows_written_and_read_back(tmp_path):
    cert = Certificate(prediction=1, radius=0.5, p_lower=0.9, forward_passes=110, seconds=0.01,
                       radii={"l2": 0.5, "linf": 0.25}, extra={"n": 100})
    path = tmp_path / "run.csv"
    with RowWriter(path) as writer:
        assert writer.write(certificate_row(3, 1, cert)) and not writer.write(certificate_row(3, 1, cert))
        writer.write(certificate_row(4, 0, cert))
    assert path.read_text().splitlines() == [
        "idx,label,prediction,correct,radius,p_lower,forward_passes,seconds,radius_l2,radius_linf,n",
        "3,1,1,1,0.5,0.9,110,0.01,0.5,0.25,100", "4,0,1,0,0.5,0.9,110,0.01,0.5,0.25,100"]
    run = read_run(path)
    assert len(run) == 2 and run.certified_accuracy(0.5) == 0.5 and run.acr() == 0.25
    with RowWriter(path) as writer:
        assert 3 in writer and 5 not in writer
        with pytest.raises(ValueError, match="differ from the file's header"):
            writer.write({"idx": 5, "label": 0})


def test_row_writer_with_a_compound_key_resumes(tmp_path):
    path = tmp_path / "sweep.csv"
    with RowWriter(path, key=("idx", "theta"), columns=["idx", "theta", "value"]) as writer:
        writer.write({"idx": 0, "theta": 0.5, "value": 1.0})
    path.write_text(path.read_text() + "0,1.0,2")  # a killed writer's partial line
    with RowWriter(path, key=("idx", "theta"), columns=["idx", "theta", "value"]) as writer:
        assert (0, 0.5) in writer and (0, 1.0) not in writer
        writer.write({"idx": 0, "theta": 1.0, "value": 2.0})
    assert path.read_text() == "idx,theta,value\n0,0.5,1.0\n0,1.0,2.0\n"
    with pytest.raises(ValueError, match="expected"):
        RowWriter(path, columns=["idx", "other"])
    never = tmp_path / "never.csv"
    with RowWriter(never):
        pass
    assert not never.exists()  # nothing written, no file


def test_atomic_writes_and_sha256(tmp_path):
    write_text_atomic(tmp_path / "a" / "t.txt", "hello\n")
    assert (tmp_path / "a" / "t.txt").read_text() == "hello\n"
    assert file_sha256(tmp_path / "a" / "t.txt") == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    write_csv_atomic(tmp_path / "t.csv", [{"a": 1, "b": 0.5, "c": "ignored"}], ["a", "b"])
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,0.5\n"
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "t.csv") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,0.5\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "a", "t.csv"]
