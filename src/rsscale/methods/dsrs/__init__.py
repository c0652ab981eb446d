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

The worst case at ||delta|| = r (rotate delta to r e_1).  By the generalized
Neyman-Pearson lemma the minimizing f' is the indicator of
``A = {z : p(z - r e_1) < lam1 p(z) + lam2 q(z)}``, where
``p(z - r e_1) / p(z) = exp(l(z_1))``, ``l(z_1) = (2 r z_1 - r^2) / (2 sigma^2)``.
Its value S(r) = P(A - r e_1) is at least the plain Neyman-Pearson value
Phi(Phi^-1(pL) - r / sigma) (DSRS adds constraints), with equality when the NP
half-space {z_1 < sigma Phi^-1(pL)} already meets the Q interval.  Otherwise
one Q bound binds, and (the value is convex in the two masses) the P mass
sits at pL, or at the P mass of the best set that meets the Q bound alone when
that lies in [pL, pU], or at pU.

* truncated Q (P conditioned on ||z|| <= T, ball mass Z): q / p = 1{ball} / Z,
  so A = {z_1 < a_in} in the ball and {z_1 < a_out} outside, and the masses
  fix both thresholds independently of r: the ball part has P mass Z q_B (q_B
  the binding Q bound) and the outside part max(pL - Z q_B, 0).
* scaled Q = N(0, sigma_q^2 I) with sigma_q < sigma: q / p is
  ``(sigma / sigma_q)^d exp(-kappa ||z||^2)``, ``kappa = (1/sigma_q^2 - 1/sigma^2) / 2``,
  so A is a region in (z_1, rho = ||z_{2..d}||): for lam2 > 0 it is
  ``{rho^2 < omega - L(z_1) / kappa - z_1^2}`` (plus {z_1 <= b} when lam1 > 0),
  with ``L = ln|exp(l(z_1)) - lam1|``, ``|lam1| = exp(l(b))`` and ``omega`` carrying lam2;
  for lam2 < 0 it is ``{z_1 < b, rho^2 > omega - L / kappa - z_1^2}`` with
  ``L = ln(lam1 - exp(l))``.  Nested root finding (outer on b, inner on omega)
  matches the two masses.

Every mass is a 1-D integral over z_1 (normal, with the measure's center and
scale) of a chi-square CDF with d - 1 degrees of freedom for
rho^2 / scale^2, computed by composite Gauss-Legendre quadrature over the
center +- 10 standard deviations (panels one standard deviation wide, split
at the set's breakpoints) with the regularized incomplete gamma functions, so
d = 100,000 costs as little as d = 10.

The radius must hold for every shift up to it, and S need not decrease in r
(a Q upper bound makes the worst set a shell, whose shifted mass first rises),
so instead of the paper's binary search, which assumes it does, we walk up
from the NP radius (below it S exceeds the NP value, hence 1/2) with steps
that cannot skip a crossing: each ``P(A - r e_1)`` is Lipschitz in r with
constant ``L = 1 / (sigma sqrt(2 pi))`` (the total variation between
N(r, sigma^2) and N(r', sigma^2) in one dimension), hence so is their minimum
S, and ``S > 1/2`` on ``[r, r + (S(r) - 1/2) / L)``.  The walk stops when its
step falls below 1e-7 sigma; it converges geometrically when S crosses 1/2
with a slope near -L (the NP slope) and stops short, never beyond, otherwise.
Intervals that no classifier can meet (possible only when a bound fails) fall
back to the NP radius.

The generalized Gaussian primary P_k (``k > 0``) is :class:`GeneralizedDSRSBound`
with the truncated Q (P_k on a ball) and :class:`ScaledGeneralizedDSRSBound`
with the scaled Q (P_k at sigma_q, the paper's CIFAR-10 choice), both on the
polar quadrature of :class:`PolarBound`; k = 0 keeps the code above.

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

from rsscale import harness
from rsscale.bounds import clopper_pearson_interval
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import Certifier, register
from rsscale.methods.dsrs.gaussian import DSRSBound
from rsscale.methods.dsrs.generalized import GeneralizedDSRSBound, PolarBound, ScaledGeneralizedDSRSBound
from rsscale.methods.dsrs.radius import SECONDARIES, check_k, dsrs_bound, dsrs_radius, np_radius
from rsscale.noise import Gaussian, GeneralizedGaussian, NoiseDistribution, TruncatedGaussian, convert_radius
from rsscale.oracles import BallClassifier, IntervalClassifier, unit_vector
from rsscale.smooth import estimate, select

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

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        """DSRS CERTIFY for a batch; the inputs share forward passes, each gets its own samples and certificate."""
        dim = math.prod(xs.shape[1:])
        bound = self.bound(dim)
        start = time.perf_counter()
        top = select(self.primary, xs, self.n0, generator)
        count_p = estimate(self.primary, xs, self.n, top, generator)
        count_q = estimate(self.new_sampler(self.secondary_noise(dim)), xs, self.n, top, generator)
        sampling = (time.perf_counter() - start) / len(xs)
        p_lower, p_upper = clopper_pearson_interval(count_p, self.n, self.alpha / 2)
        q_lower, q_upper = clopper_pearson_interval(count_q, self.n, self.alpha / 2)
        certs = []
        for i, c_a in enumerate(top.tolist()):
            pl, pu, ql, qu = float(p_lower[i]), float(p_upper[i]), float(q_lower[i]), float(q_upper[i])
            tic = time.perf_counter()
            radius = bound.radius(pl, pu, ql, qu) if pl > 0.5 else 0.0
            radius_seconds = time.perf_counter() - tic
            certs.append(Certificate(
                prediction=c_a if pl > 0.5 else ABSTAIN,
                radius=radius,
                p_lower=pl,
                forward_passes=self.n0 + 2 * self.n,
                seconds=sampling + radius_seconds,
                radii={norm: convert_radius(radius, "l2", norm, dim) for norm in ("l1", "l2", "linf")},
                extra={"p_upper": pu, "q_lower": ql, "q_upper": qu,
                       "np_radius": bound.np_radius(pl) if self.k else
                       self.sigma * float(ndtri(pl)) if pl > 0.5 else 0.0,
                       "sampling_seconds": sampling, "radius_seconds": radius_seconds,
                       "count_p": int(count_p[i]), "count_q": int(count_q[i])},
            ))
        return certs

    def settings(self) -> dict:
        return {**super().settings(), **({"k": self.k} if self.k else {})}

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        """The ball oracle with both secondaries (where DSRS beats Neyman-Pearson), a half-space in d = 100, and the
        generalized Gaussian with the scaled Q."""
        return [_ball_case("truncated", max_trials=5000),
                harness.half_space_case(cls.name, "truncated", 100, axis=None, max_trials=3000, secondary="truncated"),
                _ball_case("scaled", max_trials=200),
                harness.case(cls.name, "scaled-k5-rotated-d16", _generalized_scaled_case, dim=16, n=50,
                             max_trials=1000)]


def _ball_case(secondary: str, max_trials: int | None) -> harness.Case:
    def run(trials, seed, alpha, factory):
        oracle = BallClassifier(torch.zeros(10), radius=2.5)
        certifier = harness.build(factory, "dsrs", oracle, 2, harness.N, alpha, 10, secondary=secondary)
        return harness.ball_outcomes(oracle, certifier, trials, seed)

    run.__doc__ = (f"ball ||x|| <= 2.5 in d = 10 (g switches at s* ~ 2.0), {secondary} secondary; ||x|| ~ U(0, 3.5); "
                   f"true radius |s* - ||x|||")
    return harness.case("dsrs", f"{secondary}-ball-d10", run, dim=10, max_trials=max_trials)


def _generalized_scaled_case(trials, seed, alpha, factory):
    """half-space u . x > 0 in d = 16 (u a random unit vector), generalized Gaussian P_k (k = 5) with the scaled Q
    (P_k at 0.8 sigma), n = 50; inputs at t = +-0.5 (few distinct counts, hence few radius searches); true radius |t|
    (g flips at the hyperplane under any spherically symmetric noise, so the Gaussian stands in for P_k there)"""
    oracle = IntervalClassifier(unit_vector(16, None), [0.0], [0, 1], num_classes=2)
    certifier = harness.build(factory, "dsrs", oracle, 2, 50, alpha, 16, secondary="scaled", k=5.0)
    positions = lambda rng, count: rng.choice([-0.5, 0.5], count)  # noqa: E731
    return harness.interval_outcomes(oracle, Gaussian(harness.SIGMA), certifier, positions, trials, seed, ["l2"])
