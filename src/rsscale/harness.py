"""Soundness harness: every registered certifier, many certifications on exact oracles, violation rates.

A *case* builds an exact oracle (:mod:`rsscale.oracles`) as the base
classifier, builds a certifier on it with :func:`rsscale.methods.build`, draws
inputs at known positions, certifies them with ``certify_many`` in packs of
:data:`PACK`, and returns for each trial the certified class, the certified
radius in the oracle's norm, g's true class and g's true radius in that norm.

A trial is a *violation* when the certifier does not abstain and names a class
other than g's, or a radius ``r > r_true (1 + RTOL)``.  A certificate at level
alpha is violated with probability at most alpha on every input, so the
violation count of T trials (i.i.d. positions, fresh noise each) is
Bin(T, rho), rho <= alpha the violation probability averaged over positions.

Verdict of a (method, case, norm) row, from the two-sided 95% Clopper-Pearson
interval [lo, hi] of rho (:func:`rsscale.bounds.clopper_pearson_interval`):

* ``FAIL``  -- the method claims soundness (``info(name).sound``) and
  ``lo > alpha``: the rate is significantly above alpha.  A sound certifier
  whose rate is alpha exactly fails with probability <= 2.5% per row; at
  its usual rate (below alpha: the bounds are conservative) far less.
* ``sound`` -- the method claims soundness and ``lo <= alpha``.
* ``flagged unsound`` -- the registry marks the method unsound; reported, never a failure.
* ``no case`` -- a registered method that declares no case.

Cases use small n (n0 = 20, n = 500) and alpha = 0.05 so that violations
occur at a measurable rate just below alpha; on the half-space oracles the
Gaussian, Laplace and uniform certificates are tight (the radius from the
exact p_A is the true radius), so there the rate is close to alpha.  Inputs
and noise come from seeds derived from ``(seed, case, pack)``: the same seed
gives the same rows (all but ``seconds``, whatever the thread count), and the
first T trials of a longer run are the T trials of a shorter one.  Everything
runs on the CPU, fastest with one PyTorch thread (the batches are small).
Slow cases cap their trials (``max_trials``); the table's ``trials`` column
says what ran.

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
from rsscale.bounds import clopper_pearson_interval
from rsscale.certificate import ABSTAIN
from rsscale.methods.base import Certifier
from rsscale.noise import NoiseDistribution, noise_from_sigma
from rsscale.oracles import BallClassifier, IntervalClassifier, marginal_ppf, unit_vector

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
#: Columns of the table written by ``rsscale harness``.
COLUMNS = ["method", "case", "norm", "dim", "n", "trials", "certified", "violations", "rate", "rate_low", "rate_high",
           "alpha", "verdict", "seconds"]

#: ``factory(name, **kwargs) -> Certifier``; :func:`rsscale.methods.build` by default.
Factory = Callable[..., Certifier]


@dataclass
class Outcome:
    """Per-trial results of one case in one norm (arrays of equal length)."""

    prediction: np.ndarray  # certified class, or ABSTAIN
    radius: np.ndarray  # certified radius in the norm
    true_class: np.ndarray  # g's class
    true_radius: np.ndarray  # g's true radius in the norm

    def __len__(self) -> int:
        return len(self.prediction)

    def violations(self) -> np.ndarray:
        """Boolean per trial: certified, and a wrong class or ``radius > true_radius (1 + RTOL)``."""
        certified = self.prediction != ABSTAIN
        too_far = self.radius > self.true_radius * (1 + RTOL)
        return certified & ((self.prediction != self.true_class) | too_far)


@dataclass(frozen=True)
class Case:
    """One oracle experiment for one registered method.

    ``run(trials, seed, alpha, factory)`` returns an :class:`Outcome` per norm;
    ``max_trials`` caps the trials of a run (the slow cases), ``None`` for no cap.
    """

    method: str
    name: str
    run: Callable[[int, int, float, Factory], dict[str, Outcome]]
    dim: int
    n: int
    norms: tuple[str, ...]
    max_trials: int | None
    description: str

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"

    def trials_for(self, trials: int, limits: Mapping[str, int] | None = None, uncapped: bool = False) -> int:
        """Trials of this case in a run of ``trials`` per case: an explicit limit, else capped at max_trials."""
        if limits and self.key in limits:
            return int(limits[self.key])
        if uncapped or self.max_trials is None:
            return trials
        return min(trials, self.max_trials)


def case(method: str, name: str, run: Callable[[int, int, float, Factory], dict[str, Outcome]], *, dim: int,
         n: int = N, norms: Sequence[str] = ("l2",), max_trials: int | None = None) -> Case:
    """The case ``method/name`` that ``run(trials, seed, alpha, factory)`` runs (its docstring describes it)."""
    return Case(method, name, run, dim, n, tuple(norms), max_trials, (run.__doc__ or "").strip())


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


def collect(certifier, make_inputs, trials: int, seed: int, norms: Sequence[str]):
    """Certify ``trials`` inputs from ``make_inputs(count, generator, rng)`` in packs: (inputs, predictions, radii)."""
    xs, predictions, radii = [], [], {q: [] for q in norms}
    for count, gen, rng in _packs(trials, seed):
        batch = make_inputs(count, gen, rng)
        for cert in certifier.certify_many(batch, generator=gen):
            predictions.append(cert.prediction)
            for q in norms:
                radii[q].append(cert.radii[q] if cert.prediction != ABSTAIN else 0.0)
        xs.append(batch)
    return torch.cat(xs), np.asarray(predictions), {q: np.asarray(r, dtype=float) for q, r in radii.items()}


def half_space_positions(noise: NoiseDistribution):
    """Projections at a known p_A: p ~ U(0.5, 0.99), t = +-F^-1(p) (F the noise's marginal CDF), random sign."""

    def positions(rng: np.random.Generator, count: int) -> np.ndarray:
        p = rng.uniform(0.5, 0.99, count)
        return rng.choice([-1.0, 1.0], count) * marginal_ppf(noise, p)

    return positions


def uniform_positions(low: float, high: float):
    """Projections ``U(low, high)``."""
    return lambda rng, count: rng.uniform(low, high, count)


def interval_outcomes(oracle: IntervalClassifier, noise: NoiseDistribution, certifier, positions, trials: int,
                      seed: int, norms: Sequence[str]) -> dict[str, Outcome]:
    """Certify inputs at projections ``positions(rng, count)`` on an interval oracle; true values in closed form."""
    xs, predictions, radii = collect(certifier, lambda count, gen, rng: oracle.inputs_at(positions(rng, count), gen),
                                      trials, seed, norms)
    t = oracle.projections(xs)
    true_class = oracle.smoothed_class(t, noise)
    return {q: Outcome(predictions, radii[q], true_class, oracle.true_radii(t, noise, q)) for q in norms}


def ball_outcomes(oracle: BallClassifier, certifier, trials: int, seed: int, far: float = 3.5) -> dict[str, Outcome]:
    """Certify inputs at distances U(0, far) from the ball's center; true values from the noncentral chi-square."""
    xs, predictions, radii = collect(
        certifier, lambda count, gen, rng: oracle.inputs_at(rng.uniform(0.0, far, count), gen), trials, seed, ["l2"])
    s = oracle.distances(xs)
    return {"l2": Outcome(predictions, radii["l2"], oracle.smoothed_class(s, SIGMA), oracle.true_radius(s, SIGMA))}


def run_case(entry: Case, trials: int, seed: int = 0, alpha: float = 0.05,
             factory: Factory | None = None) -> dict[str, Outcome]:
    """Run one case with ``trials`` trials; its seed is derived from ``seed`` and the case's key."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    return entry.run(int(trials), _seed(seed, zlib.crc32(entry.key.encode())), float(alpha), factory or methods.build)


def rate_interval(violations: int, trials: int) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval (:data:`RATE_CONFIDENCE`) of the violation rate."""
    low, high = clopper_pearson_interval(violations, trials, 1.0 - RATE_CONFIDENCE)
    return float(low), float(high)


def verdict(violations: int, trials: int, alpha: float, sound: bool = True) -> str:
    """'FAIL' when a sound-claimed method's rate interval lies above alpha (module docstring); else 'sound',
    'flagged unsound' (method flagged in the registry) or 'no case' (no trials)."""
    if trials == 0:
        return "no case"
    if not sound:
        return "flagged unsound"
    return "FAIL" if rate_interval(violations, trials)[0] > alpha else "sound"


def summarize(entry: Case, outcomes: Mapping[str, Outcome], alpha: float, sound: bool | None = None,
              seconds: float = math.nan) -> list[dict]:
    """One table row per norm of a case's outcomes (``sound`` defaults to the registry's flag)."""
    sound = methods.info(entry.method).sound if sound is None else sound
    rows = []
    for norm_name, outcome in outcomes.items():
        trials, bad = len(outcome), int(outcome.violations().sum())
        low, high = rate_interval(bad, trials)
        rows.append({"method": entry.method, "case": entry.name, "norm": norm_name, "dim": entry.dim, "n": entry.n,
                     "trials": trials, "certified": float(np.mean(outcome.prediction != ABSTAIN)),
                     "violations": bad, "rate": bad / trials, "rate_low": low, "rate_high": high, "alpha": alpha,
                     "verdict": verdict(bad, trials, alpha, sound), "seconds": seconds})
    return rows


def no_case_row(method: str, alpha: float) -> dict:
    nan = math.nan
    return {"method": method, "case": "-", "norm": "-", "dim": 0, "n": 0, "trials": 0, "certified": nan,
            "violations": 0, "rate": nan, "rate_low": nan, "rate_high": nan, "alpha": alpha, "verdict": "no case",
            "seconds": nan}


def format_row(row: Mapping) -> str:
    """The one-line summary of a table row."""
    if row["verdict"] == "no case":
        return f"{row['method']}: no harness case"
    return (f"{row['method']}/{row['case']} {row['norm']}: {row['violations']}/{row['trials']} violations, rate "
            f"{row['rate']:.4f} [{row['rate_low']:.4f}, {row['rate_high']:.4f}], alpha {row['alpha']:g}, certified "
            f"{row['certified']:.2f} -> {row['verdict']} ({row['seconds']:.1f} s)")


def run_harness(trials: int, names: Sequence[str] | None = None, seed: int = 0, alpha: float = 0.05,
                limits: Mapping[str, int] | None = None, uncapped: bool = False,
                report: Callable[[dict], object] | None = None,
                recorded: Mapping[tuple[str, str, str], Mapping] | None = None) -> list[dict]:
    """Every case of the given methods (default: all registered) at ``trials`` per case (see :meth:`Case.trials_for`);
    rows as in :data:`COLUMNS`, with a 'no case' row for each method without a case.  ``report`` gets each row.

    ``recorded`` maps ``(method, case, norm)`` to the rows of an earlier, interrupted run of the same harness: a case
    whose every norm is recorded is not run again (its rows are taken as they are, after checking that they have this
    run's trials and alpha), so a resumed run gives the rows of an uninterrupted one.
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
            keys = [(entry.method, entry.name, norm) for norm in entry.norms]
            if all(key in recorded for key in keys):
                found += [_checked(dict(recorded[key]), entry, expected, alpha) for key in keys]
                continue
            tic = time.perf_counter()
            outcomes = run_case(entry, expected, seed, alpha)
            found += summarize(entry, outcomes, alpha, seconds=time.perf_counter() - tic)
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
                    max_trials: int | None = None, norms: Sequence[str] | None = None, **params) -> Case:
    """The case ``{label}-{axis|rotated}-d{dim}``: the half-space ``u . x > 0`` (u = e_axis, or a random unit vector)
    under ``family`` noise, the certifier built with ``params``."""
    noise = noise_from_sigma(family, SIGMA)
    norms = tuple(norms or (noise.native_norm,))
    name = f"{label}-{'axis' if axis is not None else 'rotated'}-d{dim}"

    def run(trials, seed, alpha, factory):
        oracle = IntervalClassifier(unit_vector(dim, axis), [0.0], [0, 1], num_classes=2)
        certifier = build(factory, method, oracle, 2, N, alpha, dim, **params)
        return interval_outcomes(oracle, noise, certifier, half_space_positions(noise), trials, seed, norms)

    run.__doc__ = (f"half-space u . x > 0 in d = {dim}, u = {'e_1' if axis == 0 else 'a random unit vector'}, "
                   f"{family} noise, parameters {params}; inputs at p_A ~ U(0.5, 0.99); true radius |u . x| / ||u||_q*")
    return case(method, name, run, dim=dim, norms=norms, max_trials=max_trials)


def three_class_case(method: str) -> Case:
    """The case ``gaussian-3class-d16``: classes 1 | 0 | 2 along a random direction, Gaussian noise."""

    def run(trials, seed, alpha, factory):
        """classes 1 | 0 | 2 split at u . x = -0.4, 0.4 (u random, d = 16), Gaussian noise; t ~ U(-1.5, 1.5);
        true radius: distance to the nearest change of g's class"""
        oracle = IntervalClassifier(unit_vector(16, None, 1), [-0.4, 0.4], [1, 0, 2], num_classes=3)
        certifier = build(factory, method, oracle, 3, N, alpha, 16)
        return interval_outcomes(oracle, noise_from_sigma("gaussian", SIGMA), certifier, uniform_positions(-1.5, 1.5),
                                 trials, seed, ["l2"])

    return case(method, "gaussian-3class-d16", run, dim=16)
