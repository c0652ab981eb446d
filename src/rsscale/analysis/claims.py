"""The claims ledger: each claim of the survey, a measurable statement, and a verdict from the results.

A ledger (``workflow/config/claims.yaml``) lists claims; each names a *test*
registered here and the tables it reads.  A test gets the rows of those tables
and its parameters and returns the measured numbers (as text, with their
uncertainty) and a verdict:

* ``supported``: the statement holds by the test's rule;
* ``not supported``: the measurement contradicts it;
* ``inconclusive``: measured, but the uncertainty straddles the rule;
* ``not measured``: the study (config) did not produce the tables it needs.

Statistics: fitted slopes carry their least-squares standard error; gains
across dimensions use a one-sided sign test (binomial, p = 1/2) on how many
dimensions show a gain; monotone trends use Spearman's rank correlation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, spearmanr

from rsscale.analysis.dimension import fit_slope
from rsscale.io import read_rows as read_table

VERDICTS = ("supported", "not supported", "inconclusive", "not measured")

Rows = list[dict]
Test = Callable[[dict[str, Rows], dict], tuple[str, str]]
TESTS: dict[str, Test] = {}


def test(name: str):
    """Register a claim test under ``name``."""

    def decorate(func: Test) -> Test:
        TESTS[name] = func
        return func

    return decorate


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _sign_test(gains: Sequence[float], min_gain: float = 0.0) -> tuple[int, float]:
    """How many gains exceed 1 + min_gain, and the one-sided sign-test p-value of that count under no effect."""
    above = sum(g > 1 + min_gain for g in gains)
    return above, float(binomtest(above, len(gains), 0.5, alternative="greater").pvalue) if gains else math.nan


@test("slope")
def slope_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """A fitted log-log slope of ACR vs d equals ``expected`` within ``tolerance`` (beyond 2 standard errors)."""
    rows = [r for r in tables["dimension_slopes"]
            if r["group"] == params["group"] and r["noise"] == params["noise"] and r["norm"] == params["norm"]]
    if not rows:
        return "no such slope in the table", "not measured"
    slope, se = rows[0]["slope"], rows[0]["slope_se"]
    if isinstance(slope, str) or math.isnan(slope):
        return "no slope (fewer than 2 dimensions with a positive ACR)", "inconclusive"
    se = 0.0 if isinstance(se, str) or math.isnan(se) else se
    off = abs(slope - params["expected"])
    measured = f"slope {slope:+.3f} +- {se:.3f} (d = {rows[0]['d_min']:.0f}..{rows[0]['d_max']:.0f})"
    if off <= params["tolerance"]:
        return measured, "supported"
    return measured, "inconclusive" if off <= params["tolerance"] + 2 * se else "not supported"


@test("gain_over_d")
def gain_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """``method``'s ACR gain over its reference exceeds 1 at more dimensions than chance (sign test at ``level``)
    and, with ``cost_column``, costs more than the reference."""
    rows = [r for r in tables["dimension_remedies"] if r["method"] == params["method"]
            and (params.get("group") is None or r["group"] == params["group"])]
    gains = [r[f"gain_{params.get('norm', 'l2')}"] for r in rows]
    gains = [g for g in gains if isinstance(g, float) and not math.isnan(g)]
    if not gains:
        return "no rows", "not measured"
    min_gain = params.get("min_gain", 0.0)
    above, p = _sign_test(gains, min_gain)
    measured = (f"gain {min(gains):.3f}..{max(gains):.3f} (median {np.median(gains):.3f}); > {1 + min_gain:g} at "
                f"{above}/{len(gains)} d (sign test p = {p:.3g})")
    if params.get("growing"):
        d = [r["d"] for r in rows]
        rho = spearmanr(d, [r[f"gain_{params.get('norm', 'l2')}"] for r in rows]).statistic
        measured += f"; Spearman(d, gain) = {rho:+.2f}"
    enough = len(gains) >= params.get("min_points", 3)
    if not enough:
        measured += f"; fewer than {params.get('min_points', 3)} dimensions"
    holds = enough and (above == len(gains) or p <= params.get("level", 0.05))
    if "cost" in params:
        cost = params["cost"]
        ratios = []
        for row in rows:
            ref = [r for r in tables["dimension_remedies"] if r["group"] == row["group"] and r["d"] == row["d"]
                   and r["method"] == cost["reference"]]
            if ref:
                mine = sum(row[c] for c in cost["columns"])
                theirs = sum(ref[0][c] for c in cost["columns"])
                ratios.append(mine / theirs if theirs > 0 else math.inf)
        if ratios:
            measured += f"; cost vs {cost['reference']}: x{np.median(ratios):.2f} median"
            holds = holds and np.median(ratios) > 1
    if holds:
        return measured, "supported"
    return measured, "not supported" if above <= len(gains) / 2 else "inconclusive"


@test("sigma_tradeoff")
def sigma_tradeoff_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """Clean certified accuracy (r = 0) falls as sigma grows, and the largest radius certified for any input grows."""
    rows = sorted(tables["certified_accuracy"], key=lambda r: r["sigma"])
    radii = sorted(float(k.split("=")[1]) for k in rows[0] if k.startswith("r="))
    if len(rows) < 3:
        return "fewer than 3 sigmas", "not measured"
    sigmas = [r["sigma"] for r in rows]
    clean = [r["r=0"] for r in rows]
    reach = [max((rad for rad in radii if r[f"r={rad:g}"] > 0), default=0.0) for r in rows]
    rho_clean = spearmanr(sigmas, clean).statistic if len(set(clean)) > 1 else 0.0
    measured = (f"accuracy at r = 0: {', '.join(f'{c:.3f}' for c in clean)} (Spearman with sigma {rho_clean:+.2f}); "
                f"largest certified radius in the table: {', '.join(f'{x:g}' for x in reach)}")
    falls = rho_clean <= -params.get("min_rho", 0.8)
    grows = reach[-1] > reach[0] or max(reach) > reach[0]
    if falls and grows:
        return measured, "supported"
    return measured, "not supported" if not falls and not grows else "inconclusive"


@test("cost_in_n")
def cost_in_n_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """Wall-clock grows like n (log-log slope within ``tolerance`` of 1 for n >= ``n_min``) while the ACR gained
    over the last decade of n is below ``max_gain`` (relative)."""
    rows = sorted(tables["sample_count"], key=lambda r: r["n"])
    big = [r for r in rows if r["n"] >= params.get("n_min", 1000)]
    if len(big) < 2:
        return "fewer than 2 sample counts", "not measured"
    slope, se = fit_slope([r["n"] for r in big], [r["seconds_median"] for r in big])
    se = 0.0 if math.isnan(se) else se
    last, before = rows[-1], [r for r in rows if r["n"] <= rows[-1]["n"] / 10]
    gain = last["ACR"] / before[-1]["ACR"] - 1 if before and before[-1]["ACR"] > 0 else math.nan
    measured = (f"time slope {slope:.2f} +- {se:.2f} in n = {big[0]['n']:.0f}..{big[-1]['n']:.0f}; ACR "
                f"{before[-1]['ACR']:.3f} -> {last['ACR']:.3f} (+{100 * gain:.1f} %) for 10x the samples"
                if before else f"time slope {slope:.2f} +- {se:.2f}")
    linear = abs(slope - 1) <= params.get("tolerance", 0.2) + 2 * se
    slow = not math.isnan(gain) and gain <= params.get("max_gain", 0.2)
    if linear and slow:
        return measured, "supported"
    return measured, "not supported" if not linear and not slow else "inconclusive"


@test("cost_cut")
def cost_cut_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """Every run of ``method`` saves at least ``min_saving`` x the reference's forward passes, and either keeps
    the ACR within ``max_acr_loss`` (relative) of the reference or takes the reference's decision at its target
    radius on at least ``min_agreement`` of the inputs."""
    rows = tables["inference_cost"]
    reference = max((r for r in rows if r["method"] == "cohen"), key=lambda r: r["forward_passes_mean"], default=None)
    mine = [r for r in rows if r["method"] == params["method"]]
    if not mine or reference is None:
        return "no rows", "not measured"
    parts, saving_ok, quality_ok = [], [], []
    for row in mine:
        saving = row["passes_saved_x"]
        saving_ok.append(saving >= params.get("min_saving", 1.0))
        if "min_agreement" in params:
            quality = row["same_decision"]
            quality_ok.append(quality >= params["min_agreement"])
            parts.append(f"{row['label']}: {saving:.0f}x fewer passes, same decision on {100 * quality:.0f} %")
        else:
            loss = 1 - row["ACR"] / reference["ACR"] if reference["ACR"] > 0 else math.nan
            quality_ok.append(loss <= params.get("max_acr_loss", 0.1))
            parts.append(f"{row['label']}: {saving:.1f}x fewer passes, ACR {row['ACR']:.3f} vs {reference['ACR']:.3f}"
                         f" ({-100 * loss:+.1f} %)")
    measured = f"{'; '.join(parts)} (reference {reference['label']}, {int(mine[0]['inputs'])} inputs)"
    if all(saving_ok) and all(quality_ok):
        return measured, "supported"
    return measured, "not supported" if not any(saving_ok) and not any(quality_ok) else "inconclusive"


@test("training_gain")
def training_gain_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """Each objective of ``objectives`` has a larger ACR than Gaussian augmentation at the same sigma at more
    sigmas than not; with ``cheaper``/``dearer``, the first trains in less wall-clock than the second."""
    rows = tables["training_methods"]
    parts, holds, against = [], [], []
    for objective in params["objectives"]:
        ratios = [r["ACR_vs_gaussian"] for r in rows if r["objective"] == objective]
        ratios = [x for x in ratios if isinstance(x, float) and not math.isnan(x)]
        if not ratios:
            return f"no rows for {objective}", "not measured"
        above = sum(x > 1 for x in ratios)
        parts.append(f"{objective}: ACR x{min(ratios):.2f}..x{max(ratios):.2f} of Gaussian, higher at {above}/"
                     f"{len(ratios)} sigmas")
        holds.append(above > len(ratios) / 2)
        against.append(above < len(ratios) / 2)
    if "cheaper" in params:
        time = {o: float(np.median([r["time_vs_gaussian"] for r in rows if r["objective"] == o]))
                for o in (params["cheaper"], params["dearer"])}
        parts.append(f"training time vs Gaussian: {params['cheaper']} x{time[params['cheaper']]:.1f}, "
                     f"{params['dearer']} x{time[params['dearer']]:.1f} (median over sigma)")
        holds.append(time[params["cheaper"]] < time[params["dearer"]])
        against.append(time[params["cheaper"]] >= time[params["dearer"]])
    measured = "; ".join(parts)
    if all(holds):
        return measured, "supported"
    return measured, "not supported" if all(against) else "inconclusive"


@test("denoiser_gain")
def denoiser_gain_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """At every sigma of the ``denoised`` table, the noise-free classifier behind the ``objective`` denoiser has an
    ACR at least ``min_gain`` x its ACR without a denoiser, and at least ``min_fraction`` of the Gaussian-trained
    classifier's ACR (Salman et al.: far above no denoiser, close to noise training)."""
    rows = tables["denoised"]
    parts, gains, fractions = [], [], []
    for sigma in sorted({r["sigma"] for r in rows}):
        acr = {r["denoiser"] if r["model"] != "gaussian-trained" else "gaussian": r["ACR"]
               for r in rows if r["sigma"] == sigma}
        if not all(k in acr for k in (params["objective"], "none", "gaussian")):
            return f"sigma = {sigma:g}: no {params['objective']}, bare or Gaussian-trained row", "not measured"
        denoised, bare, gaussian = acr[params["objective"]], acr["none"], acr["gaussian"]
        gains.append(denoised / bare if bare > 0 else math.inf if denoised > 0 else 1.0)
        fractions.append(denoised / gaussian if gaussian > 0 else math.nan)
        parts.append(f"sigma {sigma:g}: ACR {bare:.3f} bare -> {denoised:.3f} with the {params['objective']} "
                     f"denoiser (Gaussian-trained {gaussian:.3f}, {100 * fractions[-1]:.0f} %)")
    if not parts:
        return "no rows", "not measured"
    measured = "; ".join(parts)
    gain_ok = [g >= params.get("min_gain", 1.5) for g in gains]
    close_ok = [f >= params.get("min_fraction", 0.5) for f in fractions]
    if all(gain_ok) and all(close_ok):
        return measured, "supported"
    return measured, "not supported" if not any(gain_ok) else "inconclusive"


@test("extra_gain")
def extra_gain_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """Rows of ``extra_information`` whose family or tag is in ``methods`` against the Cohen baseline, judged on the
    95 % paired-bootstrap interval of the ACR difference (relative to the baseline's ACR):

    * ``expect: gain``: the interval lies above 0 (supported) / below or at 0 (not supported);
    * ``expect: little``: the interval lies below ``max_gain`` (supported) / above it (not supported);
    * ``expect: any``: only the cost decides;

    and, when given, the base-model evaluations per input over the baseline's are >= ``min_cost`` or <= ``max_cost``,
    and the extra evaluations per input are at most ``max_extra`` times ``extra_of_n`` (a search whose cost does not
    depend on n, judged against a run of the published n).
    Intervals straddling the threshold make the claim inconclusive."""
    rows = tables["extra_information"]
    base = next((r for r in rows if r["family"] == "cohen"), None)
    mine = [r for r in rows if r["family"] in params["methods"] or r["method"] in params["methods"]]
    if base is None or not mine:
        return "no rows", "not measured"
    acr = base["ACR"]
    if params["expect"] not in ("gain", "little", "any"):
        raise ValueError(f"extra_gain: expect must be gain, little or any, got {params['expect']!r}")
    threshold = params.get("max_gain", 0.0) if params["expect"] == "little" else 0.0
    parts, holds, against = [], [], []
    for row in mine:
        low, high = row["ACR_diff_low"] / acr, row["ACR_diff_high"] / acr
        cost = row["cost_ratio_evaluations"]
        parts.append(f"{row['method']}: ACR x{row['ACR_ratio']:.3f} (95 % CI of the gain {100 * low:+.1f} .. "
                     f"{100 * high:+.1f} %) at x{cost:.2f} evaluations, x{row['cost_ratio_seconds']:.2f} wall-clock"
                     + ("" if row["sound"] else ", unsound"))
        if params["expect"] == "gain":
            ok, bad = low > threshold, high <= threshold
        elif params["expect"] == "little":
            ok, bad = high < threshold, low > threshold
        else:
            ok, bad = True, False
        if "min_cost" in params:
            ok, bad = ok and cost >= params["min_cost"], bad or cost < params["min_cost"]
        if "max_cost" in params:
            ok, bad = ok and cost <= params["max_cost"], bad or cost > params["max_cost"]
        if "max_extra" in params:  # extra evaluations as a fraction of a Cohen run with extra_of_n samples
            extra = (row["evaluations_per_input"] - base["evaluations_per_input"]) / params["extra_of_n"]
            parts[-1] += f", extra evaluations {100 * extra:.1f} % of n = {params['extra_of_n']:g}"
            ok, bad = ok and extra <= params["max_extra"], bad or extra > params["max_extra"]
        holds.append(ok)
        against.append(bad)
    measured = f"{'; '.join(parts)} ({int(base['inputs'])} inputs, Cohen ACR {acr:.3f})"
    if all(holds):
        return measured, "supported"
    return measured, "not supported" if all(against) else "inconclusive"


@test("violations_found")
def violations_found_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """The ``violations`` table: supported when every method of ``unsound`` has a found violation and every method of
    ``sound`` none; not supported when a listed unsound method has none or a sound one has some."""
    rows = {r["method"]: r for r in tables["violations"]}
    listed = list(params.get("unsound", [])) + list(params.get("sound", []))
    if not listed or any(m not in rows for m in listed):
        return f"missing rows: {[m for m in listed if m not in rows]}", "not measured"
    measured = "; ".join(f"{m}: {int(rows[m]['violations'])} violations in {int(rows[m]['points'])} points"
                         for m in listed)
    holds = (all(rows[m]["violations"] > 0 for m in params.get("unsound", []))
             and all(rows[m]["violations"] == 0 for m in params.get("sound", [])))
    return measured, "supported" if holds else "not supported"


@test("pending")
def pending_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """A claim whose experiment the study does not run yet."""
    return params.get("note", "no experiment yet"), "not measured"


def evaluate(ledger: Sequence[dict], table_dir: str | Path) -> Rows:
    """One verdict row per claim of the ledger, reading ``<table_dir>/<table>.csv``."""
    rows = []
    for claim in ledger:
        if claim["test"] not in TESTS:
            raise ValueError(f"claim {claim['id']!r}: unknown test {claim['test']!r}; known: {sorted(TESTS)}")
        paths = {name: Path(table_dir) / f"{name}.csv" for name in claim.get("tables", [])}
        missing = [name for name, path in paths.items() if not path.exists()]
        if missing:
            measured, verdict = f"tables not produced by this study: {', '.join(missing)}", "not measured"
        else:
            tables = {name: read_table(path) for name, path in paths.items()}
            measured, verdict = TESTS[claim["test"]](tables, claim.get("params", {}))
        rows.append({"id": claim["id"], "section": claim["section"], "claim": claim["claim"],
                     "statement": claim["statement"], "measured": measured, "verdict": verdict})
    return rows
