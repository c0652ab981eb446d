"""ISRS: input-dependent sigma with a sound certificate (Sukenik, Kuvshinov & Guennemann, "Intriguing Properties of
Input-Dependent Randomized Smoothing", ICML 2022).

The smoothed classifier is ``g(x) = argmax_c P(f(x + sigma(x) e) = c)``, e ~ N(0, I), with the fixed noise level

    sigma(x) = sigma exp(rate min(||x - anchor||_2, span)),

(anchor: the constant input of value ``anchor``), which is r-semi-elastic with r = ``rate``: ``|log sigma(x) - log
sigma(x')| <= rate ||x - x'||_2`` (the distance to a point is 1-Lipschitz, clipping and scaling by ``rate`` keep the
constant).  So at x' = x + delta with ``||delta|| = eps`` the level s1 = sigma(x') lies in ``[s0 e^{-rate eps}, s0
e^{rate eps}]``, s0 = sigma(x).

Certificate (their Thm. 3.2, re-derived): by Neyman-Pearson the smallest ``P(W in A)``, W ~ N(x + delta, s1^2 I),
over sets with ``P(Z in A) >= p``, Z ~ N(x, s0^2 I), is attained on a likelihood-ratio set, which is a ball (s1 > s0)
or the outside of one (s1 < s0) centred at ``x - k delta``, ``k = s0^2 / (s1^2 - s0^2)``.  With d the dimension,
``lambda0 = eps^2 k^2 / s0^2``, ``lambda1 = eps^2 (1 + k)^2 / s1^2`` and chi'^2 the noncentral chi-square
(scipy.stats.ncx2):

    s1 > s0:  q = F^-1_{d, lambda0}(p),   bound = F_{d, lambda1}(q s0^2 / s1^2),
    s1 < s0:  q = S^-1_{d, lambda0}(p),   bound = S_{d, lambda1}(q s0^2 / s1^2)   (S the survival function),

and Cohen's ``Phi(Phi^-1(p) - eps / s0)`` at s1 = s0.  g(x') is the certified class when the worst bound over the
range of s1 exceeds 1/2.  The bound is unimodal in log s1 (checked in ``tests/test_isrs.py``), so its minimum over
the range is at an endpoint; it is taken over ``GRID`` levels: both endpoints and s0.  The radius is the largest
eps (bisection, rounded down) with that minimum > 1/2, from the Clopper-Pearson bound p_A of Cohen's CERTIFY at
sigma(x) (fresh n0 + n samples through the shared sampler).  With rate = 0 this is Cohen's radius; in high d a
fixed relative change of sigma moves chi'^2 by O(d), so only a tiny rate certifies anything (the paper's curse of
dimensionality for input-dependent sigma).  ``anchor`` and ``span`` are this implementation's choices.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.stats import ncx2, norm

from rsscale import harness, mutation
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import Certifier, register
from rsscale.methods.common import ScaledGaussian, certify_at_sigmas, l2_radii

#: Levels s1 (log-spaced over the range, endpoints included) at which the Neyman-Pearson bound is evaluated.
GRID = 3
#: Bisection steps of the radius search (relative precision 2^-30 of Cohen's radius).
BISECTION_STEPS = 30


def two_gaussian_bound(p, eps, s0, s1, dim: int) -> np.ndarray:
    """Smallest ``P(f(x + delta + s1 e) = A)`` given ``P(f(x + s0 e) = A) >= p`` and ``||delta||_2 = eps`` (module
    docstring); elementwise over the broadcast arrays."""
    p, eps, s0, s1 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (p, eps, s0, s1)))
    out = np.empty(p.shape)
    same = np.isclose(s1, s0, rtol=1e-12, atol=0.0)
    out[same] = norm.cdf(norm.ppf(p[same]) - eps[same] / s0[same])
    k = s0**2 / np.where(same, 1.0, s1**2 - s0**2)
    lam0, lam1 = (eps * k / s0) ** 2, (eps * (1 + k) / s1) ** 2
    for side, quantile, mass in ((~same & (s1 > s0), ncx2.ppf, ncx2.cdf), (~same & (s1 < s0), ncx2.isf, ncx2.sf)):
        if side.any():
            q = quantile(p[side], dim, lam0[side])
            out[side] = mass(q * (s0[side] / s1[side]) ** 2, dim, lam1[side])
    return out


def worst_bound(p, eps, s0, rate: float, dim: int) -> np.ndarray:
    """The bound at the worst level s1 in ``[s0 e^{-rate eps}, s0 e^{rate eps}]`` (over :data:`GRID` levels),
    elementwise over the broadcast arrays p, eps, s0."""
    p, eps, s0 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (p, eps, s0)))
    steps = np.linspace(-1.0, 1.0, GRID)
    levels = s0[..., None] * np.exp(rate * eps[..., None] * steps)
    return two_gaussian_bound(p[..., None], eps[..., None], s0[..., None], levels, dim).min(axis=-1)


def isrs_radius(p, s0, rate: float, dim: int) -> np.ndarray:
    """Largest eps with ``worst_bound(p, eps) > 1/2`` (0 where p <= 1/2), elementwise; at most Cohen's
    ``s0 Phi^-1(p)``.  Bisection over all inputs at once, rounded down."""
    p, s0 = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(s0, dtype=float))
    hi = np.where(p > 0.5, s0 * norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)
    lo = np.zeros(p.shape)
    if rate == 0:
        return hi
    live = p > 0.5
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        holds = np.zeros(p.shape, dtype=bool)
        holds[live] = worst_bound(p[live], mid[live], s0[live], rate, dim) > 0.5
        lo, hi = np.where(holds, mid, lo), np.where(holds, hi, mid)
    return lo


@register
class ISRS(Certifier):
    """Input-dependent sigma, r-semi-elastic, certified with the two-Gaussian Neyman-Pearson bound (docstring)."""

    name = "isrs"
    summary = ("input-dependent sigma (Sukenik et al.): log-Lipschitz sigma(x), two-Gaussian Neyman-Pearson "
               "certificate via noncentral chi-square")
    settings_fields = ("sigma", "n0", "n", "alpha", "rate", "anchor", "span")

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                 rate: float = 0.01, anchor: float = 0.0, span: float = 10.0, batch_size: int = 1000, device=None):
        self.check_sampling(sigma, n0, n, alpha)
        self.rate, self.anchor, self.span = float(rate), float(anchor), float(span)
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate (the semi-elasticity r) must be a finite number >= 0, got {rate}")
        if not math.isfinite(self.anchor):
            raise ValueError(f"anchor must be a finite number, got {anchor}")
        if not (self.span >= 0 and math.isfinite(self.span)):
            raise ValueError(f"span must be a finite number >= 0, got {span}")
        self.set_model(model, num_classes, device, batch_size)
        self.noise = ScaledGaussian()
        self.sampler = self.new_sampler(self.noise)

    def sigmas(self, xs: torch.Tensor) -> np.ndarray:
        """sigma(x) of each input of a batch (module docstring)."""
        distance = (xs.detach().flatten(1).double().cpu() - self.anchor).norm(dim=1).numpy()
        return self.sigma * np.exp(self.rate * np.minimum(distance, self.span))

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        start = time.perf_counter()
        sigmas = self.sigmas(xs)
        certs = certify_at_sigmas(self.sampler, self.noise, xs, sigmas, self.n0, self.n, self.alpha, generator)
        dim = math.prod(xs.shape[1:])
        radii = isrs_radius([c.p_lower for c in certs], sigmas, self.rate, dim)
        for cert, radius in zip(certs, radii, strict=True):
            cert.extra["cohen_radius"] = cert.radius
            if cert.prediction != ABSTAIN:
                cert.radii = l2_radii(float(radius), dim)
                cert.radius = cert.radii["l2"]
        per_input = (time.perf_counter() - start) / len(xs)
        for cert in certs:
            cert.seconds = per_input
        return certs

    def noise_at(self, points: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        return self.sigmas(points)

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        """sigma(x) = sigma exp(0.05 min(||x||, 10)); on a half-space g's class is sign(u . x) whatever sigma(x), so
        the true radius is |u . x|."""
        return [harness.half_space_case(cls.name, "gaussian", 100, axis=None, max_trials=2000, rate=0.05)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.doubled_alpha(cls, "gaussian-rotated-d100", 800)]
