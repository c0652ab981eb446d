"""The claims ledger: each claim of the survey, a measurable statement, and a verdict from the results.

A ledger (``workflow/config/claims.yaml``) lists claims; each names a *test*
and the tables it reads.  Each experiment registers the tests of its tables
with :func:`test` (importing :mod:`rsscale.experiments` registers them all).
A test gets the rows of those tables and its parameters and returns an :class:`Outcome`: the measured numbers
as text, the key number that decides with its 95 % interval (or the reason why there is none), the threshold,
and a verdict:

* ``supported``: the statement holds by the test's rule;
* ``not supported``: the measurement contradicts it;
* ``inconclusive``: measured, but the uncertainty straddles the rule;
* ``not measured``: the study (config) did not produce the tables it needs.

Every claim cites where its threshold comes from (``threshold: {source, ref, text}``): the survey's own words
(``ref``: its section), a published number (``ref``: the paper's bib key) or a convention of this project (the
text says why that number); :func:`validate` refuses a ledger without one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rsscale.bounds import clopper_pearson_interval
from rsscale.io import Run, read_rows
from rsscale.metrics import radius_if_correct

VERDICTS = ("supported", "not supported", "inconclusive", "not measured")
#: where a threshold may come from
SOURCES = ("survey", "published", "convention")
#: the level of every interval a verdict reports
LEVEL = 0.95
#: the two tails' quantiles of a percentile interval at :data:`LEVEL` (0.025, 0.975)
TAILS = (round((1 - LEVEL) / 2, 12), round((1 + LEVEL) / 2, 12))
#: resamples of every bootstrap interval
BOOTSTRAP = 2000
NAN = float("nan")


class Outcome(NamedTuple):
    """A claim test's result: ``details`` (the measured numbers as text) and ``verdict`` first, then the key
    number that decides (``measured``), its 95 % interval ``[low, high]`` (NaN: none), the kind of that interval or
    why there is none (``interval``) and the rule it is judged against (``threshold``)."""

    details: str
    verdict: str
    measured: float = NAN
    low: float = NAN
    high: float = NAN
    interval: str = ""
    threshold: str = ""


#: why an interval is missing where it would need the runs' per-input result files
PER_INPUT = "an interval needs the per-input result files, which the claims rule does not read"


def not_measured(details: str, threshold: str = "") -> Outcome:
    """The outcome of a claim whose tables lack the rows it needs."""
    return Outcome(details, "not measured", interval="none: not measured", threshold=threshold)


Rows = list[dict]
Test = Callable[[dict[str, Rows], dict], Outcome]


def judge(low: float, high: float, lower: float | None = None, upper: float | None = None) -> str:
    """The verdict of an interval ``[low, high]`` against the accepted region ``lower <= x <= upper`` (either end
    open when None): inside it ``supported``, outside it ``not supported``, straddling an end ``inconclusive``.
    A point estimate is the interval ``[x, x]``."""
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"judge: the interval [{low}, {high}] has no ends")
    inside = (lower is None or low >= lower) and (upper is None or high <= upper)
    outside = (lower is not None and high < lower) or (upper is not None and low > upper)
    return "supported" if inside else "not supported" if outside else "inconclusive"


def binomial_interval(successes: float, trials: float, one_sided: bool = False) -> tuple[float, float]:
    """Exact (Clopper & Pearson 1934) interval of a proportion at :data:`LEVEL`; ``one_sided``: each end is a
    one-sided bound at that level (the dual of a one-sided sign test)."""
    alpha = 2 * (1 - LEVEL) if one_sided else 1 - LEVEL
    low, high = clopper_pearson_interval(int(round(successes)), int(trials), alpha)
    return float(low), float(high)


def normal_interval(estimate: float, standard_error: float) -> tuple[float, float]:
    """The Wald interval ``estimate +- z * se`` at :data:`LEVEL` (z = 1.96)."""
    z = 1.959963984540054
    return estimate - z * standard_error, estimate + z * standard_error


def _paired_bootstrap(statistic: Callable[[np.ndarray, np.ndarray], np.ndarray], mine, theirs,
                      seed: int) -> tuple[float, float, float]:
    """``statistic`` of two per-input arrays over the same inputs in the same order (it reduces the last axis), with
    its percentile-bootstrap interval at :data:`LEVEL`: :data:`BOOTSTRAP` resamples of the inputs with replacement,
    the same inputs for both arrays (Efron & Tibshirani 1993, ch. 13).  A resample whose statistic is undefined
    (0 / 0) is left out; an end between a finite and an infinite resampled value is infinite."""
    mine, theirs = np.asarray(mine, float), np.asarray(theirs, float)
    if mine.ndim != 1 or mine.shape != theirs.shape or not len(mine):
        raise ValueError(f"a paired bootstrap needs two per-input arrays of one length, got shapes {mine.shape} and "
                         f"{theirs.shape}")
    picks = np.random.default_rng(seed).integers(0, len(mine), size=(BOOTSTRAP, len(mine)))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate, values = statistic(mine, theirs), statistic(mine[picks], theirs[picks])
        values = values[~np.isnan(values)]
        if not len(values):
            return float(estimate), NAN, NAN
        ends = np.quantile(values, TAILS)
    infinite = np.where(np.quantile(values, TAILS, method="higher") == np.inf, np.inf, -np.inf)
    low, high = np.where(np.isnan(ends), infinite, ends)
    return float(estimate), float(low), float(high)


def paired_difference(mine, theirs, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``mine - theirs`` over paired inputs with its percentile-bootstrap interval (resampling inputs)."""
    return _paired_bootstrap(lambda a, b: (a - b).mean(axis=-1), mine, theirs, seed)


def paired_ratio(mine, theirs, seed: int = 0) -> tuple[float, float, float]:
    """``mean(mine) / mean(theirs)`` over paired inputs with its percentile-bootstrap interval (resampling inputs;
    a ratio of means, such as one ACR over another, is judged on the inputs both runs certified)."""
    return _paired_bootstrap(lambda a, b: a.mean(axis=-1) / b.mean(axis=-1), mine, theirs, seed)


def paired_acr_ratio(mine: Run, theirs: Run, seed: int = 0) -> tuple[float, float, float]:
    """One run's ACR over another's on the inputs both certified (matched by input index), with its 95 %
    paired-bootstrap interval (:func:`paired_ratio`)."""
    shared = np.intersect1d(mine.columns["idx"], theirs.columns["idx"])
    if not len(shared):
        raise ValueError(f"{mine.path} and {theirs.path} certified no input in common")

    def contributions(run: Run) -> np.ndarray:
        order = np.argsort(run.columns["idx"])
        picked = order[np.searchsorted(run.columns["idx"][order], shared)]
        return radius_if_correct(run.radius()[picked], run.correct[picked])

    return paired_ratio(contributions(mine), contributions(theirs), seed)


def bootstrap_kind(inputs: int, what: str) -> str:
    """The ``interval`` text of a paired-bootstrap outcome over ``inputs`` inputs; ``what``: of which number."""
    return f"paired percentile bootstrap over {int(inputs)} inputs ({BOOTSTRAP} resamples), {what}"


class Condition(NamedTuple):
    """One condition of a claim: the number ``value`` (named by ``label``) with its interval ``[low, high]``, which
    holds in ``lower <= x <= upper`` (either end open when None)."""

    label: str
    value: float
    low: float
    high: float
    lower: float | None = None
    upper: float | None = None

    def verdict(self) -> str:
        """:func:`judge` of the interval; one without ends (a ratio of two zero means) is inconclusive."""
        if math.isnan(self.low) or math.isnan(self.high):
            return "inconclusive"
        return judge(self.low, self.high, self.lower, self.upper)

    def margin(self) -> float:
        """How far the interval lies inside the accepted region, relative to the bound it is nearest (negative:
        beyond it; -inf without ends)."""
        sides = [(self.low - self.lower) / (abs(self.lower) or 1.0)] if self.lower is not None else []
        sides += [(self.upper - self.high) / (abs(self.upper) or 1.0)] if self.upper is not None else []
        return -math.inf if any(math.isnan(x) for x in sides) else min(sides)


def all_hold(conditions: Sequence[Condition]) -> tuple[str, Condition]:
    """The verdict of conditions that must all hold (:func:`worst` of theirs) and the condition that decides it: of
    those with that verdict, the one least inside (or farthest beyond) its bound."""
    if not conditions:
        raise ValueError("all_hold needs at least one condition")
    verdicts = [c.verdict() for c in conditions]
    verdict = worst(verdicts)
    return verdict, min((c for c, v in zip(conditions, verdicts, strict=True) if v == verdict), key=Condition.margin)


def worst(verdicts: Sequence[str]) -> str:
    """The verdict of several parts that must all hold: any not supported part refutes, any inconclusive one
    leaves it open."""
    for verdict in ("not measured", "not supported", "inconclusive"):
        if verdict in verdicts:
            return verdict
    return "supported"
TESTS: dict[str, Test] = {}


def test(name: str):
    """Register a claim test under ``name``."""

    def decorate(func: Test) -> Test:
        TESTS[name] = func
        return func

    return decorate


@test("pending")
def pending_test(tables: dict[str, Rows], params: dict) -> Outcome:
    """A claim whose experiment the study does not run yet."""
    return not_measured(params.get("note", "no experiment yet"))


def validate(ledger: Sequence[dict]) -> None:
    """Refuse a malformed ledger with a message naming the claim: every claim has its fields, a known test, and a
    threshold source ``{source: survey|published|convention, ref, text}`` (``ref``: the survey's section or the
    paper's bib key; a convention's ``text`` says why that number)."""
    for k, claim in enumerate(ledger):
        name = claim.get("id", f"#{k + 1}") if isinstance(claim, dict) else f"#{k + 1}"
        if not isinstance(claim, dict):
            raise ValueError(f"claim {name}: expected a mapping, got {claim!r}")
        absent = [f for f in ("id", "section", "claim", "statement", "test", "threshold") if f not in claim]
        if absent:
            raise ValueError(f"claim {name!r}: missing field(s) {', '.join(absent)}"
                             + (" (where its threshold comes from: threshold: {source: survey|published|convention,"
                                " ref: ..., text: ...})" if "threshold" in absent else ""))
        if claim["test"] not in TESTS:
            raise ValueError(f"claim {name!r}: unknown test {claim['test']!r}; known: {sorted(TESTS)}")
        source = claim["threshold"]
        if not isinstance(source, dict) or source.get("source") not in SOURCES:
            raise ValueError(f"claim {name!r}: threshold must be a mapping with source one of {SOURCES}, got "
                             f"{source!r}")
        if not str(source.get("text", "")).strip():
            raise ValueError(f"claim {name!r}: threshold needs a text (the survey's words, the published number, or "
                             "why this convention)")
        if source["source"] != "convention" and not str(source.get("ref", "")).strip():
            raise ValueError(f"claim {name!r}: a {source['source']} threshold needs a ref (the survey's section or "
                             "the paper's bib key)")


def threshold_source(claim: dict) -> str:
    """The claim's threshold source as one line: ``survey 2.3: "..."``, ``published [key]: ...``, ``convention:
    ...``."""
    source = claim["threshold"]
    if source["source"] == "survey":
        return f'survey {source["ref"]}: "{source["text"]}"'
    if source["source"] == "published":
        return f"published [{source['ref']}]: {source['text']}"
    return f"convention: {source['text']}"


#: the columns of the table for reading (Markdown, LaTeX): the CSV holds every column
SHOWN = ["id", "section", "claim", "result", "threshold", "verdict"]


def result_text(outcome: Outcome) -> str:
    """The deciding number with its interval, as read: ``0.968 [0.947, 0.989]``, ``4.15 (no interval)``."""
    if math.isnan(outcome.measured):
        return "-"
    if math.isnan(outcome.low) or math.isnan(outcome.high):
        return f"{outcome.measured:.3g} (no interval)"
    return f"{outcome.measured:.3g} [{outcome.low:.3g}, {outcome.high:.3g}]"


def evaluate(ledger: Sequence[dict], table_dir: str | Path) -> Rows:
    """One verdict row per claim of the ledger (:func:`validate` first), reading ``<table_dir>/<table>.csv`` for each
    of its ``tables`` (a missing one: not measured) and of its ``optional_tables`` that the study wrote."""
    validate(ledger)
    rows = []
    for claim in ledger:
        paths = {name: Path(table_dir) / f"{name}.csv" for name in claim.get("tables", [])}
        missing = [name for name, path in paths.items() if not path.exists()]
        if missing:
            outcome = not_measured(f"tables not produced by this study: {', '.join(missing)}")
        else:
            paths.update({name: path for name in claim.get("optional_tables", [])
                          if (path := Path(table_dir) / f"{name}.csv").exists()})
            tables = {name: read_rows(path) for name, path in paths.items()}
            outcome = Outcome(*TESTS[claim["test"]](tables, claim.get("params", {})))
        rows.append({"id": claim["id"], "section": claim["section"], "claim": claim["claim"],
                     "statement": claim["statement"], "measured": outcome.measured, "low": outcome.low,
                     "high": outcome.high, "result": result_text(outcome), "interval": outcome.interval,
                     "threshold": outcome.threshold,
                     "threshold_source": threshold_source(claim), "details": outcome.details,
                     "verdict": outcome.verdict})
    return rows
