"""The family-cost experiment: sampling time apart from each family's own computation, ratios to Cohen's."""

import csv
import json
import time

import pytest
import torch

import rsscale
from rsscale.cli import main
from rsscale.experiments import family_cost
from rsscale.models import build_model
from rsscale.sampling import SAMPLING_CLOCK

pytestmark = pytest.mark.usefixtures("one_thread")


def _cnn(seed=0):
    torch.manual_seed(seed)
    return build_model("cnn", image_size=8, in_channels=1, num_classes=10, width=4, hidden=8).eval()


class SlowCohen:
    """Cohen's certifier with a fixed computation of its own after sampling (a stand-in for a radius search)."""

    name = "cohen"

    def __init__(self, inner, pause):
        self.inner, self.pause = inner, pause

    def certify_many(self, xs, generator=None):
        certs = self.inner.certify_many(xs, generator)
        time.sleep(self.pause)
        return certs


def test_the_sampling_clock_counts_time_in_the_engine_only():
    certifier = rsscale.methods.build("cohen", model=_cnn(), num_classes=10, sigma=0.25, n0=10, n=200)
    before = SAMPLING_CLOCK.seconds
    start = time.perf_counter()
    certifier.certify_many(torch.rand(3, 1, 8, 8), torch.Generator().manual_seed(0))
    wall = time.perf_counter() - start
    assert 0 < SAMPLING_CLOCK.seconds - before <= wall


def test_own_computation_is_apart_from_the_cost_per_evaluation():
    model = _cnn()
    cohen = rsscale.methods.build("cohen", model=model, num_classes=10, sigma=0.25, n0=10, n=300)
    certifiers = {"baseline": cohen, "slow": SlowCohen(cohen, 0.05),
                  "ensemble": rsscale.methods.build("ensemble", model=[model, _cnn(1), _cnn(2)], num_classes=10,
                                                    sigma=0.25, n0=10, n=300)}
    rows = {r["run"]: r for r in family_cost.measure(certifiers, torch.rand(4, 1, 8, 8), rounds=2)}
    assert rows["baseline"]["per_evaluation_ratio"] == 1.0 and rows["baseline"]["evaluation_ratio"] == 1.0
    assert rows["slow"]["method_seconds"] >= 0.05 / 4 * 0.9  # the pause, per input
    assert rows["slow"]["method_share"] > rows["baseline"]["method_share"]
    assert rows["ensemble"]["evaluations"] == 3 * 310 and rows["ensemble"]["evaluation_ratio"] == 3.0
    assert rows["baseline"]["forward_passes"] == 310 and rows["baseline"]["inputs"] == 4


def test_a_missing_baseline_or_no_rounds_is_refused():
    cohen = rsscale.methods.build("cohen", model=_cnn(), num_classes=10, sigma=0.25, n0=10, n=20)
    with pytest.raises(ValueError, match="Cohen baseline labelled 'baseline'"):
        family_cost.measure({"cohen": cohen}, torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        family_cost.measure({"baseline": cohen}, torch.rand(2, 1, 8, 8), rounds=0)


def test_cli_writes_the_table_from_checkpoints(tmp_path):
    data = str(tmp_path / "d.pt")
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", data]) == 0
    paths = []
    for seed in (0, 1):
        paths.append(str(tmp_path / f"m{seed}.pt"))
        assert main(["train", "--data", data, "--sigma", "0.25", "--epochs", "1", "--arch-params",
                     '{"width": 4, "hidden": 8}', "--seed", str(seed), "--out", paths[-1], "--quiet"]) == 0
    runs = {"baseline": {"method": "cohen", "checkpoint": paths[0], "params": {"n0": 10, "n": 50}},
            "ensemble": {"method": "ensemble", "checkpoint": paths, "params": {"n0": 10, "n": 50}}}
    assert main(["family-cost", "--data", data, "--runs", json.dumps(runs), "--inputs", "3", "--rounds", "1",
                 "--out", str(tmp_path / "cost")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "cost.csv")))
    assert [r["run"] for r in rows] == ["baseline", "ensemble"] and float(rows[1]["evaluation_ratio"]) == 2.0
    assert json.loads((tmp_path / "cost.json").read_text())["parameters"]["rounds"] == 1
    bad = {"ensemble": runs["ensemble"]}
    assert main(["family-cost", "--data", data, "--runs", json.dumps(bad), "--out", str(tmp_path / "x")]) == 2
