"""The soundness harness (rsscale.harness): a case for every registered method, no sound method failing, violations
actually observed near alpha on the tight Gaussian oracles, an unsound certifier caught, and the CLI."""

import csv
import dataclasses
import math

import numpy as np
import pytest
import torch

import rsscale
from rsscale import ABSTAIN, harness
from rsscale.cli import main
from rsscale.methods import base
from rsscale.methods.cohen import Cohen
from rsscale.noise import Gaussian, noise_from_sigma
from rsscale.oracles import IntervalClassifier, dual_norm, unit_vector

ALPHA = 0.05
TRIALS = 1000
#: The slow cases get fewer trials here (the scaled DSRS radius search takes ~0.3 s per input).
LIMITS = {"cohen/gaussian-rotated-d10000": 200, "dsrs/truncated-ball-d10": 400, "dsrs/truncated-rotated-d100": 300,
          "dsrs/scaled-ball-d10": 25, "dsrs/scaled-k5-rotated-d16": 200}


class PointEstimateCohen(Cohen):
    """Cohen's CERTIFY with the point estimate k / n in place of the Clopper-Pearson bound: not a certificate."""

    def certify_many(self, xs, generator=None):
        dim = math.prod(xs.shape[1:])
        certs = []
        for cert in super().certify_many(xs, generator):
            if cert.prediction != ABSTAIN:
                p_hat = min(cert.extra["count"] / self.n, 1 - 1e-9)
                radii = self.smoothed.noise.radii(p_hat, dim)
                cert = dataclasses.replace(cert, radius=radii["l2"], radii=radii, p_lower=p_hat)
            certs.append(cert)
        return certs


def point_estimate_factory(name, **kwargs):
    assert name == "cohen"
    return PointEstimateCohen(**kwargs)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rows():
    return harness.run_harness(TRIALS, seed=0, alpha=ALPHA, limits=LIMITS)


def test_every_registered_method_has_a_case():
    """A new method family must declare a harness case (its class's harness_cases) before this passes."""
    assert harness.missing_cases() == [], f"registered methods without a harness case: {harness.missing_cases()}"
    assert {c.method for c in harness.cases()} == set(rsscale.methods.available())
    assert len({c.key for c in harness.cases()}) == len(harness.cases())


@pytest.mark.slow
def test_no_sound_method_fails_and_no_case_is_vacuous(rows):
    assert {r["method"] for r in rows} == set(rsscale.methods.available())
    for row in rows:
        assert row["verdict"] == ("sound" if rsscale.methods.info(row["method"]).sound else "flagged unsound"), row
        assert row["trials"] == LIMITS.get(f"{row['method']}/{row['case']}", TRIALS)
        assert row["certified"] > 0.4, row  # many inputs get a certificate: the check is not vacuous
        assert row["rate_low"] <= row["rate"] <= row["rate_high"] and row["alpha"] == ALPHA


@pytest.mark.slow
def test_gaussian_cases_violate_at_a_measurable_rate_below_alpha(rows):
    """On a half-space Cohen's radius from the exact p_A is the true radius, so with n = 500 the rate sits just below
    alpha: the harness would see a bound that is loose in the wrong direction."""
    gaussian = [r for r in rows if r["method"] == "cohen" and r["case"].startswith("gaussian")]
    assert len(gaussian) >= 5 and all(r["violations"] > 0 for r in gaussian)
    tight = [r for r in gaussian if "3class" not in r["case"]]
    pooled = sum(r["violations"] for r in tight) / sum(r["trials"] for r in tight)
    assert ALPHA / 2 < pooled < 1.2 * ALPHA
    for name in ("laplace", "uniform"):  # the l1 certificates are tight on the axis half-space too
        (row,) = [r for r in rows if r["case"].startswith(name)]
        assert row["violations"] > ALPHA / 4 * row["trials"]


@pytest.mark.parametrize("key", ["cohen/gaussian-rotated-d100", "cohen/laplace-axis-d10"])
def test_point_estimate_in_place_of_the_bound_fails(key):
    (entry,) = [c for c in harness.cases() if c.key == key]
    outcomes = harness.run_case(entry, 500, seed=0, alpha=ALPHA, factory=point_estimate_factory)
    (row,) = harness.summarize(entry, outcomes, ALPHA, sound=True)
    assert row["verdict"] == "FAIL" and row["rate"] > 0.2, row
    (row,) = harness.summarize(entry, outcomes, ALPHA, sound=False)
    assert row["verdict"] == "flagged unsound"


def test_verdict_rule():
    assert harness.verdict(0, 0, ALPHA) == "no case"
    assert harness.verdict(80, 1000, ALPHA) == "FAIL"  # 95% interval [0.064, 0.099]
    assert harness.verdict(60, 1000, ALPHA) == "sound"  # [0.046, 0.077] contains alpha
    assert harness.verdict(80, 1000, ALPHA, sound=False) == "flagged unsound"
    low, high = harness.rate_interval(80, 1000)
    assert 0.062 < low < 0.066 and 0.097 < high < 0.101


def test_a_method_without_a_case_is_reported(monkeypatch):
    class Unchecked(Cohen):
        name = "unchecked"

    monkeypatch.setitem(base._REGISTRY, "unchecked", Unchecked)
    assert harness.missing_cases() == ["unchecked"]
    (row,) = harness.run_harness(10, names=["unchecked"])
    assert row["verdict"] == "no case" and row["trials"] == 0
    assert "no harness case" in harness.format_row(row)


def test_cases_are_declared_by_the_family_and_never_inherited(monkeypatch):
    class Declared(Cohen):
        name = "declared"

        @classmethod
        def harness_cases(cls):
            return [harness.half_space_case(cls.name, "gaussian", 2, axis=0)]

    class Inheriting(Declared):
        name = "inheriting"

    monkeypatch.setitem(base._REGISTRY, "declared", Declared)
    monkeypatch.setitem(base._REGISTRY, "inheriting", Inheriting)
    assert [c.key for c in harness.cases(["declared"])] == ["declared/gaussian-axis-d2"]
    assert harness.missing_cases(["declared", "inheriting"]) == ["inheriting"]
    (row,) = harness.run_harness(50, names=["declared"])
    assert row["trials"] == 50 and row["verdict"] == "sound"

    class Foreign(Cohen):
        name = "foreign"

        @classmethod
        def harness_cases(cls):
            return [harness.half_space_case("cohen", "gaussian", 2, axis=0)]

    monkeypatch.setitem(base._REGISTRY, "foreign", Foreign)
    with pytest.raises(ValueError, match="harness cases of 'foreign' must be its own"):
        harness.cases(["foreign"])


def test_runs_are_deterministic_and_longer_runs_extend_shorter_ones():
    (entry,) = [c for c in harness.cases() if c.key == "cohen/gaussian-rotated-d2"]
    short = harness.run_case(entry, harness.PACK, seed=3)["l2"]
    long = harness.run_case(entry, 2 * harness.PACK, seed=3)["l2"]
    for field in dataclasses.fields(short):
        assert np.array_equal(getattr(short, field.name), getattr(long, field.name)[: harness.PACK])
    other = harness.run_case(entry, harness.PACK, seed=4)["l2"]
    assert not np.array_equal(short.radius, other.radius)


def test_oracle_closed_forms_used_by_the_harness():
    oracle = IntervalClassifier(unit_vector(16, None, 1), [-0.4, 0.4], [1, 0, 2], num_classes=3)
    ts = np.random.default_rng(0).uniform(-1.5, 1.5, 40)
    xs = oracle.inputs_at(ts, torch.Generator().manual_seed(0))
    assert np.allclose(oracle.projections(xs), ts, atol=1e-5)
    noise = Gaussian(0.5)
    loop = [oracle.true_radius(t, noise) for t in ts]
    assert np.allclose(oracle.true_radii(ts, noise), loop, rtol=0, atol=1e-12)
    linf = oracle.true_radii(ts, noise, "linf")
    assert np.allclose(linf, np.asarray(loop) / dual_norm(oracle.u, "linf"), atol=1e-6)
    with pytest.raises(ValueError, match="axis-aligned"):  # no closed form for l1 noises off the axes
        oracle.smoothed_probs(0.0, noise_from_sigma("laplace", 0.5))
    axis = IntervalClassifier(unit_vector(16, 0), [0.0], [0, 1], num_classes=2)
    assert axis.true_radii(np.array([0.3, -0.2]), noise_from_sigma("uniform", 0.5), "l1") == pytest.approx([0.3, 0.2])


def test_cli_writes_the_table_and_fails_on_an_unsound_method(tmp_path, capsys, monkeypatch):
    out = tmp_path / "soundness"
    options = ["--limit", "cohen/gaussian-rotated-d10000=10", "--threads", "1"]
    assert main(["harness", "--trials", "100", "--methods", "cohen", *options, "--out", str(out)]) == 0
    for ext in (".csv", ".md", ".tex"):
        assert (tmp_path / f"soundness{ext}").is_file()
    table = list(csv.DictReader((tmp_path / "soundness.csv").open()))
    assert [r["case"] for r in table] == [c.name for c in harness.cases(["cohen"])]
    assert list(table[0]) == harness.COLUMNS
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(table) and all(" -> sound " in line for line in printed)

    monkeypatch.setattr(rsscale.methods, "build", point_estimate_factory)
    with pytest.raises(SystemExit) as exit_info:
        main(["harness", "--trials", "300", "--methods", "cohen", *options, "--out", str(tmp_path / "unsound")])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "FAIL" in error and "cohen/gaussian-axis-d2" in error

    assert main(["harness", "--trials", "10", "--limit", "cohen/nothing=5", "--out", str(out)]) == 2
    assert main(["harness", "--trials", "10", "--limit", "cohen/gaussian-axis-d2", "--out", str(out)]) == 2
    assert main(["harness", "--trials", "10", "--methods", "nothing", "--out", str(out)]) == 2


def _rows_without_seconds(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(path.open())]


def test_a_killed_harness_run_resumes_with_the_cases_it_had_not_finished(tmp_path, monkeypatch):
    """Rows are written as each case finishes; a restart takes the finished cases from the file, runs the others,
    and writes the table of an uninterrupted run; rows of a run with other trials are refused."""
    from rsscale.experiments import soundness

    whole = soundness.run(tmp_path / "whole", 40, ["cohen", "dipole"], seed=3)
    lines = (tmp_path / "whole.csv").read_text().splitlines(keepends=True)
    (tmp_path / "resumed.csv").write_text("".join(lines[:4]) + lines[4][:20])  # 3 rows, then half a row
    ran = []
    run_case = harness.run_case
    monkeypatch.setattr(harness, "run_case", lambda entry, *a, **k: ran.append(entry.key) or run_case(entry, *a, **k))
    resumed = soundness.run(tmp_path / "resumed", 40, ["cohen", "dipole"], seed=3)
    assert len(ran) == len(whole) - 3 and not {f"{r['method']}/{r['case']}" for r in whole[:3]} & set(ran)
    assert _rows_without_seconds(tmp_path / "resumed.csv") == _rows_without_seconds(tmp_path / "whole.csv")
    assert [{**r, "seconds": 0} for r in resumed] == [{**r, "seconds": 0} for r in whole]
    assert (tmp_path / "resumed.md").is_file() and (tmp_path / "resumed.tex").is_file()
    with pytest.raises(ValueError, match="another harness run"):
        soundness.run(tmp_path / "resumed", 50, ["cohen", "dipole"], seed=3)
