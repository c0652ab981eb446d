"""Double Sampling Randomized Smoothing (Li, Zhang, Xie, Li & Li, "Double Sampling
Randomized Smoothing", ICML 2022).

Besides the primary P = N(0, sigma^2 I_d), sample a secondary Q and use both
estimates.  CERTIFY(x): n0 samples of P select c_A; n fresh samples of P give
k_P hits of c_A and n samples of Q give k_Q hits; two-sided Clopper-Pearson
intervals at alpha/2 each give [pL, pU] for p = P(f(x + e) = c_A) and [qL, qU]
for q under Q (both hold with probability >= 1 - alpha).  If pL <= 1/2
abstain; else certify the largest r such that every f' : R^d -> [0, 1] with
pL <= E_P f' <= pU and qL <= E_Q f' <= qU keeps E_P f'(. + delta) > 1/2 for
||delta|| <= r (Theorem 1 of the paper).

The radius is computed in :mod:`~rsscale.methods.dsrs.gaussian` (P Gaussian; the worst-case classifier and the
walk up from the Neyman-Pearson radius), :mod:`~rsscale.methods.dsrs.generalized` (P the generalized Gaussian
P_k, k > 0, on a polar quadrature) and :mod:`~rsscale.methods.dsrs.numerics` (quadrature and root finding);
:mod:`~rsscale.methods.dsrs.radius` holds the validated entry points :func:`dsrs_bound` and :func:`dsrs_radius`.

Deviations from the official code: c_A comes from n0 selection samples (the
official code counts the true label), and the truncation T is fixed per
dimension (default: the T with P(||z|| <= T) = 1/2) instead of the paper's
heuristic that picks it from the estimated pA.
"""

from __future__ import annotations

import math
import time

import torch
from scipy.special import ndtri

from rsscale import harness, mutation
from rsscale.bounds import clopper_pearson_interval
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import Certifier, register
from rsscale.methods.dsrs.gaussian import DSRSBound
from rsscale.methods.dsrs.generalized import GeneralizedDSRSBound, ScaledGeneralizedDSRSBound
from rsscale.methods.dsrs.polar import PolarBound
from rsscale.methods.dsrs.radius import SECONDARIES, check_k, dsrs_bound, dsrs_radius, np_radius
from rsscale.noise import Gaussian, GeneralizedGaussian, NoiseDistribution, TruncatedGaussian, convert_radius
from rsscale.oracles import BallClassifier, IntervalClassifier, sign_vector
from rsscale.smooth import abstains, estimate, select

__all__ = ["DSRS", "SECONDARIES", "DSRSBound", "GeneralizedDSRSBound", "PolarBound", "ScaledGeneralizedDSRSBound",
           "dsrs_bound", "dsrs_radius", "np_radius"]


@register
class DSRS(Certifier):
    """DSRS CERTIFY: n0 selection samples of P, then n samples each of P and Q (see the module docstring)."""

    name = "dsrs"
    summary = "double sampling RS: a second noise Q (truncated or scaled) tightens the (generalized) Gaussian l2 radius"
    settings_fields = ("sigma", "n0", "n", "alpha", "secondary", "truncation", "sigma_q")

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 50_000, alpha: float = 0.001,
                 secondary: str = "truncated", truncation: float | None = None, sigma_q: float | None = None,
                 k: float = 0.0, batch_size: int = 1000, device=None):
        self.check_sampling(sigma, n0, n, alpha)
        self.k = check_k(k)
        bound = dsrs_bound(self.sigma, 1, secondary, truncation, sigma_q)  # validates; dim 1 stands in for d
        self.secondary, self.truncation = secondary, truncation
        self.sigma_q = bound.param if secondary == "scaled" else None
        self.set_model(model, num_classes, device, batch_size)
        self.primary = self.new_sampler(GeneralizedGaussian(self.sigma, self.k) if self.k else Gaussian(self.sigma))

    def bound(self, dim: int) -> DSRSBound | PolarBound:
        return dsrs_bound(self.sigma, dim, self.secondary, self.truncation, self.sigma_q, self.k)

    def secondary_noise(self, dim: int) -> NoiseDistribution:
        """Q for inputs of dimension ``dim``."""
        if self.secondary == "scaled":
            return GeneralizedGaussian(self.sigma_q, self.k) if self.k else Gaussian(self.sigma_q)
        if self.k:
            return GeneralizedGaussian(self.sigma, self.k, self.bound(dim).param)
        return TruncatedGaussian(self.sigma, self.bound(dim).param)

    def level(self, statement: str) -> float:
        """The intervals of ``p`` (under P) and ``q`` (under Q) at alpha/2 each."""
        return self.alpha / 2

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        """DSRS CERTIFY for a batch; the inputs share forward passes, each gets its own samples and certificate."""
        dim = math.prod(xs.shape[1:])
        bound = self.bound(dim)
        start = time.perf_counter()
        top = select(self.primary, xs, self.n0, generator)
        count_p = estimate(self.primary, xs, self.n, top, generator)
        count_q = estimate(self.new_sampler(self.secondary_noise(dim)), xs, self.n, top, generator)
        sampling = (time.perf_counter() - start) / len(xs)
        p_lower, p_upper = clopper_pearson_interval(count_p, self.n, self.level("p"))
        q_lower, q_upper = clopper_pearson_interval(count_q, self.n, self.level("q"))
        certs = []
        for i, c_a in enumerate(top.tolist()):
            pl, pu, ql, qu = float(p_lower[i]), float(p_upper[i]), float(q_lower[i]), float(q_upper[i])
            tic = time.perf_counter()
            certified = not abstains(pl)
            radius = bound.radius(pl, pu, ql, qu) if certified else 0.0
            radius_seconds = time.perf_counter() - tic
            certs.append(Certificate(
                prediction=c_a if certified else ABSTAIN,
                radius=radius,
                p_lower=pl,
                forward_passes=self.n0 + 2 * self.n,
                seconds=sampling + radius_seconds,
                radii={norm: convert_radius(radius, "l2", norm, dim) for norm in ("l1", "l2", "linf")},
                extra={"p_upper": pu, "q_lower": ql, "q_upper": qu,
                       "np_radius": bound.np_radius(pl) if self.k else
                       self.sigma * float(ndtri(pl)) if certified else 0.0,
                       "sampling_seconds": sampling, "radius_seconds": radius_seconds,
                       "count_p": int(count_p[i]), "count_q": int(count_q[i])},
            ))
        return certs

    def settings(self) -> dict:
        return {**super().settings(), **({"k": self.k} if self.k else {})}

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        """The ball oracle with both secondaries (where DSRS beats Neyman-Pearson: both intervals, of P and of Q,
        shape the radius), a half-space in d = 100, and the generalized Gaussian with the scaled Q."""
        return [_ball_case("truncated", (0.0, 1.0, 1.9, 3.0), max_trials=2000),
                harness.half_space_case(cls.name, "truncated", 100, axis=None, max_trials=1000,
                                        ps=(harness.NEAR_HALF, 0.8, 0.99), secondary="truncated"),
                _ball_case("scaled", (0.0, 1.9), max_trials=100),
                harness.case(cls.name, "scaled-k5-rotated-d16", _generalized_scaled_case, dim=16, n=50,
                             positions=SCALED_POSITIONS, max_trials=500)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        loose = ("the two-sided intervals (one-sided alpha/4 each) leave DSRS below alpha after the change "
                 "(intervals at 2 alpha: 0.99 alpha at p = 0.99, 2,000 trials); only a test against DSRS's own "
                 "violation probability would catch it")
        return [mutation.reused_selection(cls, "primary", "truncated-rotated-d100", 300).surviving(loose),
                mutation.doubled_alpha(cls, "truncated-rotated-d100", 300).surviving(loose),
                mutation.overriding(cls, "intervals-at-2alpha", "the intervals of p and of q at 2 alpha each (not "
                                    "alpha/2)", "truncated-rotated-d100", 300, level=_twice_alpha).surviving(loose)]


def _twice_alpha(self, statement: str) -> float:
    """A mutant's step (:meth:`DSRS.mutants`): each interval at 2 alpha."""
    return 2 * self.alpha


def _ball_case(secondary: str, distances, max_trials: int | None) -> harness.Case:
    positions = tuple(harness.Position(f"s={s:g}", s) for s in distances)

    def run(trials, seed, alpha, factory):
        oracle = BallClassifier(torch.zeros(10), radius=2.5)
        certifier = harness.build(factory, "dsrs", oracle, 2, harness.N, alpha, 10, secondary=secondary)
        return harness.ball_outcomes(oracle, certifier, positions, trials, seed)

    run.__doc__ = (f"ball ||x|| <= 2.5 in d = 10 (g switches at s* ~ 2.0), {secondary} secondary; inputs at ||x|| in "
                   f"{tuple(distances)}: the center (Q's mass, hence DSRS's gain over Neyman-Pearson, is largest), "
                   f"inside, near s* (p_A near 1/2) and outside; true radius |s* - ||x|||")
    return harness.case("dsrs", f"{secondary}-ball-d10", run, dim=10, positions=positions, norms=("l2",),
                        max_trials=max_trials)


#: Positions of the generalized case: t = u . x near the hyperplane (p_A near 1/2) and at 0.5, either side.
SCALED_POSITIONS = tuple(harness.Position(f"t={t:g}", t) for t in (0.05, 0.5))


def _generalized_scaled_case(trials, seed, alpha, factory):
    """half-space u . x > 0 in d = 16 (u a random-sign diagonal), generalized Gaussian P_k (k = 5) with the scaled Q
    (P_k at 0.8 sigma), n = 50; inputs at t = +-0.05 and +-0.5 (few distinct counts, hence few radius searches); true
    l_q radius |t| / ||u||_q* (g flips at the hyperplane under any spherically symmetric noise, so the Gaussian
    stands in for P_k there)"""
    oracle = IntervalClassifier(sign_vector(16), [0.0], [0, 1], num_classes=2)
    certifier = harness.build(factory, "dsrs", oracle, 2, 50, alpha, 16, secondary="scaled", k=5.0)

    def place(position, rng, count):
        return rng.choice([-1.0, 1.0], count) * position.value

    return harness.interval_outcomes(oracle, Gaussian(harness.SIGMA), certifier, place, SCALED_POSITIONS, trials,
                                     seed)
