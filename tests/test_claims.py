"""The claims ledger: every claim is well formed and names a known test; each test reaches each verdict."""

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from rsscale.cli import main
from rsscale.experiments import claims

LEDGER = Path(__file__).resolve().parents[1] / "workflow" / "config" / "claims.yaml"


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_ledger_covers_the_survey_claims_with_known_tests():
    ledger = yaml.safe_load(LEDGER.read_text())["claims"]
    ids = [c["id"] for c in ledger]
    assert len(ids) == len(set(ids)) >= 13
    for claim in ledger:
        assert {"id", "section", "claim", "statement", "test", "threshold"} <= set(claim), claim["id"]
        assert claim["test"] in claims.TESTS, claim["id"]
    claims.validate(ledger)
    assert {"linf-dimension", "dsrs-beats-np", "projection-helps", "sigma-tradeoff", "cost-linear-in-n"} <= set(ids)


def slope_table(slope, se):
    return {"dimension_slopes": [{"group": "synthetic", "noise": "gaussian", "norm": "linf", "points": 5,
                                  "d_min": 10.0, "d_max": 1e5, "slope": slope, "slope_se": se}]}


@pytest.mark.parametrize(("slope", "se", "verdict"), [(-0.49, 0.01, "supported"), (-0.2, 0.01, "not supported"),
                                                     (-0.4, 0.04, "inconclusive")])
def test_slope_verdicts(slope, se, verdict):
    params = {"group": "synthetic", "noise": "gaussian", "norm": "linf", "expected": -0.5, "tolerance": 0.05}
    measured, got = claims.TESTS["slope"](slope_table(slope, se), params)[:2]
    assert got == verdict and f"{slope:+.3f}" in measured


def remedy_rows(gains, seconds=(2.0, 1.0)):
    rows = []
    for d, gain in zip((10, 100, 1000, 10000, 100000)[:len(gains)], gains, strict=True):
        rows.append({"group": "synthetic", "d": float(d), "method": "cohen", "gain_l2": 1.0,
                     "sampling_seconds": seconds[1], "radius_seconds": 0.0})
        rows.append({"group": "synthetic", "d": float(d), "method": "dsrs_truncated", "gain_l2": gain,
                     "sampling_seconds": seconds[0], "radius_seconds": 0.01})
    return {"dimension_remedies": rows}


def test_gain_verdicts_use_the_sign_test_and_the_cost():
    params = {"method": "dsrs_truncated", "norm": "l2",
              "cost": {"reference": "cohen", "columns": ["sampling_seconds", "radius_seconds"]}}
    assert claims.TESTS["gain_over_d"](remedy_rows([1.02, 1.05, 1.01, 1.03, 1.04]), params)[1] == "supported"
    assert claims.TESTS["gain_over_d"](remedy_rows([0.99, 0.98, 1.0, 0.97, 0.96]), params)[1] == "not supported"
    assert claims.TESTS["gain_over_d"](remedy_rows([1.02, 1.05, 0.99, 1.03, 1.04]), params)[1] == "inconclusive"
    # all of 4 dimensions above: the exact one-sided lower bound (0.47) straddles 1/2, as the sign test (p = 1/16)
    assert claims.TESTS["gain_over_d"](remedy_rows([1.02, 1.05, 1.01, 1.03]), params)[1] == "inconclusive"
    cheaper = remedy_rows([1.02, 1.05, 1.01, 1.03, 1.04], seconds=(0.5, 1.0))  # a gain that costs less is not it
    assert claims.TESTS["gain_over_d"](cheaper, params)[1] != "supported"


def test_sigma_tradeoff_and_cost_in_n():
    accuracy = [{"sigma": s, "inputs": 360.0, "r=0": a, "r=0.5": b, "r=1": c, "ACR": 0.3}
                for s, a, b, c in ((0.12, 0.98, 0.0, 0.0), (0.25, 0.97, 0.6, 0.0), (0.5, 0.9, 0.4, 0.01))]
    assert claims.TESTS["sigma_tradeoff"]({"certified_accuracy": accuracy}, {})[1] == "supported"
    flat = [dict(row, **{"r=0": 0.9}) for row in accuracy]
    assert claims.TESTS["sigma_tradeoff"]({"certified_accuracy": flat}, {})[1] == "inconclusive"
    counts = [{"n": float(n), "seconds_median": n * 1e-5, "ACR": acr}
              for n, acr in ((100, 0.3), (1000, 0.45), (10000, 0.55), (100000, 0.6))]
    params = {"n_min": 1000, "tolerance": 0.2, "max_gain": 0.2}
    measured, verdict = claims.TESTS["cost_in_n"]({"sample_count": counts}, params)[:2]
    assert verdict == "supported" and "slope 1.00" in measured
    quadratic = [dict(row, seconds_median=row["n"] ** 2 * 1e-9) for row in counts]
    assert claims.TESTS["cost_in_n"]({"sample_count": quadratic}, params)[1] == "inconclusive"


def test_cli_writes_the_verdict_table_and_marks_missing_tables(tmp_path):
    table = slope_table(-0.5, 0.002)["dimension_slopes"]
    write_csv(tmp_path / "dimension_slopes.csv", table)
    ledger = tmp_path / "claims.yaml"
    ledger.write_text(yaml.safe_dump({"claims": [
        {"id": "a", "section": "2.1", "claim": "c", "statement": "s", "test": "slope", "tables": ["dimension_slopes"],
         "params": {"group": "synthetic", "noise": "gaussian", "norm": "linf", "expected": -0.5, "tolerance": 0.05},
         "threshold": {"source": "survey", "ref": "2.1", "text": "divided by sqrt(d)"}},
        {"id": "b", "section": "2.3", "claim": "c", "statement": "s", "test": "cost_in_n", "tables": ["sample_count"],
         "threshold": {"source": "convention", "text": "why"}},
    ]}))
    assert main(["claims", "--ledger", str(ledger), "--tables", str(tmp_path), "--out", str(tmp_path / "v")]) == 0
    rows = list(csv.DictReader((tmp_path / "v.csv").open()))
    assert [(r["id"], r["verdict"]) for r in rows] == [("a", "supported"), ("b", "not measured")]
    assert float(rows[0]["low"]) < -0.5 < float(rows[0]["high"]) and rows[0]["threshold_source"].startswith("survey")
    assert rows[1]["interval"] == "none: not measured" and rows[1]["measured"] in ("", "nan")
    assert (tmp_path / "v.tex").read_text().startswith(r"\begin{tabular}")
    ledger.write_text(yaml.safe_dump({"claims": [{"id": "x", "section": "1", "claim": "c", "statement": "s",
                                                  "test": "no_such_test", "threshold": {"source": "convention",
                                                                                         "text": "t"}}]}))
    assert main(["claims", "--ledger", str(ledger), "--tables", str(tmp_path), "--out", str(tmp_path / "w")]) == 2


def test_cost_cut_needs_both_the_saving_and_the_quality():
    rows = [{"label": "cohen n=100000", "method": "cohen", "forward_passes_mean": 100100.0, "passes_saved_x": 1.0,
             "ACR": 0.6, "same_decision": float("nan"), "inputs": 60.0},
            {"label": "betting r=0.25", "method": "adaptive", "forward_passes_mean": 500.0, "passes_saved_x": 200.0,
             "ACR": float("nan"), "same_decision": 1.0, "inputs": 200.0}]
    params = {"method": "adaptive", "min_saving": 50, "min_agreement": 0.97}
    measured, verdict = claims.TESTS["cost_cut"]({"inference_cost": rows}, params)[:2]
    assert verdict == "supported" and "200x fewer passes" in measured
    rows[1]["same_decision"] = 0.9
    assert claims.TESTS["cost_cut"]({"inference_cost": rows}, params)[1] == "inconclusive"
    rows[1].update(passes_saved_x=2.0)
    assert claims.TESTS["cost_cut"]({"inference_cost": rows}, params)[1] == "not supported"
    iss = dict(rows[1], method="iss_sound", label="iss_sound", passes_saved_x=3.0, passes_saved_low=2.9,
               passes_saved_high=3.1, ACR=0.58, ACR_loss=0.2 / 6, ACR_loss_low=0.01, ACR_loss_high=0.06)
    verdict = claims.TESTS["cost_cut"]({"inference_cost": [rows[0], iss]}, {"method": "iss_sound", "max_acr_loss": 0.1})
    assert verdict[1] == "supported" and "-3.3 %" in verdict[0]


def test_training_gain_compares_acr_and_cost_with_gaussian():
    rows = [{"objective": o, "sigma": s, "ACR_vs_gaussian": ratio, "time_vs_gaussian": time}
            for o, ratio, time in (("gaussian", 1.0, 1.0), ("macer", 1.2, 4.0), ("smoothadv", 1.1, 3.0))
            for s in (0.25, 0.5, 1.0)]
    table = {"training_methods": rows}
    plain = {"baseline": "gaussian"}
    assert claims.TESTS["training_gain"](table, {"objectives": ["macer", "smoothadv"], **plain})[1] == "supported"
    measured, verdict = claims.TESTS["training_gain"](table, {"objectives": ["macer"], "cheaper": "macer",
                                                              "dearer": "smoothadv", **plain})[:2]
    assert verdict == "not supported" and "macer x4.0" in measured  # the gain holds, the cost comparison refutes
    worse = [dict(r, ACR_vs_gaussian=0.9) if r["objective"] == "macer" else r for r in rows]
    assert claims.TESTS["training_gain"]({"training_methods": worse}, {"objectives": ["macer"], **plain})[1] == \
        "not supported"


def test_training_gain_reads_the_published_variant_against_the_equal_budget_baseline_without_collapsed_rows():
    def row(variant, objective, sigma, equal, collapsed=False):
        return {"variant": variant, "objective": objective, "sigma": sigma, "collapsed": str(collapsed),
                "ACR_vs_gaussian": 2.0, "ACR_vs_equal_budget": equal, "time_vs_gaussian": 5.0}

    rows = [row("shared loop", "macer", s, 0.5) for s in (0.25, 0.5, 1.0)]
    rows += [row("published recipe", "macer", 0.25, 1.1), row("published recipe", "macer", 0.5, 1.2),
             row("published recipe", "macer", 1.0, float("nan"), collapsed=True)]
    measured, verdict = claims.TESTS["training_gain"]({"training_methods": rows}, {"objectives": ["macer"]})[:2]
    assert verdict == "supported" and "higher at 2 to 2 of 2 sigmas" in measured and "published recipe" in measured
    shared = claims.TESTS["training_gain"]({"training_methods": rows}, {"objectives": ["macer"], "variant": "shared"})
    assert shared[1] == "not supported"
    collapsed_only = [dict(r, collapsed="True") for r in rows]
    assert claims.TESTS["training_gain"]({"training_methods": collapsed_only}, {"objectives": ["macer"]})[1] == \
        "not measured"


def test_training_gain_leaves_a_sigma_whose_ratio_interval_straddles_one_undecided():
    def row(sigma, ratio, low, high):
        return {"variant": "published recipe", "objective": "macer", "sigma": sigma, "collapsed": "False",
                "inputs": 100, "ACR_vs_equal_budget": ratio, "ACR_vs_equal_budget_low": low,
                "ACR_vs_equal_budget_high": high, "time_vs_gaussian": 5.0}

    sure = [row(0.25, 1.3, 1.1, 1.5), row(0.5, 1.2, 1.05, 1.4), row(1.0, 0.8, 0.7, 0.9)]
    outcome = claims.TESTS["training_gain"]({"training_methods": sure}, {"objectives": ["macer"]})
    assert outcome.verdict == "supported" and (outcome.low, outcome.high) == pytest.approx((2 / 3, 2 / 3))
    open_ = [row(0.25, 1.3, 1.1, 1.5), row(0.5, 1.2, 0.95, 1.4), row(1.0, 0.8, 0.7, 0.9)]
    outcome = claims.TESTS["training_gain"]({"training_methods": open_}, {"objectives": ["macer"]})
    assert outcome.verdict == "inconclusive" and (outcome.low, outcome.high) == pytest.approx((1 / 3, 2 / 3))
    assert "100 inputs" in outcome.interval


def extra_rows(**mine):
    base = {"method": "baseline", "family": "cohen", "sound": True, "inputs": 100.0, "ACR": 0.5, "ACR_ratio": 1.0,
            "ACR_diff": 0.0, "ACR_diff_low": 0.0, "ACR_diff_high": 0.0, "evaluations_per_input": 10100.0,
            "cost_ratio_evaluations": 1.0, "cost_ratio_seconds": 1.0}
    return {"extra_information": [base, {**base, "method": "ensemble", "family": "ensemble", **mine}]}


def test_extra_gain_reads_the_bootstrap_interval_and_the_cost():
    gain = {"methods": ["ensemble"], "expect": "gain", "min_cost": 1.5}
    table = extra_rows(ACR_ratio=1.1, ACR_diff_low=0.01, ACR_diff_high=0.09, cost_ratio_evaluations=3.0,
                       evaluations_per_input=30300.0)
    measured, verdict = claims.TESTS["extra_gain"](table, gain)[:2]
    assert verdict == "supported" and "ACR x1.100" in measured and "+2.0 .. +18.0 %" in measured
    table["extra_information"][1].update(ACR_diff_low=-0.01)
    assert claims.TESTS["extra_gain"](table, gain)[1] == "inconclusive"  # the interval straddles 0
    table["extra_information"][1].update(ACR_diff_high=-0.001)
    assert claims.TESTS["extra_gain"](table, gain)[1] == "not supported"
    little = {"methods": ["ensemble"], "expect": "little", "max_gain": 0.02}
    small = extra_rows(ACR_diff_low=-0.002, ACR_diff_high=0.004)
    assert claims.TESTS["extra_gain"](small, little)[1] == "supported"
    assert claims.TESTS["extra_gain"](extra_rows(ACR_diff_low=0.02, ACR_diff_high=0.04), little)[1] == "not supported"
    cheap = {"methods": ["ensemble"], "expect": "any", "max_extra": 0.1, "extra_of_n": 100000}
    assert claims.TESTS["extra_gain"](extra_rows(evaluations_per_input=17100.0), cheap)[1] == "supported"
    assert claims.TESTS["extra_gain"](extra_rows(evaluations_per_input=40100.0), cheap)[1] == "not supported"
    assert claims.TESTS["extra_gain"](extra_rows(), {"methods": ["sween"], "expect": "gain"})[1] == "not measured"


CLAIM = {"id": "k", "section": "2.1", "claim": "c", "statement": "s", "test": "slope",
         "threshold": {"source": "survey", "ref": "2.1", "text": "divided by sqrt(d)"}}


@pytest.mark.parametrize(("change", "message"), [
    ({"threshold": None}, "missing field(s) threshold"),
    ({"threshold": {"source": "hearsay", "text": "t"}}, "source one of"),
    ({"threshold": {"source": "survey", "text": "t"}}, "needs a ref"),
    ({"threshold": {"source": "published", "ref": "cohen2019certified", "text": " "}}, "needs a text"),
])
def test_a_claim_without_a_threshold_source_is_refused(change, message):
    claim = {k: v for k, v in {**CLAIM, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        claims.validate([claim])
    assert "'k'" in str(err.value)
    claims.validate([CLAIM, dict(CLAIM, threshold={"source": "convention", "text": "why this number"})])


@pytest.mark.parametrize(("low", "high", "verdict"), [(0.2, 0.4, "supported"), (-0.3, -0.1, "not supported"),
                                                      (-0.1, 0.3, "inconclusive")])
def test_an_interval_straddling_the_threshold_is_inconclusive(low, high, verdict):
    assert claims.judge(low, high, lower=0.0) == verdict
    assert claims.judge(-high, -low, upper=0.0) == verdict
    assert claims.judge(low, high, lower=-1.0, upper=1.0) == "supported"


@pytest.mark.parametrize(("agreeing", "inputs", "verdict"), [(200, 200, "supported"), (60, 60, "inconclusive"),
                                                             (40, 60, "inconclusive")])
def test_the_agreement_verdict_follows_its_exact_interval(agreeing, inputs, verdict):
    rows = [{"label": "cohen n=100000", "method": "cohen", "forward_passes_mean": 100100.0, "passes_saved_x": 1.0,
             "ACR": 0.6, "same_decision": float("nan"), "inputs": float(inputs)},
            {"label": "union r=0.25", "method": "adaptive", "forward_passes_mean": 500.0, "passes_saved_x": 200.0,
             "ACR": float("nan"), "same_decision": agreeing / inputs, "inputs": float(inputs)}]
    outcome = claims.TESTS["cost_cut"]({"inference_cost": rows}, {"method": "adaptive", "min_saving": 10,
                                                                   "min_agreement": 0.97})
    assert outcome.verdict == verdict and outcome.low < agreeing / inputs <= outcome.high
    assert "exact binomial over" in outcome.interval and outcome.threshold.startswith(">= 10x")
    assert (outcome.high < 0.97) == (agreeing == 40)  # all agree on 60 inputs: the interval straddles 0.97


def test_every_ledger_claim_reports_its_interval_or_why_not(tmp_path):
    """Evaluated on tables with no per-input files at hand, each verdict row carries an interval kind or a reason."""
    table = slope_table(-0.45, 0.03)["dimension_slopes"]  # interval -0.509 .. -0.391 straddles -0.45 +- 0.05's end
    write_csv(tmp_path / "dimension_slopes.csv", table)
    ledger = yaml.safe_load(LEDGER.read_text())["claims"]
    rows = claims.evaluate(ledger, tmp_path)
    assert all(r["interval"] and r["threshold_source"] for r in rows)
    first = next(r for r in rows if r["id"] == "linf-dimension")
    assert first["verdict"] == "inconclusive" and first["low"] < -0.5 < -0.4 < first["high"]


def test_the_paired_bootstrap_covers_a_known_ratio_and_repeats_with_its_seed():
    rng = np.random.default_rng(5)
    theirs = rng.uniform(0.2, 1.0, 400)
    mine = 0.8 * theirs * rng.uniform(0.9, 1.1, 400)  # mean ratio 0.8 in expectation
    ratio, low, high = claims.paired_ratio(mine, theirs)
    assert ratio == pytest.approx(mine.mean() / theirs.mean()) and low < ratio < high
    assert low < 0.8 < high and high - low < 0.05  # paired: the common factor cancels, the interval is narrow
    assert claims.paired_ratio(mine, theirs) == (ratio, low, high)
    assert claims.paired_ratio(mine, theirs, seed=1) != (ratio, low, high)
    assert claims.paired_ratio(np.r_[mine, 0.0], np.r_[theirs, 0.0])[1:] != (low, high)  # any input counts
    unpaired = claims.paired_ratio(mine, rng.permutation(theirs))
    assert unpaired[2] - unpaired[1] > 2 * (high - low)  # pairing by input is what makes it narrow
    diff, dlow, dhigh = claims.paired_difference(mine, theirs)
    assert diff == pytest.approx(mine.mean() - theirs.mean()) and dlow < diff < dhigh
    with pytest.raises(ValueError, match="one length"):
        claims.paired_ratio(mine, theirs[:-1])


def test_a_ratio_over_zero_means_is_unbounded_or_undefined():
    assert claims.paired_ratio([1.0, 2.0], [0.0, 0.0]) == (np.inf, np.inf, np.inf)
    assert all(np.isnan(claims.paired_ratio([0.0, 0.0], [0.0, 0.0])))
    ratio, low, high = claims.paired_ratio([1.0, 1.0, 0.0], [0.0, 0.0, 1.0])  # a third of resamples: 0 below
    assert ratio == 2.0 and low == 0.0 and high == np.inf


@pytest.mark.parametrize(("low", "high", "verdict"), [(0.02, 0.06, "supported"), (0.12, 0.2, "not supported"),
                                                      (0.05, 0.13, "inconclusive")])
def test_the_acr_cut_judges_the_saving_and_the_loss_on_their_intervals(low, high, verdict):
    reference = {"label": "cohen n=100000", "method": "cohen", "forward_passes_mean": 100100.0, "ACR": 0.6}
    iss = {"label": "iss_sound", "method": "iss_sound", "forward_passes_mean": 25000.0, "inputs": 60.0,
           "passes_saved_x": 4.0, "passes_saved_low": 3.8, "passes_saved_high": 4.2, "ACR": 0.6 * (1 - low),
           "ACR_loss": (low + high) / 2, "ACR_loss_low": low, "ACR_loss_high": high}
    params = {"method": "iss_sound", "min_saving": 1.0, "max_acr_loss": 0.1}
    outcome = claims.TESTS["cost_cut"]({"inference_cost": [reference, iss]}, params)
    assert outcome.verdict == verdict and (outcome.low, outcome.high) == (low, high)  # the loss decides, not 4x
    assert outcome.interval.startswith("paired percentile bootstrap over 60 inputs (2000 resamples)")
    assert "relative ACR loss of iss_sound" in outcome.interval
    slow = dict(iss, passes_saved_x=0.9, passes_saved_low=0.8, passes_saved_high=0.95)
    outcome = claims.TESTS["cost_cut"]({"inference_cost": [reference, slow]}, params)
    assert outcome.verdict == "not supported"
    if verdict != "not supported":  # the saving is the one beyond its bound
        assert (outcome.measured, outcome.low, outcome.high) == (0.9, 0.8, 0.95)
        assert "passes saved by iss_sound" in outcome.interval


def denoised_table(gain: tuple[float, float, float], fraction: tuple[float, float, float]) -> list[dict]:
    """One sigma of the denoised table: bare, the stability denoiser (its ratios given), Gaussian-trained."""
    rows = [{"sigma": 0.25, "model": model, "denoiser": denoiser, "inputs": 50.0, "ACR": acr}
            for model, denoiser, acr in (("noise-free", "none", 0.2), ("denoised", "stability", 0.2 * gain[0]),
                                         ("gaussian-trained", "none", 0.2 * gain[0] / fraction[0]))]
    for name, ratio in (("bare", gain), ("gaussian", fraction)):
        rows[1].update(zip((f"ACR_vs_{name}", f"ACR_vs_{name}_low", f"ACR_vs_{name}_high"), ratio, strict=True))
    return rows


@pytest.mark.parametrize(("gain", "fraction", "verdict", "key"), [
    ((2.0, 1.8, 2.2), (0.6, 0.55, 0.65), "supported", 0.6),  # the fraction is the nearer to its bound
    ((1.1, 0.9, 1.3), (0.8, 0.7, 0.9), "not supported", 1.1),
    ((2.0, 1.8, 2.2), (0.55, 0.45, 0.65), "inconclusive", 0.55),
    ((1.6, 1.4, 1.8), (0.8, 0.7, 0.9), "inconclusive", 1.6)])
def test_the_denoiser_gain_judges_both_ratios_on_their_intervals(gain, fraction, verdict, key):
    outcome = claims.TESTS["denoiser_gain"]({"denoised": denoised_table(gain, fraction)},
                                            {"objective": "stability", "min_gain": 1.5, "min_fraction": 0.5})
    assert outcome.verdict == verdict and outcome.measured == key and outcome.low < key < outcome.high
    assert outcome.interval.startswith("paired percentile bootstrap over 50 inputs")
    assert "95 % CI" in outcome.details


def test_the_deciding_condition_is_the_one_nearest_or_farthest_beyond_its_bound():
    near = claims.Condition("near", 1.2, 1.1, 1.3, lower=1.0)
    far = claims.Condition("far", 5.0, 4.0, 6.0, lower=1.0)
    loss = claims.Condition("loss", 0.05, 0.02, 0.08, upper=0.1)
    assert claims.all_hold([far, near, loss]) == ("supported", near)
    assert claims.all_hold([far, loss]) == ("supported", loss)
    refuted = claims.Condition("refuted", 0.5, 0.4, 0.6, lower=1.0)
    assert claims.all_hold([near, refuted, claims.Condition("open", 1.0, 0.9, 1.1, lower=1.0)]) == (
        "not supported", refuted)
    assert claims.Condition("none", np.nan, np.nan, np.nan, lower=1.0).verdict() == "inconclusive"
