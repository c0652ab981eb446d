"""The extra-information table: paired comparison with the Cohen baseline, bootstrap interval, cost ratios."""

import csv
import json

import numpy as np
import pytest

from rsscale.experiments.claims import paired_difference
from rsscale.experiments.extra_information import extra_information_rows
from rsscale.io import read_run


def write_run(folder, tag, method, radius, correct, passes, seconds, sound=True, evaluations=None):
    path = folder / f"{tag}_sigma0.25_n100_4.csv"
    columns = ["idx", "label", "prediction", "correct", "radius", "p_lower", "forward_passes", "seconds"]
    columns += ["model_evaluations"] if evaluations is not None else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, (r, c) in enumerate(zip(radius, correct, strict=True)):
            extra = [evaluations] if evaluations else []
            writer.writerow([i, 0, 0 if c else 1, int(c), r, 0.9, passes, seconds, *extra])
    run = {"status": "complete", "rows": len(radius)}  # tables read complete results only
    path.with_suffix(".json").write_text(json.dumps({"parameters": {"method": method}, "sound": sound, "run": run}))
    return read_run(path)


def test_rows_pair_inputs_with_the_baseline_and_report_costs(tmp_path):
    rng = np.random.default_rng(0)
    radius = rng.uniform(0.1, 1.0, 50)
    correct = rng.random(50) < 0.9
    base = write_run(tmp_path, "baseline", "cohen", radius, correct, 110, 0.1)
    better = write_run(tmp_path, "ensemble", "ensemble", radius + 0.1, correct, 110, 0.3, evaluations=330)
    same = write_run(tmp_path, "qcrs", "qcrs", radius, correct, 171, 0.2, sound=False)
    rows = extra_information_rows([better, same, base], radii=[0.0, 0.5])
    assert [r["method"] for r in rows] == ["baseline", "ensemble", "qcrs"]
    ens, qcrs = rows[1], rows[2]
    assert ens["ACR_diff"] == pytest.approx(0.1 * correct.mean())
    assert ens["ACR_diff_low"] <= ens["ACR_diff"] <= ens["ACR_diff_high"]
    assert ens["cost_ratio_evaluations"] == pytest.approx(3.0) and ens["cost_ratio_seconds"] == pytest.approx(3.0)
    assert qcrs["ACR_diff_low"] == qcrs["ACR_diff_high"] == 0.0 and not qcrs["sound"]
    assert qcrs["cost_ratio_evaluations"] == pytest.approx(171 / 110)
    assert rows[0]["cert_acc@0.5"] == pytest.approx(np.mean(correct & (radius >= 0.5)))


def test_the_interval_covers_a_noisy_difference_and_shrinks_with_more_inputs():
    rng = np.random.default_rng(1)
    widths = []
    for size in (50, 800):
        diff, low, high = paired_difference(rng.normal(0.05, 0.2, size), np.zeros(size))
        assert low < diff < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # ~ 1 / sqrt(size)


def test_a_missing_baseline_or_disjoint_inputs_is_refused(tmp_path):
    other = write_run(tmp_path, "dipole", "dipole", [0.5], [True], 110, 0.1)
    with pytest.raises(ValueError, match="exactly one Cohen baseline"):
        extra_information_rows([other], [0.0])
