"""The report's table views: the rows and columns they name, cells rounded like a table's, text kept as text."""

import csv

import pytest

from rsscale.experiments import views
from rsscale.experiments.tables import stacked_header


def table(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_view_keeps_its_rows_and_columns(tmp_path, monkeypatch):
    source = table(tmp_path / "t.csv", [{"norm": "l2", "slope": "0.01234", "passes": "10100.0", "section": "3.3"},
                                        {"norm": "linf", "slope": "-0.49876", "passes": "10100.0", "section": "3.3"}])
    summary = views.View("t", columns=("slope", "passes"), rows={"norm": ("linf",)})
    monkeypatch.setitem(views.VIEWS, "t_summary", summary)
    monkeypatch.setitem(views.VIEWS, "t_text", views.View("t", drop=("slope",), numbers=False))
    views.write_view("t_summary", source, tmp_path / "s")
    assert list(csv.DictReader(open(tmp_path / "s.csv"))) == [{"slope": "-0.49876", "passes": "10100"}]
    assert "-0.499 & 10100" in (tmp_path / "s.tex").read_text()
    views.write_view("t_text", source, tmp_path / "x")
    assert (tmp_path / "x.md").read_text().splitlines()[-1] == "| linf | 10100.0 | 3.3 |"


def test_a_view_naming_a_missing_column_is_refused(tmp_path, monkeypatch):
    source = table(tmp_path / "t.csv", [{"a": "1"}])
    monkeypatch.setitem(views.VIEWS, "bad", views.View("t", columns=("a", "b")))
    with pytest.raises(ValueError, match="lacks"):
        views.write_view("bad", source, tmp_path / "v")


def test_long_headers_break_at_underscores():
    assert stacked_header("ACR") == "ACR"
    assert stacked_header("ACR_vs_equal_budget") == r"\shortstack{ACR vs\\equal\\budget}"


def test_a_radius_the_config_does_not_certify_at_is_left_out_and_other_missing_columns_are_refused(tmp_path,
                                                                                                   monkeypatch):
    monkeypatch.setitem(views.VIEWS, "aces_radii", views.View("aces", columns=(
        "sigma", "method", "theta", "selection_rate", "clean_accuracy", "r=0.5", "ACR", "clean_gain_p")))
    table = tmp_path / "aces.csv"
    table.write_text("sigma,inputs,method,theta,clean_accuracy,selection_rate,r=0,r=0.25,ACR,clean_gain_p\n"
                     "0.25,4,core,0.5,1.0,0.5,1.0,0.5,0.3,1.0\n")
    views.write_view("aces_radii", table, tmp_path / "view")
    assert (tmp_path / "view.csv").read_text().splitlines()[0] == \
        "sigma,method,theta,selection_rate,clean_accuracy,ACR,clean_gain_p"
    table.write_text(table.read_text().replace("selection_rate", "rate"))
    with pytest.raises(ValueError, match="selection_rate"):
        views.write_view("aces_radii", table, tmp_path / "view")


def test_a_view_at_the_largest_batch_keeps_the_rows_the_study_profiled_at_its_largest(tmp_path, monkeypatch):
    rows = [{"model": m, "batch_size": str(b), "ratio": str(r)} for m, b, r in
            [("a", 50, 0.5), ("a", 200, 0.9), ("b", 50, 0.4), ("b", 200, 0.8)]]
    source = table(tmp_path / "t.csv", rows)
    monkeypatch.setitem(views.VIEWS, "t_top", views.View("t", columns=("model", "ratio"), largest=("batch_size",)))
    views.write_view("t_top", source, tmp_path / "v")
    assert list(csv.DictReader(open(tmp_path / "v.csv"))) == [{"model": "a", "ratio": "0.9"},
                                                               {"model": "b", "ratio": "0.8"}]
