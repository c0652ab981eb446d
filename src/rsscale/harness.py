"""Soundness harness: every registered certifier, many certifications on exact oracles, a verdict per position.

A *case* builds an exact oracle (:mod:`rsscale.oracles`) as the base
classifier, builds a certifier on it with :func:`rsscale.methods.build`, places
inputs at each of its *positions* -- where that family's errors concentrate --
certifies them with ``certify_many`` in packs of :data:`PACK`, and returns for
each trial its position, the certified class, the certified radius in every
norm the certificate reports (l1, l2, l_inf), g's true class and g's true
radius in each of those norms (the half-space's true l_q radius is the
distance to the hyperplane in the dual norm, :meth:`IntervalClassifier.true_radii`).

A trial is a *violation* when the certifier does not abstain and names a class
other than g's, or a radius ``r_q > r_true,q (1 + RTOL)`` in any checked norm
q.  A certificate at level alpha is violated with probability at most alpha on
every input, so the violation count of the T trials at one position (fresh
noise each) is Bin(T, rho), rho <= alpha.

Positions.  Averaging over positions dilutes an excess that lives at a few of
them (selecting c_A from the estimation draws costs about 2 alpha as p_A ->
1/2 and nothing elsewhere), so every case names its positions: p_A just above
1/2 (:data:`NEAR_HALF`) for every selection step; just below and just above
the decision threshold of a method that decides at a target radius; the
boundaries of a method's own thresholds (each family's ``harness_cases``
says which); and a spread of p_A (:data:`HALF_SPACE_P`) on the half-spaces.

Verdict (:func:`summarize`).  At each position the exact one-sided p-value of
its count under ``rate <= alpha`` (:mod:`rsscale.binomial_tests`); Holm's
correction over the case's positions keeps the family-wise error at
:data:`LEVEL`.  Where the violation probability of the procedure can be
computed instead of simulated (:mod:`rsscale.exact`: Cohen's CERTIFY on a
half-space), the table gives it: it has no sampling error, so any excess of the
procedure over alpha shows, and the simulation then tests the implementation
(``tests/test_harness.py`` checks that the simulated counts agree with it).  A
position of a method that claims soundness FAILS when its Holm-adjusted
p-value is below LEVEL or its exact probability exceeds alpha, and the case
fails when any position does (:func:`case_fails`).  Each row
also gives the two-sided 95% Clopper-Pearson interval of the rate and the
case's power, ``detects_at``: the smallest rate, as a multiple of alpha, that
the corrected test catches with probability :data:`POWER` at its trials.
``flagged unsound`` -- the registry marks the method unsound; reported, never
a failure; ``no case`` -- a registered method that declares no case.

Cases use small n (n0 = 20, n = 500) and alpha = 0.05 so that violations
occur at a measurable rate just below alpha; on the half-space oracles the
Gaussian, Laplace and uniform certificates are tight (the radius from the
exact p_A is the true radius: in l2 and l_inf along a random-sign diagonal,
in l1 and l2 along an axis), so there the rate is close to alpha.  Inputs and
noise come from seeds derived from ``(seed, case, position, pack)``: the same
seed gives the same rows (all but ``seconds``, whatever the thread count),
and the first T trials of a longer run are the T trials of a shorter one.
``trials`` counts trials per position; slow cases cap them (``max_trials``);
the table's ``trials`` column says what ran.  Everything runs on the CPU,
fastest with one PyTorch thread (the batches are small).

Each family declares its cases next to itself, in its class's
:meth:`~rsscale.methods.base.Certifier.harness_cases`, built with the tools
here (:func:`case`, :func:`half_space_case`, :func:`interval_outcomes`, ...);
the harness finds them through the registry, and ``tests/test_harness.py``
fails while a registered method declares none.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rsscale import methods
from rsscale.binomial_tests import detectable_rate, holm_adjusted, upper_pvalue
from rsscale.bounds import clopper_pearson_interval
from rsscale.certificate import ABSTAIN
from rsscale.exact import cohen_half_space_violation
from rsscale.methods.base import Certifier
from rsscale.noise import NORMS, NoiseDistribution, noise_from_sigma
from rsscale.oracles import BallClassifier, IntervalClassifier, marginal_ppf, sign_vector, unit_vector

#: Noise level of every case (per-coordinate standard deviation).
SIGMA = 0.5
#: Selection and estimation samples of every case.
N0, N = 20, 500
#: Inputs per ``certify_many`` call.
PACK = 250
#: Relative tolerance on ``r <= r_true``.
RTOL = 1e-9
#: Confidence of the interval reported for the violation rate (two-sided).
RATE_CONFIDENCE = 0.95
#: Family-wise error of a case's verdict over its positions (one-sided; Holm's correction).
LEVEL = 0.025
#: Probability with which a case detects the rate stated in ``detects_at``.
POWER = 0.95
#: p_A just above 1/2, where a selection step errs most.
NEAR_HALF = 0.501
#: The p_A of the half-space cases: just above 1/2, then across the range.
HALF_SPACE_P = (NEAR_HALF, 0.6, 0.8, 0.95, 0.99)
#: Columns of the table written by ``rsscale harness``.
COLUMNS = ["method", "case", "position", "dim", "n", "trials", "certified", "violations", "violations_l1",
           "violations_l2", "violations_linf", "rate", "rate_low", "rate_high", "exact", "p_holm", "detects_at",
           "alpha", "verdict", "seconds"]

#: ``factory(name, **kwargs) -> Certifier``; :func:`rsscale.methods.build` by default.
Factory = Callable[..., Certifier]


@dataclass(frozen=True)
class Position:
    """Where a case places inputs: ``value`` in the case's own coordinate (p_A, a projection, a distance), named by
    ``label``; ``exact(alpha)`` is the exact violation probability there, where it can be computed."""

    label: str
    value: float
    exact: Callable[[float], float] | None = None


@dataclass
class Outcome:
    """Per-trial results of one case (arrays of equal length; radii per checked norm)."""

    position: np.ndarray  # index of the trial's position in the case's positions
    prediction: np.ndarray  # certified class, or ABSTAIN
    true_class: np.ndarray  # g's class
    radii: dict[str, np.ndarray]  # certified radius per norm
    true_radii: dict[str, np.ndarray]  # g's true radius per norm

    def __len__(self) -> int:
        return len(self.prediction)

    def violations(self, norm: str | None = None) -> np.ndarray:
        """Boolean per trial: certified, and a wrong class or a radius beyond the true one (``radius > true_radius
        (1 + RTOL)``) in ``norm``, or in any checked norm when ``norm`` is None."""
        certified = self.prediction != ABSTAIN
        too_far = np.zeros(len(self), dtype=bool)
        for q in [norm] if norm else self.radii:
            too_far |= self.radii[q] > self.true_radii[q] * (1 + RTOL)
        return certified & ((self.prediction != self.true_class) | too_far)


@dataclass(frozen=True)
class Case:
    """One oracle experiment for one registered method.

    ``run(trials, seed, alpha, factory)`` returns the :class:`Outcome` of ``trials`` trials at each of ``positions``;
    ``max_trials`` caps the trials per position of a run (the slow cases), ``None`` for no cap.
    """

    method: str
    name: str
    run: Callable[[int, int, float, Factory], Outcome]
    dim: int
    n: int
    positions: tuple[Position, ...]
    norms: tuple[str, ...]
    max_trials: int | None
    description: str

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"

    def trials_for(self, trials: int, limits: Mapping[str, int] | None = None, uncapped: bool = False) -> int:
        """Trials per position in a run of ``trials``: an explicit limit, else capped at max_trials."""
        if limits and self.key in limits:
            return int(limits[self.key])
        if uncapped or self.max_trials is None:
            return trials
        return min(trials, self.max_trials)


def case(method: str, name: str, run: Callable[[int, int, float, Factory], Outcome], *, dim: int,
         positions: Sequence[Position], n: int = N, norms: Sequence[str] = tuple(NORMS),
         max_trials: int | None = None) -> Case:
    """The case ``method/name`` that ``run(trials, seed, alpha, factory)`` runs at ``positions`` (its docstring
    describes it)."""
    labels = [p.label for p in positions]
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"{method}/{name}: positions must be named, each once; got {labels}")
    return Case(method, name, run, dim, n, tuple(positions), tuple(norms), max_trials, (run.__doc__ or "").strip())


def p_positions(ps: Sequence[float], exact: Callable[[float, float], float] | None = None,
                labels: Sequence[str] | None = None) -> tuple[Position, ...]:
    """Positions at the given p_A, labelled ``p=...`` (or by ``labels``); ``exact(p, alpha)`` where it is known."""
    labels = labels or [f"p={p:g}" for p in ps]
    return tuple(Position(label, float(p), None if exact is None else _at(exact, float(p)))
                 for label, p in zip(labels, ps, strict=True))


def _at(exact: Callable[[float, float], float], p: float) -> Callable[[float], float]:
    return lambda alpha: exact(p, alpha)


def cohen_exact(n0: int = N0, n: int = N) -> Callable[[float, float], float]:
    """``exact(p, alpha)`` of Cohen's CERTIFY with n0 + n samples on the half-space (:mod:`rsscale.exact`)."""
    return lambda p, alpha: cohen_half_space_violation(p, n0, n, alpha)


#: The positions of a half-space case; with the exact violation probability, for a certifier that is Cohen's CERTIFY
#: (n0 = :data:`N0`, n = :data:`N`) on a base classifier equal to the half-space.
HALF_SPACE_POSITIONS = p_positions(HALF_SPACE_P)
COHEN_POSITIONS = p_positions(HALF_SPACE_P, cohen_exact())


def declared_cases(method: str) -> list[Case]:
    """The cases a registered family declares itself (:meth:`~rsscale.methods.base.Certifier.harness_cases` of its
    own class, never inherited), in declaration order."""
    cls = methods.family(method)
    entries = cls.harness_cases() if "harness_cases" in vars(cls) else []
    names = [c.name for c in entries]
    if len(set(names)) != len(names) or any(c.method != method for c in entries):
        raise ValueError(f"the harness cases of {method!r} must be its own, each named once; got "
                         f"{[c.key for c in entries]}")
    return entries


def cases(names: Sequence[str] | None = None) -> list[Case]:
    """The cases of the given methods (default: all registered), method by method."""
    return [c for method in (methods.available() if names is None else names) for c in declared_cases(method)]


def missing_cases(names: Sequence[str] | None = None) -> list[str]:
    """Registered methods (of ``names``, default all) that declare no harness case."""
    return [m for m in (methods.available() if names is None else names) if not declared_cases(m)]


# ---- running --------------------------------------------------------------------------------------------


def _seed(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _packs(trials: int, seed: int) -> Iterator[tuple[int, torch.Generator, np.random.Generator]]:
    """``(count, torch generator, numpy generator)`` per pack, seeded from ``(seed, pack index)``."""
    for index, start in enumerate(range(0, trials, PACK)):
        pack_seed = _seed(seed, index)
        yield min(PACK, trials - start), torch.Generator().manual_seed(pack_seed), np.random.default_rng(pack_seed)


def build(factory: Factory, method: str, model, num_classes: int, n: int, alpha: float, dim: int, **params):
    """The certifier of a case: sigma :data:`SIGMA`, n0 :data:`N0`, a batch size that suits ``dim``, on the CPU."""
    batch_size = int(min(8192, max(256, 2**22 // dim)))  # a batch of noisy copies holds at most ~4M numbers
    return factory(method, model=model, num_classes=num_classes, sigma=SIGMA, n0=N0, n=n, alpha=alpha,
                   batch_size=batch_size, device="cpu", **params)


def collect(certifier, make_inputs, positions: Sequence[Position], trials: int, seed: int):
    """Certify ``trials`` inputs from ``make_inputs(position, count, generator, rng)`` at each position, in packs:
    (inputs, position index per input, predictions, radii per norm of :data:`rsscale.noise.NORMS`)."""
    xs, index, predictions, radii = [], [], [], {q: [] for q in NORMS}
    for j, position in enumerate(positions):
        for count, gen, rng in _packs(trials, _seed(seed, j)):
            batch = make_inputs(position, count, gen, rng)
            for cert in certifier.certify_many(batch, generator=gen):
                predictions.append(cert.prediction)
                for q in NORMS:
                    radii[q].append(cert.radii[q] if cert.prediction != ABSTAIN else 0.0)
            xs.append(batch)
            index += [j] * count
    return (torch.cat(xs), np.asarray(index), np.asarray(predictions),
            {q: np.asarray(r, dtype=float) for q, r in radii.items()})


def half_space_place(noise: NoiseDistribution):
    """Projections at a position's p_A: ``t = +-F^-1(p)`` (F the noise's marginal CDF), a random sign per input."""
    return lambda position, rng, count: rng.choice([-1.0, 1.0], count) * marginal_ppf(noise, position.value)


def half_space_outcomes(oracle: IntervalClassifier, noise: NoiseDistribution, certifier, positions: Sequence[Position],
                        trials: int, seed: int) -> Outcome:
    """:func:`interval_outcomes` at p_A-valued ``positions`` (:func:`half_space_place`), in every norm."""
    return interval_outcomes(oracle, noise, certifier, half_space_place(noise), positions, trials, seed)


def projection_place(position: Position, rng: np.random.Generator, count: int) -> np.ndarray:
    """Every input at the projection ``t = position.value``."""
    return np.full(count, position.value)


def interval_outcomes(oracle: IntervalClassifier, noise: NoiseDistribution, certifier, place,
                      positions: Sequence[Position], trials: int, seed: int,
                      norms: Sequence[str] = tuple(NORMS)) -> Outcome:
    """Certify inputs at projections ``place(position, rng, count)`` on an interval oracle; true values in closed form
    in each of ``norms``."""
    xs, index, predictions, radii = collect(
        certifier, lambda position, count, gen, rng: oracle.inputs_at(place(position, rng, count), gen), positions,
        trials, seed)
    t = oracle.projections(xs)
    return Outcome(index, predictions, oracle.smoothed_class(t, noise), {q: radii[q] for q in norms},
                   {q: oracle.true_radii(t, noise, q) for q in norms})


def ball_outcomes(oracle: BallClassifier, certifier, positions: Sequence[Position], trials: int,
                  seed: int) -> Outcome:
    """Certify inputs at distance ``position.value`` from the ball's center (random directions); true values from the
    noncentral chi-square, in l2."""
    xs, index, predictions, radii = collect(
        certifier, lambda position, count, gen, rng: oracle.inputs_at(np.full(count, position.value), gen), positions,
        trials, seed)
    s = oracle.distances(xs)
    return Outcome(index, predictions, oracle.smoothed_class(s, SIGMA), {"l2": radii["l2"]},
                   {"l2": oracle.true_radius(s, SIGMA)})


def run_case(entry: Case, trials: int, seed: int = 0, alpha: float = 0.05, factory: Factory | None = None) -> Outcome:
    """Run one case with ``trials`` trials per position; its seed is derived from ``seed`` and the case's key."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    return entry.run(int(trials), _seed(seed, zlib.crc32(entry.key.encode())), float(alpha), factory or methods.build)


# ---- verdicts ----------------------------------------------------------------------------------------------


def rate_interval(violations: int, trials: int) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval (:data:`RATE_CONFIDENCE`) of the violation rate."""
    low, high = clopper_pearson_interval(violations, trials, 1.0 - RATE_CONFIDENCE)
    return float(low), float(high)


def detects_at(trials: int, positions: int, alpha: float) -> float:
    """The case's power: the smallest violation rate at one of ``positions`` positions, as a multiple of alpha, that
    the Holm-corrected test of ``rate <= alpha`` catches with probability :data:`POWER`."""
    return detectable_rate(trials, alpha, positions, LEVEL, POWER) / alpha


def summarize(entry: Case, outcome: Outcome, alpha: float, sound: bool | None = None,
              seconds: float = math.nan) -> list[dict]:
    """One table row per position of a case's outcome, each with its verdict (module docstring; ``sound`` defaults
    to the registry's flag)."""
    sound = methods.info(entry.method).sound if sound is None else sound
    bad, by_norm = outcome.violations(), {q: outcome.violations(q) for q in outcome.radii}
    m = len(entry.positions)
    rows, pvalues = [], []
    for j, position in enumerate(entry.positions):
        at = outcome.position == j
        trials, count = int(at.sum()), int(bad[at].sum())
        exact = position.exact(alpha) if position.exact else math.nan
        pvalues.append(upper_pvalue(count, trials, alpha) if trials else 1.0)
        low, high = rate_interval(count, trials) if trials else (math.nan, math.nan)
        rows.append({"method": entry.method, "case": entry.name, "position": position.label, "dim": entry.dim,
                     "n": entry.n, "trials": trials,
                     "certified": float(np.mean(outcome.prediction[at] != ABSTAIN)) if trials else math.nan,
                     "violations": count,
                     **{f"violations_{q}": float(by_norm[q][at].sum()) if q in by_norm else math.nan for q in NORMS},
                     "rate": count / trials if trials else math.nan, "rate_low": low, "rate_high": high,
                     "exact": exact, "p_holm": math.nan,
                     "detects_at": detects_at(trials, m, alpha) if trials else math.inf,
                     "alpha": alpha, "verdict": "", "seconds": seconds / m})
    for row, adjusted in zip(rows, holm_adjusted(pvalues), strict=True):
        row["p_holm"] = float(adjusted)
        row["verdict"] = verdict(row, sound)
    return rows


def verdict(row: Mapping, sound: bool = True) -> str:
    """'FAIL' when a sound-claimed method's position rejects ``rate <= alpha`` after Holm's correction or its exact
    violation probability exceeds alpha; else 'sound', 'flagged unsound' (flagged in the registry) or 'no case'."""
    if row["trials"] == 0:
        return "no case"
    if not sound:
        return "flagged unsound"
    excess = not math.isnan(row["exact"]) and row["exact"] > row["alpha"]
    return "FAIL" if row["p_holm"] < LEVEL or excess else "sound"


def case_fails(rows: Sequence[Mapping]) -> bool:
    """Whether a case fails: any of its positions' rows says FAIL."""
    return any(row["verdict"] == "FAIL" for row in rows)


def no_case_row(method: str, alpha: float) -> dict:
    nan = math.nan
    return {"method": method, "case": "-", "position": "-", "dim": 0, "n": 0, "trials": 0, "certified": nan,
            "violations": 0, "violations_l1": nan, "violations_l2": nan, "violations_linf": nan, "rate": nan,
            "rate_low": nan, "rate_high": nan, "exact": nan, "p_holm": nan, "detects_at": nan, "alpha": alpha,
            "verdict": "no case", "seconds": nan}


def format_row(row: Mapping) -> str:
    """The one-line summary of a table row."""
    if row["verdict"] == "no case":
        return f"{row['method']}: no harness case"
    exact = "" if math.isnan(row["exact"]) else f", exact {row['exact']:.4f}"
    return (f"{row['method']}/{row['case']} {row['position']}: {row['violations']}/{row['trials']} violations, rate "
            f"{row['rate']:.4f} [{row['rate_low']:.4f}, {row['rate_high']:.4f}]{exact}, alpha {row['alpha']:g}, "
            f"Holm p {row['p_holm']:.3g}, detects {row['detects_at']:.2f} alpha, certified {row['certified']:.2f} -> "
            f"{row['verdict']} ({row['seconds']:.1f} s)")


def run_harness(trials: int, names: Sequence[str] | None = None, seed: int = 0, alpha: float = 0.05,
                limits: Mapping[str, int] | None = None, uncapped: bool = False,
                report: Callable[[dict], object] | None = None,
                recorded: Mapping[tuple[str, str, str], Mapping] | None = None) -> list[dict]:
    """Every case of the given methods (default: all registered) at ``trials`` per position (see
    :meth:`Case.trials_for`); rows as in :data:`COLUMNS`, with a 'no case' row for each method without a case.
    ``report`` gets each row.

    ``recorded`` maps ``(method, case, position)`` to the rows of an earlier, interrupted run of the same harness: a
    case whose every position is recorded is not run again (its rows are taken as they are, after checking that they
    have this run's trials and alpha), so a resumed run gives the rows of an uninterrupted one.
    """
    names = methods.available() if names is None else list(names)
    for name in names:
        methods.info(name)  # unknown names raise here
    known = [c.key for c in cases()]
    unknown = set(limits or {}) - set(known)
    if unknown:
        raise ValueError(f"unknown harness cases in limits: {sorted(unknown)}; known: {known}")
    recorded = recorded or {}
    rows = []
    for name in names:
        declared = declared_cases(name)
        found = [] if declared else [no_case_row(name, alpha)]
        for entry in declared:
            expected = entry.trials_for(trials, limits, uncapped)
            keys = [(entry.method, entry.name, position.label) for position in entry.positions]
            if all(key in recorded for key in keys):
                found += [_checked(dict(recorded[key]), entry, expected, alpha) for key in keys]
                continue
            tic = time.perf_counter()
            outcome = run_case(entry, expected, seed, alpha)
            found += summarize(entry, outcome, alpha, seconds=time.perf_counter() - tic)
        for row in found:
            rows.append(row)
            if report:
                report(row)
    return rows


def _checked(row: dict, entry: Case, trials: int, alpha: float) -> dict:
    """A recorded row of ``entry``, refused unless an earlier run of this same harness (trials, alpha) wrote it."""
    if int(row["trials"]) != trials or float(row["alpha"]) != alpha:
        raise ValueError(f"{entry.key}: the recorded rows come from another harness run (trials {row['trials']}, "
                         f"alpha {row['alpha']}; this run: trials {trials}, alpha {alpha}); remove them to start over")
    return row


# ---- builders of common cases ------------------------------------------------------------------------------


def half_space_case(method: str, label: str, dim: int, axis: int | None, family: str = "gaussian",
                    max_trials: int | None = None, ps: Sequence[float] = HALF_SPACE_P, exact: bool = False,
                    **params) -> Case:
    """The case ``{label}-{axis|rotated}-d{dim}``: the half-space ``u . x > 0`` (u = e_axis, or a random-sign
    diagonal, tight in l2 and l_inf) under ``family`` noise, the certifier built with ``params``, inputs at the p_A of
    ``ps`` on either side; ``exact``: the certifier is Cohen's CERTIFY, whose violation probability is computed.  A
    ``family`` other than Gaussian is passed on as the certifier's ``noise``."""
    noise = noise_from_sigma(family, SIGMA)
    name = f"{label}-{'axis' if axis is not None else 'rotated'}-d{dim}"
    params = params if family == "gaussian" else {**params, "noise": family}  # the certifier smooths with it too
    positions = p_positions(ps, cohen_exact() if exact else None)

    def run(trials, seed, alpha, factory):
        oracle = IntervalClassifier(unit_vector(dim, axis) if axis is not None else sign_vector(dim), [0.0], [0, 1],
                                    num_classes=2)
        certifier = build(factory, method, oracle, 2, N, alpha, dim, **params)
        return half_space_outcomes(oracle, noise, certifier, positions, trials, seed)

    run.__doc__ = (f"half-space u . x > 0 in d = {dim}, u = {'e_1' if axis == 0 else 'a random-sign diagonal'}, "
                   f"{family} noise, parameters {params}; inputs at p_A in {tuple(ps)}, either side; true l_q radius "
                   f"|u . x| / ||u||_q*")
    return case(method, name, run, dim=dim, positions=positions, max_trials=max_trials)


def three_class_case(method: str) -> Case:
    """The case ``gaussian-3class-d16``: classes 1 | 0 | 2 along a random direction, Gaussian noise; inputs in the
    middle class (two boundaries at once: its p_A is lowest there), at the boundary between two classes (p_A of the
    top two near 1/2 each) and at either side of it."""
    positions = tuple(Position(f"t={t:g}", t) for t in (0.0, 0.3, 0.4, 0.5, 1.2))

    def run(trials, seed, alpha, factory):
        """classes 1 | 0 | 2 split at u . x = -0.4, 0.4 (u a random-sign diagonal, d = 16), Gaussian noise; inputs at
        t = u . x in (0, 0.3, 0.4, 0.5, 1.2); true radius: distance to the nearest change of g's class"""
        oracle = IntervalClassifier(sign_vector(16, 1), [-0.4, 0.4], [1, 0, 2], num_classes=3)
        certifier = build(factory, method, oracle, 3, N, alpha, 16)
        return interval_outcomes(oracle, noise_from_sigma("gaussian", SIGMA), certifier, projection_place, positions,
                                 trials, seed)

    return case(method, "gaussian-3class-d16", run, dim=16, positions=positions)
