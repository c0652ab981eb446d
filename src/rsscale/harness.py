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
* ``no case`` -- a registered method with no case here (add one with :func:`case`).

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

A new method family registers at least one case with :func:`case`
(``tests/test_harness.py`` fails while a registered method has none).
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
from rsscale.models import build_model
from rsscale.noise import Gaussian, NoiseDistribution, noise_from_sigma
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


_CASES: dict[str, list[Case]] = {}


def case(method: str, name: str, *, dim: int, n: int = N, norms: Sequence[str] = ("l2",),
         max_trials: int | None = None):
    """Decorator registering ``run(trials, seed, alpha, factory)`` as a harness case of ``method``."""

    def register(run):
        entry = Case(method, name, run, dim, n, tuple(norms), max_trials, (run.__doc__ or "").strip())
        existing = _CASES.setdefault(method, [])
        if any(c.name == name for c in existing):
            raise ValueError(f"harness case {entry.key!r} is registered twice")
        existing.append(entry)
        return run

    return register


def cases(names: Sequence[str] | None = None) -> list[Case]:
    """The cases of the given methods (default: all), in registration order."""
    chosen = _CASES if names is None else {m: _CASES.get(m, []) for m in names}
    return [c for group in chosen.values() for c in group]


def missing_cases(names: Sequence[str] | None = None) -> list[str]:
    """Registered methods (of ``names``, default all) with no harness case."""
    return [m for m in (methods.available() if names is None else names) if not _CASES.get(m)]


# ---- running --------------------------------------------------------------------------------------------


def _seed(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _packs(trials: int, seed: int) -> Iterator[tuple[int, torch.Generator, np.random.Generator]]:
    """``(count, torch generator, numpy generator)`` per pack, seeded from ``(seed, pack index)``."""
    for index, start in enumerate(range(0, trials, PACK)):
        pack_seed = _seed(seed, index)
        yield min(PACK, trials - start), torch.Generator().manual_seed(pack_seed), np.random.default_rng(pack_seed)


def _build(factory: Factory, method: str, model, num_classes: int, n: int, alpha: float, dim: int, **params):
    batch_size = int(min(8192, max(256, 2**22 // dim)))  # a batch of noisy copies holds at most ~4M numbers
    return factory(method, model=model, num_classes=num_classes, sigma=SIGMA, n0=N0, n=n, alpha=alpha,
                   batch_size=batch_size, device="cpu", **params)


def _collect(certifier, make_inputs, trials: int, seed: int, norms: Sequence[str]):
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


def _half_space_positions(noise: NoiseDistribution):
    """Projections at a known p_A: p ~ U(0.5, 0.99), t = +-F^-1(p) (F the noise's marginal CDF), random sign."""

    def positions(rng: np.random.Generator, count: int) -> np.ndarray:
        p = rng.uniform(0.5, 0.99, count)
        return rng.choice([-1.0, 1.0], count) * marginal_ppf(noise, p)

    return positions


def _uniform_positions(low: float, high: float):
    return lambda rng, count: rng.uniform(low, high, count)


def interval_outcomes(oracle: IntervalClassifier, noise: NoiseDistribution, certifier, positions, trials: int,
                      seed: int, norms: Sequence[str]) -> dict[str, Outcome]:
    """Certify inputs at projections ``positions(rng, count)`` on an interval oracle; true values in closed form."""
    xs, predictions, radii = _collect(certifier, lambda count, gen, rng: oracle.inputs_at(positions(rng, count), gen),
                                      trials, seed, norms)
    t = oracle.projections(xs)
    true_class = oracle.smoothed_class(t, noise)
    return {q: Outcome(predictions, radii[q], true_class, oracle.true_radii(t, noise, q)) for q in norms}


def ball_outcomes(oracle: BallClassifier, certifier, trials: int, seed: int, far: float = 3.5) -> dict[str, Outcome]:
    """Certify inputs at distances U(0, far) from the ball's center; true values from the noncentral chi-square."""
    xs, predictions, radii = _collect(
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
                report: Callable[[dict], object] | None = None) -> list[dict]:
    """Every case of the given methods (default: all registered) at ``trials`` per case (see :meth:`Case.trials_for`);
    rows as in :data:`COLUMNS`, with a 'no case' row for each method without a case.  ``report`` gets each row."""
    names = methods.available() if names is None else list(names)
    for name in names:
        methods.info(name)  # unknown names raise here
    unknown = set(limits or {}) - {c.key for c in cases()}
    if unknown:
        raise ValueError(f"unknown harness cases in limits: {sorted(unknown)}; known: {[c.key for c in cases()]}")
    rows = []
    for name in names:
        if not _CASES.get(name):
            rows.append(no_case_row(name, alpha))
            if report:
                report(rows[-1])
        for entry in _CASES.get(name, []):
            tic = time.perf_counter()
            outcomes = run_case(entry, entry.trials_for(trials, limits, uncapped), seed, alpha)
            for row in summarize(entry, outcomes, alpha, seconds=time.perf_counter() - tic):
                rows.append(row)
                if report:
                    report(row)
    return rows


# ---- the cases --------------------------------------------------------------------------------------------


def _half_space_case(method: str, label: str, dim: int, axis: int | None, family: str = "gaussian",
                     max_trials: int | None = None, norms: Sequence[str] | None = None, **params):
    """Register the case ``{label}-{axis|rotated}-d{dim}``: the half-space ``u . x > 0`` (u = e_axis, or a random unit
    vector) under ``family`` noise, the certifier built with ``params``."""
    noise = noise_from_sigma(family, SIGMA)
    norms = tuple(norms or (noise.native_norm,))
    name = f"{label}-{'axis' if axis is not None else 'rotated'}-d{dim}"

    def run(trials, seed, alpha, factory):
        oracle = IntervalClassifier(unit_vector(dim, axis), [0.0], [0, 1], num_classes=2)
        certifier = _build(factory, method, oracle, 2, N, alpha, dim, **params)
        return interval_outcomes(oracle, noise, certifier, _half_space_positions(noise), trials, seed, norms)

    run.__doc__ = (f"half-space u . x > 0 in d = {dim}, u = {'e_1' if axis == 0 else 'a random unit vector'}, "
                   f"{family} noise, parameters {params}; inputs at p_A ~ U(0.5, 0.99); true radius |u . x| / ||u||_q*")
    case(method, name, dim=dim, norms=norms, max_trials=max_trials)(run)


_half_space_case("cohen", "gaussian", 2, axis=0)
_half_space_case("cohen", "gaussian", 2, axis=None)
_half_space_case("cohen", "gaussian", 100, axis=None)
_half_space_case("cohen", "gaussian", 10_000, axis=None, max_trials=1000)
_half_space_case("cohen", "laplace", 10, axis=0, family="laplace")  # l1 noises: only axis-aligned oracles have a
_half_space_case("cohen", "uniform", 10, axis=0, family="uniform")  # closed form


@case("cohen", "gaussian-3class-d16", dim=16)
def _cohen_three_class(trials, seed, alpha, factory):
    """classes 1 | 0 | 2 split at u . x = -0.4, 0.4 (u random, d = 16), Gaussian noise; t ~ U(-1.5, 1.5);
    true radius: distance to the nearest change of g's class"""
    oracle = IntervalClassifier(unit_vector(16, None, 1), [-0.4, 0.4], [1, 0, 2], num_classes=3)
    certifier = _build(factory, "cohen", oracle, 3, N, alpha, 16)
    return interval_outcomes(oracle, Gaussian(SIGMA), certifier, _uniform_positions(-1.5, 1.5), trials, seed, ["l2"])


def _ball_case(secondary: str, max_trials: int | None):
    def run(trials, seed, alpha, factory):
        oracle = BallClassifier(torch.zeros(10), radius=2.5)
        certifier = _build(factory, "dsrs", oracle, 2, N, alpha, 10, secondary=secondary)
        return ball_outcomes(oracle, certifier, trials, seed)

    run.__doc__ = (f"ball ||x|| <= 2.5 in d = 10 (g switches at s* ~ 2.0), {secondary} secondary; ||x|| ~ U(0, 3.5); "
                   f"true radius |s* - ||x|||")
    case("dsrs", f"{secondary}-ball-d10", dim=10, max_trials=max_trials)(run)


_ball_case("truncated", max_trials=5000)
_half_space_case("dsrs", "truncated", 100, axis=None, max_trials=3000, secondary="truncated")
_ball_case("scaled", max_trials=200)


@case("dsrs", "scaled-k5-rotated-d16", dim=16, n=50, max_trials=1000)
def _dsrs_generalized_scaled(trials, seed, alpha, factory):
    """half-space u . x > 0 in d = 16 (u a random unit vector), generalized Gaussian P_k (k = 5) with the scaled Q
    (P_k at 0.8 sigma), n = 50; inputs at t = +-0.5 (few distinct counts, hence few radius searches); true radius |t|
    (g flips at the hyperplane under any spherically symmetric noise, so the Gaussian stands in for P_k there)"""
    oracle = IntervalClassifier(unit_vector(16, None), [0.0], [0, 1], num_classes=2)
    certifier = _build(factory, "dsrs", oracle, 2, 50, alpha, 16, secondary="scaled", k=5.0)
    positions = lambda rng, count: rng.choice([-0.5, 0.5], count)  # noqa: E731
    return interval_outcomes(oracle, Gaussian(SIGMA), certifier, positions, trials, seed, ["l2"])


# input-specific sample size: the published variant (flagged unsound) and the fresh-sample one; pilot n0, N_max = n
_half_space_case("iss", "gaussian", 100, axis=None)
_half_space_case("iss_sound", "gaussian", 100, axis=None)

# decision at a target radius: the certified radius is r_target = 0.1 (p* = Phi(0.2) = 0.58)
for _strategy in ("horvath", "betting", "union"):
    _half_space_case("adaptive", _strategy, 100, axis=None, r_target=0.1, strategy=_strategy)


#: The planted subspace of the projected case: one random-sign direction per block of coordinates.
PROJECTED_DIM, PROJECTED_BLOCKS = 20, ((0, 2), (2, 6), (6, 12))


def planted_basis(dim: int = PROJECTED_DIM, blocks=PROJECTED_BLOCKS, seed: int = 0) -> torch.Tensor:
    """``[len(blocks), dim]`` orthonormal rows, row j = random signs / sqrt(block size) on block j, 0 elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.zeros(len(blocks), dim, dtype=torch.float64)
    for j, (lo, hi) in enumerate(blocks):
        basis[j, lo:hi] = (2.0 * torch.randint(0, 2, (hi - lo,), generator=gen) - 1) / math.sqrt(hi - lo)
    return basis


@case("projected", "subspace-linear-d20", dim=PROJECTED_DIM, norms=("l1", "l2", "linf"))
def _projected_linear(trials, seed, alpha, factory):
    """'projected' model (U = a planted 3-block basis of R^20, mu = 0) around the half-space u . x > 0, u in span(U)
    spread over the blocks (l_inf tight); inputs at p_A ~ U(0.5, 0.99); true l_q radius |u . x| / ||u||_q*"""
    basis = planted_basis()
    weights = torch.tensor([math.sqrt(hi - lo) for lo, hi in PROJECTED_BLOCKS], dtype=torch.float64)
    oracle = IntervalClassifier((weights @ basis).float(), [0.0], [0, 1], num_classes=2)
    model = build_model("projected", base_arch="mlp", base_config={"dim": PROJECTED_DIM}, rank=len(PROJECTED_BLOCKS),
                        dim=PROJECTED_DIM)
    model.set_projection(basis.float(), torch.zeros(PROJECTED_DIM))
    model.base = oracle  # f(P(x)) = f(x): u . P(x) = u . x for u in the row space of U
    certifier = _build(factory, "projected", model, 2, N, alpha, PROJECTED_DIM)
    noise = Gaussian(SIGMA)
    return interval_outcomes(oracle, noise, certifier, _half_space_positions(noise), trials, seed,
                             ["l1", "l2", "linf"])


# ensemble of three half-spaces u . x >= a, a = -0.2, 0.2, 0 (same u): their summed one-hot votes are the majority,
# i.e. the half-space u . x >= 0; with K = 2 consensus the third member decides only where the first two disagree
ENSEMBLE_THRESHOLDS = (-0.2, 0.2, 0.0)


def _ensemble_case(consensus: int | None):
    def run(trials, seed, alpha, factory):
        u = unit_vector(100, None)
        members = [IntervalClassifier(u, [a], [0, 1], num_classes=2) for a in ENSEMBLE_THRESHOLDS]
        oracle = IntervalClassifier(u, [0.0], [0, 1], num_classes=2)
        certifier = _build(factory, "ensemble", members, 2, N, alpha, 100, consensus=consensus)
        noise = Gaussian(SIGMA)
        return interval_outcomes(oracle, noise, certifier, _half_space_positions(noise), trials, seed, ["l2"])

    run.__doc__ = (f"majority of the half-spaces u . x >= a, a in {ENSEMBLE_THRESHOLDS} (= the half-space u . x >= 0), "
                   f"d = 100, consensus K = {consensus or 3}; inputs at p_A ~ U(0.5, 0.99); true radius |u . x|")
    case("ensemble", f"majority-rotated-d100-K{consensus or 3}", dim=100)(run)


_ensemble_case(None)
_ensemble_case(2)

# dipole smoothing: tight on a half-space (S a slab, N the far half-space); the 3-class oracle exercises multi-class
_half_space_case("dipole", "gaussian", 100, axis=None)


@case("dipole", "gaussian-3class-d16", dim=16)
def _dipole_three_class(trials, seed, alpha, factory):
    """classes 1 | 0 | 2 split at u . x = -0.4, 0.4 (u random, d = 16), Gaussian noise; t ~ U(-1.5, 1.5);
    true radius: distance to the nearest change of g's class"""
    oracle = IntervalClassifier(unit_vector(16, None, 1), [-0.4, 0.4], [1, 0, 2], num_classes=3)
    certifier = _build(factory, "dipole", oracle, 3, N, alpha, 16)
    return interval_outcomes(oracle, Gaussian(SIGMA), certifier, _uniform_positions(-1.5, 1.5), trials, seed, ["l2"])


# QCRS (flagged unsound: sigma depends on x); on a half-space g's class and radius do not depend on sigma
_half_space_case("qcrs", "gaussian", 100, axis=None, n_search=100, steps=4)

# DDRS (flagged unsound: sigma depends on x); on a half-space g's class and radius do not depend on sigma
_half_space_case("ddrs", "gaussian", 100, axis=None, n_opt=10, steps=3)


@case("irs", "tilted-shifted-half-space-d16", dim=16, max_trials=4000)
def _irs_modified_half_space(trials, seed, alpha, factory):
    """original f: u . x > 0; modified f_p: u' . x > 0.15, u' = u tilted by 0.02 towards a random v (d = 16);
    IRS of f_p from f's cache (n_p = 200, gamma = 0.9), alpha, alpha_zeta and the fallback at alpha / 3 each;
    |u' . x - 0.15| ~ U(0, 4 sigma); true class and radius from f_p"""
    original = IntervalClassifier(unit_vector(16, None, 0), [0.0], [0, 1], num_classes=2)
    modified = IntervalClassifier(unit_vector(16, None, 0) + 0.02 * unit_vector(16, None, 7), [0.15], [0, 1],
                                  num_classes=2)
    certifier = _build(factory, "irs", modified, 2, N, alpha / 3, 16, original=original, alpha_zeta=alpha / 3,
                       n_incremental=200, gamma=0.9)

    def positions(rng, count):
        return rng.choice([-1.0, 1.0], count) * rng.uniform(0.0, 4 * SIGMA, count) + 0.15

    return interval_outcomes(modified, Gaussian(SIGMA), certifier, positions, trials, seed, ["l2"])


class OrthogonalResidual(torch.nn.Module):
    """A denoiser that leaves ``u . x`` unchanged: ``D(x) = x - (I - u u^T) r(x)``, r a DnCNN's residual net.

    Inputs are flat ``[B, prod(image_shape)]``; the net sees them as images.  ``f(D(x)) = f(x)`` for an interval
    oracle along u, so the oracle's closed forms hold for the composition.
    """

    def __init__(self, dncnn: torch.nn.Module, u: torch.Tensor, image_shape: Sequence[int]):
        super().__init__()
        self.net = dncnn.net
        self.image_shape = tuple(image_shape)
        self.register_buffer("u", u.flatten().float())

    def forward(self, x):
        r = self.net(x.reshape(-1, *self.image_shape)).flatten(1)
        return x - (r - (r @ self.u)[:, None] * self.u).view(x.shape)


def denoised_oracle(oracle: IntervalClassifier, side: int = 4, depth: int = 3, width: int = 8, seed: int = 0):
    """A ``denoised`` model: a random DnCNN (projected by :class:`OrthogonalResidual`) in front of ``oracle``
    (``side * side`` inputs, flat); ``f(D(x)) = oracle(x)``."""
    torch.manual_seed(seed)
    model = build_model("denoised", classifier_arch="cnn", classifier_config={"image_size": side},
                        denoiser_config={"depth": depth, "width": width}).eval()
    model.denoiser = OrthogonalResidual(model.denoiser, oracle.u, (1, side, side)).eval()
    model.classifier, model.input_shape = oracle, oracle.input_shape
    return model


# denoised smoothing: Cohen's CERTIFY of f(D(x)); a denoiser that keeps u . x keeps the half-space oracle's closed form
@case("denoised", "dncnn-half-space-rotated-d16", dim=16, max_trials=4000)
def _denoised_half_space(trials, seed, alpha, factory):
    """half-space u . x > 0 (u random, d = 16 = 4 x 4) behind a random DnCNN whose correction is orthogonal to u;
    inputs at p_A ~ U(0.5, 0.99); true radius |u . x|"""
    oracle = IntervalClassifier(unit_vector(16, None), [0.0], [0, 1], num_classes=2)
    certifier = _build(factory, "denoised", denoised_oracle(oracle), 2, N, alpha, 16)
    noise = Gaussian(SIGMA)
    return interval_outcomes(oracle, noise, certifier, _half_space_positions(noise), trials, seed, ["l2"])


# ACES: F = a 3-class interval oracle whose logits are one-hot x 100 (normalized entropy ~0) where a second interval
# oracle says "confident", one-hot x 0.01 (entropy ~1) elsewhere; for theta in (0.01, 0.99) the selector is that
# second oracle, and the core model a third one: g = g_F where g_s = 1, else core, all functions of u . x
class SelectiveInterval(torch.nn.Module):
    """Logits ``onehot(classes(x)) * (100 if confident(x) says 1 else 0.01)`` (both interval oracles on the same u)."""

    def __init__(self, classes: IntervalClassifier, confident: IntervalClassifier):
        super().__init__()
        self.classes, self.confident = classes, confident
        self.input_shape = classes.input_shape

    def forward(self, x):
        return self.classes(x) * (0.01 + 99.99 * self.confident(x)[:, 1:2])


def selective_truth(classes: IntervalClassifier, confident: IntervalClassifier, core: IntervalClassifier, t,
                    noise: NoiseDistribution, reach: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """g's class and true l2 radius at projections t for ``g = g_F if g_s = 1 else core``: g is constant between the
    change points of g_F, g_s and core, so its radius is the distance to the nearest of those where g changes."""
    t = np.asarray(t, dtype=float)

    def g(points):
        points = np.asarray(points, dtype=float)
        plain = core.labels[(points[..., None] >= core.thresholds).sum(-1)]
        return np.where(confident.smoothed_class(points, noise) == 1, classes.smoothed_class(points, noise), plain)

    lo, hi = float(t.min()) - reach, float(t.max()) + reach
    points = np.concatenate([classes.change_points(noise, lo, hi), confident.change_points(noise, lo, hi),
                             core.thresholds])
    points = points[g(points - 1e-7) != g(points + 1e-7)]
    radius = np.abs(t[:, None] - points).min(axis=1) if points.size else np.full(t.shape, np.inf)
    return g(t), radius


class _CertifiedOnly:
    """A certifier whose uncertified predictions (ACES's core fallback, radius 0, no claim) read as ABSTAIN."""

    def __init__(self, certifier):
        self.certifier = certifier

    def certify_many(self, xs, generator=None):
        certs = self.certifier.certify_many(xs, generator=generator)
        for cert in certs:
            if not cert.extra["certified"]:
                cert.prediction = ABSTAIN
        return certs


@case("aces", "selective-3class-d16", dim=16)
def _aces_selective(trials, seed, alpha, factory):
    """F: classes 0 | 1 | 2 split at u . x = -0.5, 0.5, confident (entropy ~0) for u . x >= -0.2, else entropy ~1;
    theta = 0.5; core: class 2 (u random, d = 16); t ~ U(-0.6, 1.3); true radius: distance to the nearest change of
    g = g_F where g_s = 1 else core (tight at both the selector's and F's boundary)"""
    u = unit_vector(16, None, 2)
    classes = IntervalClassifier(u, [-0.5, 0.5], [0, 1, 2], num_classes=3)
    confident = IntervalClassifier(u, [-0.2], [0, 1], num_classes=2)
    core = IntervalClassifier(u, [], [2], num_classes=3)
    certifier = _build(factory, "aces", SelectiveInterval(classes, confident), 3, N, alpha, 16, core=core, theta=0.5)
    xs, predictions, radii = _collect(_CertifiedOnly(certifier),
                                      lambda count, gen, rng: classes.inputs_at(rng.uniform(-0.6, 1.3, count), gen),
                                      trials, seed, ["l2"])
    true_class, true_radius = selective_truth(classes, confident, core, classes.projections(xs), Gaussian(SIGMA))
    return {"l2": Outcome(predictions, radii["l2"], true_class, true_radius)}

# ANCER (flagged unsound: theta depends on x); on a half-space g_theta's class is sign(u . x) for every theta and the
# ellipsoid's inscribed l2 radius min(theta) Phi^-1(p_A) stays below |u . x|
_half_space_case("ancer", "gaussian", 100, axis=None, max_trials=2000, n_opt=5, steps=3)

# ISRS (claimed sound): sigma(x) = sigma exp(0.05 min(||x||, 10)); on a half-space g's class is sign(u . x) whatever
# sigma(x), so the true radius is |u . x|
_half_space_case("isrs", "gaussian", 100, axis=None, max_trials=5000, rate=0.05)

# second-order smoothing: Cohen's certificate plus the gradient bound (at n = 500, d = 100 it falls back to Cohen's,
# the tight bound on a half-space); the slab case at d = 2, where the gradient bound is informative, is in the tests
_half_space_case("second_order", "gaussian", 100, axis=None)


@case("sween", "weighted-majority-rotated-d100", dim=100)
def _sween_majority(trials, seed, alpha, factory):
    """weights 0.4, 0.35, 0.25 on the half-spaces u . x >= a, a in (-0.2, 0.2, 0): any two outweigh the third, so the
    weighted vote is the half-space u . x >= 0 (d = 100, adaptive exit); inputs at p_A ~ U(0.5, 0.99); true radius
    |u . x|"""
    u = unit_vector(100, None)
    members = [IntervalClassifier(u, [a], [0, 1], num_classes=2) for a in ENSEMBLE_THRESHOLDS]
    oracle = IntervalClassifier(u, [0.0], [0, 1], num_classes=2)
    certifier = _build(factory, "sween", members, 2, N, alpha, 100, weights=np.log([0.4, 0.35, 0.25]).tolist())
    noise = Gaussian(SIGMA)
    return interval_outcomes(oracle, noise, certifier, _half_space_positions(noise), trials, seed, ["l2"])


@case("smooth_reduce", "one-patch-half-space-d16", dim=16)
def _smooth_reduce_half_space(trials, seed, alpha, factory):
    """one 4 x 4 patch of a 1 x 4 x 4 image (A = identity: the composition is the oracle) of the half-space u . x > 0,
    input-space noise; inputs at p_A ~ U(0.5, 0.99); true radius |u . x|"""
    noise = Gaussian(SIGMA)
    oracle = IntervalClassifier(unit_vector(16, None), [0.0], [0, 1], num_classes=2)
    oracle.input_shape = (1, 4, 4)  # it flattens its input
    certifier = _build(factory, "smooth_reduce", oracle, 2, N, alpha, 16, patch_size=4, grid=1)
    positions = _half_space_positions(noise)
    xs, predictions, radii = _collect(
        certifier, lambda count, gen, rng: oracle.inputs_at(positions(rng, count), gen).view(count, 1, 4, 4), trials,
        seed, ["l2"])
    t = oracle.projections(xs)
    return {"l2": Outcome(predictions, radii["l2"], oracle.smoothed_class(t, noise), oracle.true_radii(t, noise))}
