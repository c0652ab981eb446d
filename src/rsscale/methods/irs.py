"""Incremental randomized smoothing (IRS): re-certify a modified model from the original's cached samples.

Ugare, Suresh, Banerjee, Misailovic & Singh, "Incremental Randomized Smoothing
Certification", ICLR 2024 (Algorithm 1 and Theorem 2).

Original model f (:class:`IRSCache`): Cohen's CERTIFY with n0 selection and n
estimation samples at level alpha gives c_A and a lower bound p_A on
``P(f(x + e) = c_A)``.  The cache keeps, per input, c_A, p_A, the seed of the
estimation draws (never the noise: the draws are regenerated through
:meth:`rsscale.sampling.Sampler.draw_votes`) and f's class on each draw.

Modified model f_p (:class:`IncrementalRS`, registered as ``irs``):

* if p_A < gamma: plain CERTIFY of f_p with min(n0, n_p) + n_p fresh samples
  at level alpha (the fallback);
* else: replay the first n_p cached draws e_1..e_n_p through f_p only, count
  k disagreements ``f_p(x + e_j) != f(x + e_j)``, let zeta be the one-sided
  Clopper-Pearson upper bound (level alpha_zeta) on ``P(f_p(x + e) != f(x + e))``.
  Since ``P(f_p(x + e) = c_A) >= P(f(x + e) = c_A) - P(f_p != f)``, if
  ``p_A - zeta > 1/2`` return c_A with radius ``sigma Phi^-1(p_A - zeta)``,
  else abstain.  By the union bound over the two confidence bounds this
  certificate holds with probability >= 1 - alpha - alpha_zeta.

Which branch runs depends on the cached bound, so per input the failure
probability of the returned certificate is at most alpha + alpha_zeta + alpha
(the fallback's own bound); callers holding the whole procedure to a level
split it accordingly (the tests and the harness use alpha / 3 each).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import torch

from rsscale import harness, mutation
from rsscale.bounds import check_alpha, clopper_pearson_lower, clopper_pearson_upper
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import Certifier, register
from rsscale.noise import Gaussian
from rsscale.oracles import IntervalClassifier, unit_vector
from rsscale.sampling import Sampler
from rsscale.smooth import SmoothedClassifier, abstains, check_inputs, check_sample_size, check_sampling, select


@dataclass
class CacheEntry:
    """What IRS keeps of the original certification of one input."""

    seed: int  # seeds the generator of the n estimation draws
    prediction: int  # c_A, f's selected class
    p_lower: float  # lower confidence bound on P(f(x + e) = c_A)
    votes: torch.Tensor  # f's class on each estimation draw, in draw order (int16)


def input_key(x: torch.Tensor) -> str:
    """Identifies an input by its shape and float32 bytes."""
    data = x.detach().to("cpu", torch.float32).contiguous()
    return f"{tuple(data.shape)}:{hashlib.sha256(data.numpy().tobytes()).hexdigest()}"


class IRSCache:
    """Certifies the original model f with Cohen's CERTIFY and caches what IRS needs, per input.

    The selection draws of a batch share forward passes (``Sampler.counts``);
    each input's n estimation draws come from its own seed, drawn from the
    caller's generator, so they can be regenerated exactly.
    """

    def __init__(self, original: torch.nn.Module, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000,
                 alpha: float = 0.001, batch_size: int = 1000, device=None):
        self.smoothed = SmoothedClassifier(original, num_classes, Gaussian(sigma), batch_size, device)
        self.sigma, self.n0, self.n, self.alpha = check_sampling(sigma, n0, n, alpha)
        self.entries: dict[str, CacheEntry] = {}

    @property
    def batch_size(self) -> int:
        return self.smoothed.sampler.batch_size

    def certify_many(self, xs: torch.Tensor, generator: torch.Generator | None = None) -> list[Certificate]:
        """Cohen's CERTIFY of f on each input, storing its :class:`CacheEntry`."""
        check_inputs(xs, self.smoothed.input_shape, batched=True)
        start = time.perf_counter()
        seeds = torch.randint(0, 2**62, (len(xs),), generator=generator).tolist()
        top = select(self.smoothed.sampler, xs, self.n0, generator).tolist()
        entries = []
        for x, seed, c_a in zip(xs, seeds, top, strict=True):
            votes = self.smoothed.sampler.draw_votes(x, self.n, torch.Generator().manual_seed(seed))
            p_lower = float(clopper_pearson_lower(int((votes == c_a).sum()), self.n, self.alpha))
            entries.append(CacheEntry(seed, c_a, p_lower, votes.to(torch.int16)))
            self.entries[input_key(x)] = entries[-1]
        seconds = (time.perf_counter() - start) / len(xs)
        noise, dim = self.smoothed.noise, math.prod(xs.shape[1:])
        return [Certificate(prediction=ABSTAIN if abstains(e.p_lower) else e.prediction,
                            radius=noise.radius(e.p_lower), p_lower=e.p_lower, forward_passes=self.n0 + self.n,
                            seconds=seconds, radii=noise.radii(e.p_lower, dim)) for e in entries]

    def lookup(self, xs: torch.Tensor, generator: torch.Generator | None = None) -> list[CacheEntry]:
        """The entries of ``xs``; inputs not cached yet are certified first (with ``generator``)."""
        keys = [input_key(x) for x in xs]
        missing = [i for i, key in enumerate(keys) if key not in self.entries]
        if missing:
            self.certify_many(xs[missing], generator)
        return [self.entries[key] for key in keys]


def incremental_bound(p_lower: float, disagreements: int, n_incremental: int, alpha_zeta: float) -> tuple[float, float]:
    """``(p_A - zeta, zeta)``: zeta the one-sided Clopper-Pearson upper bound on the disagreement rate."""
    zeta = float(clopper_pearson_upper(disagreements, n_incremental, alpha_zeta))
    return p_lower - zeta, zeta


@register
class IncrementalRS(Certifier):
    """IRS for the modified model ``model`` (f_p), from a cache of the original (module docstring).

    Pass ``cache`` (an :class:`IRSCache`, shared by several modifications of
    one original) or ``original`` (the model f; a cache is built with n0, n,
    alpha and batch_size).  Inputs missing from the cache are certified with
    f first, with the generator given to :meth:`certify_many`.
    """

    name = "irs"
    summary = "incremental RS: certify a modified model from the original's cached seeds, p_A - zeta"
    settings_fields = ("sigma", "n0", "n", "alpha", "n_incremental", "alpha_zeta", "gamma")

    def __init__(self, model, num_classes: int, sigma: float, cache: IRSCache | None = None, original=None,
                 n0: int = 100, n: int = 100_000, n_incremental: int | None = None, alpha: float = 0.001,
                 alpha_zeta: float = 0.001, gamma: float = 0.99, batch_size: int = 1000, device=None):
        if (cache is None) == (original is None):
            raise ValueError("irs needs exactly one of cache (an IRSCache) or original (the unmodified model)")
        if cache is None:
            cache = IRSCache(original, num_classes, sigma, n0, n, alpha, batch_size, device)
        if not isinstance(cache, IRSCache):
            raise TypeError(f"cache must be an IRSCache, got {type(cache).__name__}")
        if float(sigma) != cache.sigma:
            raise ValueError(f"sigma = {sigma} differs from the cache's sigma = {cache.sigma}")
        self.cache = cache
        self.n_incremental = check_sample_size("n_incremental", n_incremental or max(1, cache.n // 10))
        if self.n_incremental > cache.n:
            raise ValueError(f"n_incremental ({self.n_incremental}) must not exceed the cached n ({cache.n})")
        self.alpha_zeta = check_alpha(alpha_zeta)
        self.gamma = float(gamma)
        if not 0.5 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0.5, 1], got {gamma}")
        self.sigma = cache.sigma
        device = cache.smoothed.device
        # replays the cached draws: same noise and batch size as the cache
        self.replay = Sampler(model.to(device).eval(), Gaussian(sigma), num_classes, cache.batch_size, device)
        self.fallback = SmoothedClassifier(model, num_classes, Gaussian(sigma), batch_size, device)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self.fallback.input_shape

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        entries = self.cache.lookup(xs, generator)
        certs: list[Certificate | None] = [None] * len(xs)
        fallback = [i for i, e in enumerate(entries) if e.p_lower < self.gamma]
        if fallback:
            n_p, n0 = self.n_incremental, min(self.cache.n0, self.n_incremental)
            for i, cert in zip(fallback, self.fallback.certify_many(xs[fallback], n0, n_p, self.cache.alpha,
                                                                   generator), strict=True):
                cert.extra = self._extra(entries[i], False, math.nan, -1)
                certs[i] = cert
        dim = math.prod(xs.shape[1:])
        for i, entry in enumerate(entries):
            if certs[i] is None:
                certs[i] = self._incremental(xs[i], entry, dim)
        return certs

    def _incremental(self, x: torch.Tensor, entry: CacheEntry, dim: int) -> Certificate:
        start = time.perf_counter()
        n_p = self.n_incremental
        votes = self.replay.draw_votes(x, self.cache.n, torch.Generator().manual_seed(entry.seed), limit=n_p)
        disagreements = int((votes != entry.votes[:n_p].long()).sum())
        p, zeta = incremental_bound(entry.p_lower, disagreements, n_p, self.alpha_zeta)
        abstain = abstains(p)
        noise = self.replay.noise
        radii = noise.radii(0.0 if abstain else p, dim)
        return Certificate(prediction=ABSTAIN if abstain else entry.prediction, radius=radii["l2"], p_lower=p,
                           forward_passes=n_p, seconds=time.perf_counter() - start, radii=radii,
                           extra=self._extra(entry, True, zeta, disagreements))

    def _extra(self, entry: CacheEntry, incremental: bool, zeta: float, disagreements: int) -> dict:
        return {"incremental": int(incremental), "zeta": zeta, "disagreements": disagreements,
                "n_incremental": self.n_incremental, "p_lower_original": entry.p_lower}

    @property
    def n0(self) -> int:
        return self.cache.n0

    @property
    def n(self) -> int:
        return self.cache.n

    @property
    def alpha(self) -> float:
        return self.cache.alpha

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return [harness.case(cls.name, "tilted-shifted-half-space-d16", _modified_half_space_case, dim=16,
                             positions=IRS_POSITIONS, max_trials=2000)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.doubled_alpha(cls, "tilted-shifted-half-space-d16", 300, shares=("alpha", "alpha_zeta"))
                .surviving("alpha, alpha_zeta and the fallback at alpha/3 each: at most 0.9 alpha after doubling, at "
                           "offset 0.5; only a test against IRS's own violation probability would catch it")]


#: Offsets |u' . x - 0.15| of the IRS case, either side: p_A of f_p just above 1/2 (zeta decides whether anything is
#: certified), the cached bound of f around gamma = 0.9 (on the side of f's class 1, where the branch switches between
#: replay and fallback), and far out (zeta's share of the radius is largest relative to the margin left).
IRS_POSITIONS = tuple(harness.Position(f"offset={s:g}", s) for s in (0.01, 0.5, 0.65, 1.5))


def _modified_half_space_case(trials, seed, alpha, factory):
    """original f: u . x > 0; modified f_p: u' . x > 0.15, u' = u tilted by 0.02 towards a random v (d = 16);
    IRS of f_p from f's cache (n_p = 200, gamma = 0.9), alpha, alpha_zeta and the fallback at alpha / 3 each;
    inputs at |u' . x - 0.15| in (0.01, 0.5, 0.65, 1.5), either side; true class and radius from f_p"""
    original = IntervalClassifier(unit_vector(16, None, 0), [0.0], [0, 1], num_classes=2)
    modified = IntervalClassifier(unit_vector(16, None, 0) + 0.02 * unit_vector(16, None, 7), [0.15], [0, 1],
                                  num_classes=2)
    certifier = harness.build(factory, "irs", modified, 2, harness.N, alpha / 3, 16, original=original,
                              alpha_zeta=alpha / 3, n_incremental=200, gamma=0.9)

    def place(position, rng, count):
        return rng.choice([-1.0, 1.0], count) * position.value + 0.15

    return harness.interval_outcomes(modified, Gaussian(harness.SIGMA), certifier, place, IRS_POSITIONS, trials, seed)
