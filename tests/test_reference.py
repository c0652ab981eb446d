"""Published reference numbers beside measured ones (rsscale.experiments.tables.attach_reference) in the training,
denoised and ACES tables."""

import csv
import json

import pytest

from rsscale.cli import main
from rsscale.experiments import aces as aces_analysis
from rsscale.experiments.tables import attach_reference, reference_caption

RUN_COLUMNS = ["idx", "label", "prediction", "correct", "radius", "p_lower", "forward_passes", "seconds"]


def _reference(*rows):
    return {"source": "Someone et al., Table 9", "rows": [{"match": m, "published": p} for m, p in rows]}


def test_attach_reference_places_fills_and_checks():
    rows = [{"objective": "gaussian", "sigma": 0.25, "ACR": 0.4, "seconds": 3.0},
            {"objective": "macer", "sigma": 0.25, "ACR": 0.5, "seconds": 9.0}]
    assert attach_reference(rows, None) == rows  # no reference: the columns stay as they are
    out = attach_reference(rows, _reference(({"objective": "macer", "sigma": 0.25}, {"ACR": 0.56})))
    assert list(out[0]) == ["objective", "sigma", "ACR", "ACR_published", "seconds"]
    assert [r["ACR_published"] for r in out] == ["", 0.56]
    assert reference_caption("Training", _reference()) == "Training; published: Someone et al., Table 9"
    assert reference_caption("Training", None) == "Training"
    with pytest.raises(ValueError, match=r"\['ACR_typo'\] that the table lacks"):
        attach_reference(rows, _reference(({"objective": "macer"}, {"ACR_typo": 1.0})))
    with pytest.raises(ValueError, match="'match'"):
        attach_reference(rows, {"source": "x", "rows": [{"published": {"ACR": 1.0}}]})


def _write_run(path, checkpoint, method="cohen", sigma=0.25, radii=(0.3, 0.0)):
    """A certification CSV (input 0 certified at radii[0], ...) and its sidecar naming the checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RUN_COLUMNS)
        for i, radius in enumerate(radii):
            writer.writerow([i, 1, 1, 1, radius, 0.9, 110, 0.01])
    parameters = {"checkpoint": str(checkpoint), "method": method, "sigma": sigma}
    run = {"status": "complete", "rows": len(radii)}  # tables read complete results only
    path.with_suffix(".json").write_text(json.dumps({"parameters": parameters, "run": run}))
    return str(path)


def _table(tmp_path, kind, inputs, reference):
    """The table's CSV rows, written with ``--reference`` (JSON null for None, as the rules pass no reference)."""
    out = tmp_path / "table"
    assert main(["table", kind, "--inputs", *inputs, "--radii", "0", "0.25", "--reference", json.dumps(reference),
                 "--out", str(out)]) == 0
    assert ("published: Someone et al., Table 9" in (tmp_path / "table.md").read_text()) == (reference is not None)
    with (tmp_path / "table.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_training_table_gets_the_published_acr(tmp_path):
    inputs = []
    for objective in ("gaussian", "macer"):
        checkpoint = tmp_path / f"{objective}.pt"
        checkpoint.with_suffix(".json").write_text(json.dumps({
            "objective": {"objective": objective}, "training": {"seconds": 2.0, "forward_passes": 10},
            "test_accuracy_clean": 0.9, "test_accuracy_noisy": 0.8}))
        inputs.append(_write_run(tmp_path / "runs" / f"{objective}.csv", checkpoint))
    assert not any(column.endswith("_published") for column in _table(tmp_path, "training-methods", inputs, None)[0])
    reference = _reference(({"objective": "macer", "sigma": 0.25}, {"ACR": 0.56}))
    rows = _table(tmp_path, "training-methods", inputs, reference)
    assert list(rows[0]).index("ACR_published") == list(rows[0]).index("ACR") + 1
    assert {r["objective"]: r["ACR_published"] for r in rows} == {"gaussian": "", "macer": "0.56"}


def test_denoised_table_gets_the_published_certified_accuracy(tmp_path):
    clean = tmp_path / "clean.pt"
    clean.with_suffix(".json").write_text(json.dumps({"sigma": 0.0, "training": {"seconds": 1.0}}))
    denoised = tmp_path / "stability.pt"
    denoised.with_suffix(".json").write_text(json.dumps({
        "classifier": {"sigma": 0.0, "train_seconds": 1.0}, "objective": {"objective": "stability"},
        "training": {"seconds": 2.0}}))
    inputs = [_write_run(tmp_path / "bare.csv", clean), _write_run(tmp_path / "den.csv", denoised, "denoised")]
    rows = _table(tmp_path, "denoised", inputs, _reference(({"denoiser": "stability"}, {"r=0.25": 0.56}),
                                                          ({"model": "noise-free"}, {"r=0.25": 0.07})))
    assert list(rows[0]).index("r=0.25_published") == list(rows[0]).index("r=0.25") + 1
    assert {r["denoiser"]: (r["r=0.25"], r["r=0.25_published"]) for r in rows} == {
        "none": ("0.5", "0.07"), "stability": ("0.5", "0.56")}


def test_aces_table_gets_the_published_clean_accuracy_and_acr(tmp_path):
    sweep = [{"idx": 0, "label": 1, "theta": theta, "prediction": 1, "correct": 1, "certified": 1, "selected": 1,
              "radius": 0.3, "p_lower": 0.9, "p_f": 0.9, "p_select": 0.9, "f_prediction": 1, "core_prediction": 1,
              "forward_passes": 110, "seconds": 0.01} for theta in (0.5, 1.0)]
    path = tmp_path / "sigma0.25.csv"
    aces_analysis.write_sweep(sweep, path)
    path.with_suffix(".json").write_text('{"parameters": {"sigma": 0.25}, "run": {"status": "complete", "rows": 2}}')
    reference = _reference(({"sigma": 0.25, "method": "aces", "theta": 0.5}, {"clean_accuracy": 0.85, "ACR": 0.485}),
                           ({"sigma": 0.25, "method": "rs"}, {"clean_accuracy": 0.76, "ACR": 0.535}))
    rows = _table(tmp_path, "aces", [str(path)], reference)
    published = {r["method"]: (r["clean_accuracy_published"], r["ACR_published"]) for r in rows}
    assert published == {"core": ("", ""), "aces": ("0.85", "0.485"), "rs": ("0.76", "0.535")}
