"""The soundness harness (rsscale.harness): a case for every registered method, a verdict per worst-case position
(Holm's correction over a case's positions, exact violation probabilities, the power each case states), every norm
checked against its true radius, certifiers that err only at a few positions or in one norm caught, and the CLI."""

import csv
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

import rsscale
from rsscale import ABSTAIN, harness
from rsscale.binomial_tests import critical_count, detectable_rate, holm_adjusted, upper_pvalue
from rsscale.bounds import clopper_pearson_lower
from rsscale.certificate import Certificate
from rsscale.cli import main
from rsscale.exact import cohen_half_space_violation
from rsscale.methods import base
from rsscale.methods.cohen import Cohen
from rsscale.noise import NORMS, Gaussian, noise_from_sigma
from rsscale.oracles import IntervalClassifier, dual_norm, sign_vector, unit_vector
from rsscale.smooth import estimate, select

ALPHA = 0.05
#: Trials per position of the whole-harness run (slow tier).
TRIALS = 300
#: The slow cases get fewer trials here (the scaled DSRS radius search takes ~0.1 s per input).
LIMITS = {"cohen/gaussian-rotated-d10000": 60, "dsrs/truncated-ball-d10": 150, "dsrs/truncated-rotated-d100": 100,
          "dsrs/scaled-ball-d10": 15, "dsrs/scaled-k5-rotated-d16": 60, "second_order/slab-d2": 150}


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


class NearHalfDoubledAlpha(Cohen):
    """Cohen's CERTIFY (the same draws) with its bound taken at 2 alpha where the estimate k / n is below 0.55 (p_A
    near 1/2): a violation rate of about 2 alpha there, below alpha elsewhere -- an excess that averaging over
    positions dilutes."""

    def certify_many(self, xs, generator=None):
        sampler, dim = self.smoothed.sampler, math.prod(xs.shape[1:])
        top = select(sampler, xs, self.n0, generator)
        hits = estimate(sampler, xs, self.n, top, generator)
        certs = []
        for c_a, k in zip(top.tolist(), hits.tolist(), strict=True):
            p_lower = float(clopper_pearson_lower(k, self.n, 2 * self.alpha if k / self.n < 0.55 else self.alpha))
            certified = p_lower >= 0.5
            radii = self.smoothed.noise.radii(p_lower if certified else 0.0, dim)
            certs.append(Certificate(c_a if certified else ABSTAIN, radii["l2"], p_lower, self.n0 + self.n, 0.0,
                                     radii, {"count": k}))
        return certs


def factory_of(cls):
    def factory(name, **kwargs):
        assert name == "cohen"
        return cls(**kwargs)

    return factory


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rows():
    return harness.run_harness(TRIALS, seed=0, alpha=ALPHA, limits=LIMITS)


def test_every_registered_method_has_a_case():
    """A new method family must declare a harness case (its class's harness_cases) before this passes."""
    assert harness.missing_cases() == [], f"registered methods without a harness case: {harness.missing_cases()}"
    assert {c.method for c in harness.cases()} == set(rsscale.methods.available())
    assert len({c.key for c in harness.cases()}) == len(harness.cases())


def test_every_case_places_inputs_at_named_positions_and_selection_steps_near_half():
    for entry in harness.cases():
        assert entry.positions and len({p.label for p in entry.positions}) == len(entry.positions), entry.key
        assert set(entry.norms) <= set(NORMS) and "l2" in entry.norms, entry.key
    half_spaces = [c for c in harness.cases() if c.positions[0].label.startswith("p=")]
    assert len(half_spaces) >= 20 and all(c.positions[0].value == harness.NEAR_HALF for c in half_spaces)
    exact = {c.key for c in harness.cases() if all(p.exact for p in c.positions)}
    assert {"cohen/gaussian-rotated-d100", "cohen/laplace-axis-d10", "ensemble/majority-rotated-d100-K3",
            "projected/subspace-linear-d20"} <= exact
    (adaptive,) = [c for c in harness.cases(["adaptive"]) if c.name.startswith("betting")]
    p_star = norm.cdf(0.1 / harness.SIGMA)  # its decision threshold at r_target = 0.1
    values = [p.value for p in adaptive.positions]
    assert any(p_star - 0.011 < v < p_star for v in values) and any(p_star < v < p_star + 0.011 for v in values)


@pytest.mark.slow
def test_no_sound_method_fails_at_any_position_and_no_case_is_vacuous(rows):
    assert {r["method"] for r in rows} == set(rsscale.methods.available())
    for row in rows:
        assert row["verdict"] == ("sound" if rsscale.methods.info(row["method"]).sound else "flagged unsound"), row
        assert row["trials"] == LIMITS.get(f"{row['method']}/{row['case']}", TRIALS)
        assert row["rate_low"] <= row["rate"] <= row["rate_high"] and row["alpha"] == ALPHA
        assert 1.0 < row["detects_at"] < 20, row
    for entry in harness.cases():  # many inputs get a certificate: the check is not vacuous
        certified = [r["certified"] for r in rows if (r["method"], r["case"]) == (entry.method, entry.name)]
        assert np.mean(certified) > 0.4, entry.key


@pytest.mark.slow
def test_simulated_rates_match_the_exact_probabilities(rows):
    """Where the violation probability is computed exactly, the simulated count is a draw of Bin(T, exact): pooled
    over the exact rows, the standardized difference is small, and the rates sit just below alpha (the bound is
    tight on the half-space)."""
    exact = [r for r in rows if not math.isnan(r["exact"])]
    assert len(exact) >= 40 and all(r["exact"] <= ALPHA for r in exact)
    expected = sum(r["exact"] * r["trials"] for r in exact)
    variance = sum(r["exact"] * (1 - r["exact"]) * r["trials"] for r in exact)
    observed = sum(r["violations"] for r in exact)
    assert abs(observed - expected) < 4 * math.sqrt(variance), (observed, expected)
    assert all(ALPHA / 2 < r["exact"] for r in exact)


@pytest.mark.parametrize("key", ["cohen/gaussian-rotated-d100", "cohen/laplace-axis-d10"])
def test_point_estimate_in_place_of_the_bound_fails(key):
    (entry,) = [c for c in harness.cases() if c.key == key]
    outcome = harness.run_case(entry, 200, seed=0, alpha=ALPHA, factory=factory_of(PointEstimateCohen))
    rows = harness.summarize(entry, outcome, ALPHA, sound=True)
    assert harness.case_fails(rows) and outcome.violations().mean() > 0.2
    assert not harness.case_fails(harness.summarize(entry, outcome, ALPHA, sound=False))
    assert {r["verdict"] for r in harness.summarize(entry, outcome, ALPHA, sound=False)} == {"flagged unsound"}


def test_a_doubled_alpha_near_half_fails_at_that_position_though_the_pooled_rate_reads_sound():
    """The excess lives at p_A = 0.501 only: pooled over the five positions the rate's interval contains alpha (the
    old harness's verdict), per position with Holm's correction the case fails there, and Cohen's CERTIFY on the
    same draws passes."""
    (entry,) = [c for c in harness.cases() if c.key == "cohen/gaussian-rotated-d2"]
    outcome = harness.run_case(entry, 1500, seed=0, alpha=ALPHA, factory=factory_of(NearHalfDoubledAlpha))
    rows = harness.summarize(entry, outcome, ALPHA, sound=True)
    assert harness.case_fails(rows)
    assert [r["position"] for r in rows if r["verdict"] == "FAIL"] == [f"p={harness.NEAR_HALF:g}"]
    assert rows[0]["rate"] > 1.4 * ALPHA and rows[0]["detects_at"] < 1.6
    pooled = outcome.violations()
    assert harness.rate_interval(int(pooled.sum()), len(pooled))[0] <= ALPHA
    correct = harness.summarize(entry, harness.run_case(entry, 1500, seed=0, alpha=ALPHA), ALPHA)
    assert not harness.case_fails(correct) and {r["verdict"] for r in correct} == {"sound"}


def _conversion_with_half_the_exponent(radius, from_norm, to_norm, dim):
    """The l_p -> l_q conversion with the exponent 1/p - 1/q halved (q > p): an l_inf ball too large."""
    p, q = NORMS[from_norm], NORMS[to_norm]
    if q <= p:
        return float(radius)
    return float(radius) / dim ** (0.5 * (1.0 / p - (0.0 if math.isinf(q) else 1.0 / q)))


def _conversion_with_the_exponent_reversed(radius, from_norm, to_norm, dim):
    """The l_p -> l_q conversion that scales up by d^(1/q - 1/p) for q < p: an l1 ball too large."""
    p, q = NORMS[from_norm], NORMS[to_norm]
    if q >= p:
        return float(radius) / dim ** (1.0 / p - (0.0 if math.isinf(q) else 1.0 / q))
    return float(radius) * dim ** (1.0 / q - 1.0 / p)


@pytest.mark.parametrize("key, conversion, wrong_norm", [
    ("cohen/gaussian-rotated-d100", _conversion_with_half_the_exponent, "linf"),
    ("cohen/gaussian-axis-d2", _conversion_with_the_exponent_reversed, "l1"),
])
def test_a_wrong_exponent_in_the_norm_conversion_fails_in_that_norm(monkeypatch, key, conversion, wrong_norm):
    """Every certificate's l1, l2 and l_inf radii are checked against the true radius in that norm: the random-sign
    diagonal is tight in l_inf, the axis in l1, so a wrong exponent shows in exactly the norm it inflates."""
    (entry,) = [c for c in harness.cases() if c.key == key]
    right = harness.run_case(entry, 300, seed=1, alpha=ALPHA)
    monkeypatch.setattr(rsscale.noise, "convert_radius", conversion)
    wrong = harness.run_case(entry, 300, seed=1, alpha=ALPHA)
    rows = harness.summarize(entry, wrong, ALPHA, sound=True)
    assert harness.case_fails(rows)
    assert np.array_equal(right.violations("l2"), wrong.violations("l2"))  # the native norm is unchanged
    assert wrong.violations(wrong_norm).sum() > 5 * max(1, right.violations(wrong_norm).sum())
    assert sum(r[f"violations_{wrong_norm}"] for r in rows) == wrong.violations(wrong_norm).sum()
    assert not harness.case_fails(harness.summarize(entry, right, ALPHA, sound=True))


def test_true_radius_in_each_norm_is_the_dual_norm_distance():
    """A half-space u . x > 0 with ||u||_2 = 1: the smallest ||delta||_q that crosses it from t = u . x is |t| /
    ||u||_q* (q* dual to q); checked against the perturbation that attains it (delta along the dual direction)."""
    noise = Gaussian(0.5)
    for u in (unit_vector(6, 0), sign_vector(6), unit_vector(6, None, 3)):
        oracle = IntervalClassifier(u, [0.0], [0, 1], num_classes=2)
        t = np.array([0.7, -0.3])
        u64 = oracle.u.double()
        attaining = {"l2": u64, "linf": u64.sign(), "l1": torch.eye(6, dtype=torch.float64)[u64.abs().argmax()]
                     * u64[u64.abs().argmax()].sign()}
        for q, direction in attaining.items():
            radius = oracle.true_radii(t, noise, q)
            # moving by radius * direction / ||direction||_q reaches the hyperplane exactly
            scale = {"l1": direction.abs().sum(), "l2": direction.norm(), "linf": direction.abs().max()}[q]
            reach = radius * float(u64 @ direction) / float(scale)
            assert reach == pytest.approx(np.abs(t), rel=1e-6), (q, u)
    assert IntervalClassifier(sign_vector(100), [0.0], [0, 1], 2).true_radii(np.array([1.0]), noise, "linf") == \
        pytest.approx([0.1], rel=1e-6)


def test_exact_cohen_violation_against_brute_force_enumeration():
    """The finite sum of rsscale.exact against a literal double loop over the selection and estimation counts."""
    n0, n, alpha = 6, 40, 0.1
    bounds = [float(clopper_pearson_lower(k, n, alpha)) for k in range(n + 1)]
    for p in (0.501, 0.6, 0.9):
        total = 0.0
        for g_class in (0, 1):
            for k0 in range(n0 + 1):  # selection count of g's class; ties select class 0
                right = k0 > n0 - k0 or (k0 == n0 - k0 and g_class == 0)
                for k in range(n + 1):
                    bound = bounds[k]
                    if right:
                        bad, q = bound > p, p
                    else:
                        bad, q = bound >= 0.5, 1 - p
                    total += 0.5 * binom.pmf(k0, n0, p) * binom.pmf(k, n, q) * bad
        assert cohen_half_space_violation(p, n0, n, alpha) == pytest.approx(total, rel=1e-9, abs=1e-15)
    with pytest.raises(ValueError, match="p must lie in"):
        cohen_half_space_violation(0.5, n0, n, alpha)


def test_power_against_brute_force_binomial_sums():
    """detectable_rate: the power at it is >= 95 % and just below it < 95 %, both by summing the binomial pmf over
    the counts Holm's first step rejects (p-values by literal summation too)."""
    for trials, rate0, tests in ((200, 0.05, 1), (1000, 0.05, 5), (600, 0.03, 3)):
        rate = detectable_rate(trials, rate0, tests, harness.LEVEL, harness.POWER)
        counts = np.arange(trials + 1)
        pmf0 = binom.pmf(counts, trials, rate0)
        pvalues = np.array([pmf0[k:].sum() for k in counts])
        reject = tests * pvalues < harness.LEVEL
        assert critical_count(trials, rate0, tests, harness.LEVEL) == counts[reject][0]
        assert binom.pmf(counts, trials, rate)[reject].sum() >= harness.POWER - 1e-9
        assert binom.pmf(counts, trials, rate * (1 - 1e-4))[reject].sum() < harness.POWER
        assert upper_pvalue(int(counts[reject][0]), trials, rate0) == pytest.approx(pvalues[reject][0], rel=1e-9)
    assert 1 < harness.detects_at(5000, 5, ALPHA) < harness.detects_at(500, 5, ALPHA)  # more trials: more power
    assert harness.detects_at(500, 1, ALPHA) < harness.detects_at(500, 5, ALPHA)  # more positions: less
    assert math.isinf(detectable_rate(3, 0.5, 4, harness.LEVEL, harness.POWER))  # no count of 3 is significant


def test_holm_against_its_definition():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 9):
        p = rng.uniform(0, 0.2, m)
        order = np.argsort(p)
        expected = np.empty(m)
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            expected[i] = running
        assert np.allclose(holm_adjusted(p), expected)


def _row(violations, trials, exact=math.nan, p_holm=1.0):
    return {"trials": trials, "violations": violations, "alpha": ALPHA, "exact": exact, "p_holm": p_holm}


def test_verdict_rule():
    assert harness.verdict(_row(0, 0)) == "no case"
    assert harness.verdict(_row(80, 1000, p_holm=0.001)) == "FAIL"
    assert harness.verdict(_row(60, 1000, p_holm=0.2)) == "sound"
    assert harness.verdict(_row(80, 1000, p_holm=0.001), sound=False) == "flagged unsound"
    assert harness.verdict(_row(40, 1000, exact=0.051)) == "FAIL"  # the exact probability itself exceeds alpha
    assert harness.verdict(_row(40, 1000, exact=0.049)) == "sound"
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
    rows = harness.run_harness(50, names=["declared"])
    assert [r["position"] for r in rows] == [p.label for p in harness.cases(["declared"])[0].positions]
    assert all(r["trials"] == 50 and r["verdict"] == "sound" for r in rows)

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
    short = harness.run_case(entry, harness.PACK, seed=3)
    long = harness.run_case(entry, 2 * harness.PACK, seed=3)
    for j in range(len(entry.positions)):
        first = np.nonzero(long.position == j)[0][: harness.PACK]
        at = short.position == j
        for name in ("prediction", "true_class"):
            assert np.array_equal(getattr(short, name)[at], getattr(long, name)[first])
        for q in NORMS:
            assert np.array_equal(short.radii[q][at], long.radii[q][first])
            assert np.array_equal(short.true_radii[q][at], long.true_radii[q][first])
    other = harness.run_case(entry, harness.PACK, seed=4)
    assert not np.array_equal(short.radii["l2"], other.radii["l2"])


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
    assert [(r["case"], r["position"]) for r in table] == [(c.name, p.label) for c in harness.cases(["cohen"])
                                                           for p in c.positions]
    assert list(table[0]) == harness.COLUMNS
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(table) and all(" -> sound " in line for line in printed)

    monkeypatch.setattr(rsscale.methods, "build", factory_of(PointEstimateCohen))
    with pytest.raises(SystemExit) as exit_info:
        main(["harness", "--trials", "100", "--methods", "cohen", *options, "--out", str(tmp_path / "unsound")])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "FAIL" in error and "cohen/gaussian-axis-d2 p=0.8" in error

    assert main(["harness", "--trials", "10", "--limit", "cohen/nothing=5", "--out", str(out)]) == 2
    assert main(["harness", "--trials", "10", "--limit", "cohen/gaussian-axis-d2", "--out", str(out)]) == 2
    assert main(["harness", "--trials", "10", "--methods", "nothing", "--out", str(out)]) == 2


def _rows_without_seconds(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(path.open())]


def test_a_killed_harness_run_resumes_with_the_cases_it_had_not_finished(tmp_path, monkeypatch):
    """Rows are written as each case finishes; a restart takes the finished cases from the file, runs the others,
    and writes the table of an uninterrupted run; rows of a run with other trials are refused."""
    from rsscale.experiments import soundness

    whole = soundness.run(tmp_path / "whole", 20, ["cohen", "dipole"], seed=3)
    first = len(harness.cases(["cohen"])[0].positions)
    lines = (tmp_path / "whole.csv").read_text().splitlines(keepends=True)
    # the first case's rows and half of the second's first row: the first case is done, the second is not
    (tmp_path / "resumed.csv").write_text("".join(lines[: first + 2]) + lines[first + 2][:20])
    ran = []
    run_case = harness.run_case
    monkeypatch.setattr(harness, "run_case", lambda entry, *a, **k: ran.append(entry.key) or run_case(entry, *a, **k))
    resumed = soundness.run(tmp_path / "resumed", 20, ["cohen", "dipole"], seed=3)
    keys = [c.key for c in harness.cases(["cohen", "dipole"])]
    assert ran == keys[1:]
    assert _rows_without_seconds(tmp_path / "resumed.csv") == _rows_without_seconds(tmp_path / "whole.csv")
    assert [{**r, "seconds": 0} for r in resumed] == [{**r, "seconds": 0} for r in whole]
    assert (tmp_path / "resumed.md").is_file() and (tmp_path / "resumed.tex").is_file()
    with pytest.raises(ValueError, match="another harness run"):
        soundness.run(tmp_path / "resumed", 30, ["cohen", "dipole"], seed=3)
