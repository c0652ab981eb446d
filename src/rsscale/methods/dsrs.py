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
polar quadrature of :class:`_PolarBound`; k = 0 keeps the code above.

Deviations from the official code: c_A comes from n0 selection samples (the
official code counts the true label), and the truncation T is fixed per
dimension (default: the T with P(||z|| <= T) = 1/2) instead of the paper's
heuristic that picks it from the estimated pA.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.special import (
    betainc,
    betaln,
    expit,
    gammainc,
    gammaincc,
    gammainccinv,
    gammaincinv,
    gammaln,
    ndtr,
    ndtri,
    wrightomega,
)

from rsscale.bounds import check_alpha, clopper_pearson_interval
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import BatchCertifier, register
from rsscale.noise import Gaussian, GeneralizedGaussian, NoiseDistribution, TruncatedGaussian, convert_radius
from rsscale.sampling import Sampler
from rsscale.smooth import check_sample_size, check_selection_and_estimation

SECONDARIES = ("truncated", "scaled")
#: sigma_q / sigma of the paper's CIFAR-10 runs (0.2, 0.4, 0.8 for sigma 0.25, 0.5, 1).
DEFAULT_SCALE_RATIO = 0.8
#: S(r) must exceed 1/2 by this much (covers quadrature and root-finding error).
MARGIN = 1e-9
_WALK_STEPS = 200  # the walk's cap (it stops short, never beyond, when reached)
_WALK_TOL = 1e-7

_WIDTH = 10.0  # quadrature window: center +- 10 standard deviations (tail mass < 1e-22)
_TAIL = 1e-18  # chi-square quantiles bracketing the inner root
_GRADING = np.concatenate([[0.0], 2.0 ** -np.arange(1, 9)])
_SMOOTH_DF = 16  # from d - 1 = 16 on, the chi-square CDF is smooth enough at 0 for the plain panels


def _panel_rules(order: int = 12):
    """Gauss-Legendre rules on [0, 1] for a panel with no singular end, a singular left end, right end, or both.

    A break (where a chi-square CDF's argument reaches 0, or the set's boundary
    bends) may carry an integrable singularity like (z - a)^(1/2); the maps
    t^2, 1 - (1 - t)^2 and 3 t^2 - 2 t^3 flatten it.
    """
    x, w = np.polynomial.legendre.leggauss(order)
    t, w = (x + 1) / 2, w / 2
    maps = [(t, np.ones_like(t)), (t**2, 2 * t), (1 - (1 - t) ** 2, 2 * (1 - t)),
            (3 * t**2 - 2 * t**3, 6 * t * (1 - t))]
    return np.stack([m for m, _ in maps]), np.stack([w * dm for _, dm in maps])


_RULE_T, _RULE_W = _panel_rules()


def _normal_nodes(center, scale, lo=-math.inf, hi=math.inf, breaks=()):
    """Nodes z and weights w with ``w @ g(z) ~ integral_lo^hi g(z) N(z; center, scale^2) dz``.

    Composite Gauss-Legendre on the window center +- 10 scale: the breaks (and
    lo, hi) cut it into segments, each split evenly into panels at most one
    scale wide, and the panel ends at breaks, lo and hi get a singular-end rule.
    """
    a, b = max(lo, center - _WIDTH * scale), min(hi, center + _WIDTH * scale)
    if not a < b:
        return np.empty(0), np.empty(0)
    singular = np.unique([x for x in (lo, hi, *breaks) if a <= x <= b])
    ends = np.union1d([a, b], singular)
    pieces = [np.linspace(p, q, int(math.ceil((q - p) / scale)) + 1)[:-1]
              for p, q in zip(ends[:-1], ends[1:], strict=True)]
    edges = np.append(np.concatenate(pieces), b)
    marked = np.isin(edges, singular)
    kind = marked[:-1] + 2 * marked[1:]
    width = np.diff(edges)[:, None]
    z = (edges[:-1, None] + width * _RULE_T[kind]).ravel()
    w = (width * _RULE_W[kind]).ravel() * np.exp(-0.5 * ((z - center) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
    return z, w


def _positive(name: str, value) -> float:
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _chi2_cdf(x, df):
    x = np.asarray(x, dtype=float)
    return (x >= 0).astype(float) if df == 0 else gammainc(df / 2, np.maximum(x, 0) / 2)


def _chi2_sf(x, df):
    x = np.asarray(x, dtype=float)
    return (x < 0).astype(float) if df == 0 else gammaincc(df / 2, np.maximum(x, 0) / 2)


def _root(f, lo, hi, xtol):
    """Root of an increasing f on [lo, hi], or the end where f already has the sign it would have past the root."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo >= 0:
        return lo
    if f_hi <= 0:
        return hi
    return brentq(f, lo, hi, xtol=xtol, rtol=1e-14)


def _secant(f, x, step, xtol, steps=8):
    """Secant iterations for a root of f near x; returns the point with the smallest |f| seen."""
    x0, f0, x1 = x, f(x), x + step
    best = (abs(f0), x0)
    for _ in range(steps):
        f1 = f(x1)
        best = min(best, (abs(f1), x1))
        if f1 == f0 or abs(x1 - x0) < xtol:
            break
        x0, f0, x1 = x1, f1, x1 - f1 * (x1 - x0) / (f1 - f0)
    return best[1]


@dataclass(frozen=True)
class WorstCase:
    """The adversary's best classifier at radius r: the indicator of
    ``A = {z : p(z - r e_1) < lam1 p(z) + lam2 q(z)}``, ``lam_i = sign_i exp(log_lam_i)``.

    ``p_mass = P(A)``, ``q_mass = Q(A)`` and ``shifted_mass = P(A - r e_1)``, the
    smoothed probability of c_A at ``x + r e_1`` for this classifier (the
    certificate holds at r iff it exceeds 1/2).  ``solved`` is False when the
    root finding could not match the masses (the value is then not trusted).
    """

    radius: float
    sign1: int
    log_lam1: float
    sign2: int
    log_lam2: float
    p_mass: float
    q_mass: float
    shifted_mass: float
    solved: bool = True


@dataclass(frozen=True)
class _Shape:
    """The scaled-Q set up to omega: lam1 = sign1 exp(l(b)), lam2 of sign sign2 (see the module docstring)."""

    radius: float
    sign1: int
    sign2: int
    b: float

    def offsets(self, z, sigma, kappa):
        """Where the rho-threshold applies, and c(z_1) = L(z_1) / kappa + z_1^2 there (threshold = omega - c)."""
        r, s2 = self.radius, sigma**2
        ell = (2 * r * z - r**2) / (2 * s2)
        ell_b = (2 * r * self.b - r**2) / (2 * s2)
        active = np.ones_like(z, dtype=bool)
        if self.sign1 == 0:
            big = ell
        elif self.sign1 < 0:
            big = np.logaddexp(ell, ell_b)
        else:  # exp(l) - lam1 above b (lam2 > 0), lam1 - exp(l) below b (lam2 < 0)
            gap = r * (z - self.b) / s2 * self.sign2
            active = gap > 0
            big = (ell if self.sign2 > 0 else ell_b) + np.log(-np.expm1(-np.where(active, gap, 1.0)))
        return active, big / kappa + z**2


class DSRSBound:
    """The DSRS certificate for P = N(0, sigma^2 I_dim) and one secondary Q.

    Args:
        sigma: primary noise level.
        dim: input dimension d.
        secondary: ``"truncated"`` (Q = P given ||z|| <= truncation) or
            ``"scaled"`` (Q = N(0, sigma_q^2 I)).
        param: the truncation T or sigma_q.
    """

    def __init__(self, sigma: float, dim: int, secondary: str, param: float):
        self.sigma, self.dim, self.secondary, self.param = float(sigma), int(dim), secondary, float(param)
        self.df = self.dim - 1
        self.chi2_low = 2 * gammaincinv(self.df / 2, _TAIL) if self.df else 0.0
        self.chi2_high = 2 * gammainccinv(self.df / 2, _TAIL) if self.df else 0.0
        self.xtol = 1e-12 * self.sigma
        if secondary == "truncated":
            self.ball_mass = float(gammainc(self.dim / 2, 0.5 * (self.param / self.sigma) ** 2))
            self._thresholds = functools.lru_cache(maxsize=256)(self._find_thresholds)
        else:
            self.kappa = 0.5 * (1 / self.param**2 - 1 / self.sigma**2)
            self.log_ratio = self.dim * math.log(self.sigma / self.param)  # ln(q/p) = log_ratio - kappa ||z||^2

    # ---- the Neyman-Pearson half-space and consistency ---------------------------------
    def np_q_mass(self, a: float) -> float:
        """Q mass of the NP half-space {z_1 < a}."""
        if self.secondary == "truncated":
            return self._ball_below(a) / self.ball_mass
        return float(ndtr(a / self.param))

    def consistent(self, p_lower, p_upper, q_lower, q_upper) -> bool:
        """Whether some set A has P(A) in [pL, pU] and Q(A) in [qL, qU].

        The reachable (P(A), Q(A)) lie between the curves of the sets ordered by
        q / p: for the truncated Q, ``Z Q <= P <= Z Q + 1 - Z``; for the scaled Q,
        between the ball and the ball's complement centred at 0.
        """
        if self.secondary == "truncated":
            z = self.ball_mass
            return z * q_lower <= p_upper and p_lower <= z * q_upper + 1 - z
        ratio = (self.sigma / self.param) ** 2
        ball_q = gammainc(self.dim / 2, gammaincinv(self.dim / 2, p_upper) * ratio)
        shell_q = gammaincc(self.dim / 2, gammainccinv(self.dim / 2, p_lower) * ratio)
        return bool(q_lower <= ball_q and shell_q <= q_upper)

    # ---- worst case at a radius --------------------------------------------------------
    def worst_case(self, p_lower, p_upper, q_lower, q_upper, radius: float) -> WorstCase:
        """The minimizing set at ``||delta|| = radius`` (consistent bounds, pL in (0, 1), radius > 0)."""
        a_np = self.sigma * float(ndtri(p_lower))
        q_np = self.np_q_mass(a_np)
        if q_lower - 1e-12 <= q_np <= q_upper + 1e-12:  # within rounding: no gain worth a solve
            ell = (2 * radius * a_np - radius**2) / (2 * self.sigma**2)
            shifted = float(ndtr((a_np - radius) / self.sigma))
            return WorstCase(radius, 1, ell, 0, -math.inf, p_lower, q_np, shifted)
        q_target = q_lower if q_np < q_lower else q_upper
        if self.secondary == "truncated":
            return self._truncated(p_lower, q_target, radius)
        return self._scaled(p_lower, p_upper, q_target, 1 if q_np < q_lower else -1, a_np, radius)

    def search(self, p_lower, p_upper, q_lower, q_upper) -> float:
        """Largest r reached by the Lipschitz walk from the NP radius (module docstring): S > 1/2 on all of [0, r]."""
        if p_lower <= 0.5:
            return 0.0
        if p_lower >= 1:
            return math.inf
        r_np = self.sigma * float(ndtri(p_lower))
        if not self.consistent(p_lower, p_upper, q_lower, q_upper):
            return r_np
        lipschitz = 1.0 / (self.sigma * math.sqrt(2 * math.pi))
        radius = r_np
        for _ in range(_WALK_STEPS):
            case = self.worst_case(p_lower, p_upper, q_lower, q_upper, radius)
            step = (case.shifted_mass - 0.5 - MARGIN) / lipschitz if case.solved else 0.0
            if step <= _WALK_TOL * self.sigma:
                break
            radius += step
        return radius

    def radius(self, p_lower, p_upper, q_lower, q_upper) -> float:
        """The certified radius, never below the NP radius (a guard against quadrature error)."""
        r_np = self.sigma * float(ndtri(p_lower)) if p_lower > 0.5 else 0.0
        return max(self.search(p_lower, p_upper, q_lower, q_upper), r_np)

    # ---- truncated Q ---------------------------------------------------------------------
    def _in_ball_given(self, z1):
        """P(||z|| <= T | z_1) = P(chi2_{d-1} <= (T^2 - z_1^2) / sigma^2)."""
        return _chi2_cdf((self.param**2 - z1**2) / self.sigma**2, self.df)

    def _out_ball_given(self, z1):
        return _chi2_sf((self.param**2 - z1**2) / self.sigma**2, self.df)

    def _ball_below(self, a):
        """P(z_1 < a, ||z|| <= T)."""
        z, w = _normal_nodes(0.0, self.sigma, -self.param, min(a, self.param))
        return float(w @ self._in_ball_given(z))

    def _threshold(self, mass, part):
        """a with P(z_1 < a, part) = mass, part = ball (True) or its complement (False)."""
        if mass <= 0:
            return -math.inf
        s, t = self.sigma, self.param
        if part:
            f = lambda a: self._ball_below(a) - mass  # noqa: E731
            lo, hi = max(-t, -_WIDTH * s), min(t, _WIDTH * s)
        else:
            f = lambda a: float(ndtr(a / s)) - self._ball_below(a) - mass  # noqa: E731
            lo, hi = -_WIDTH * s, _WIDTH * s
        if f(hi) < 0:
            return math.inf
        return _root(f, lo, hi, self.xtol)

    def _find_thresholds(self, m_in, m_out):
        """(a_in, a_out): P(z_1 < a_in, ball) = m_in and P(z_1 < a_out, outside) = m_out (r plays no part)."""
        return self._threshold(m_in, True) if m_in < self.ball_mass else math.inf, self._threshold(m_out, False)

    def _truncated(self, p_lower, q_target, radius):
        z, s, t, r = self.ball_mass, self.sigma, self.param, radius
        m_in = z * q_target
        a_in, a_out = self._thresholds(m_in, p_lower - m_in)
        nodes, weights = _normal_nodes(r, s, breaks=(-t, t, a_in, a_out))
        inside = np.where(nodes < a_in, self._in_ball_given(nodes), 0.0)
        outside = np.where(nodes < a_out, self._out_ball_given(nodes), 0.0)
        shifted = float(weights @ (inside + outside))
        ball_part = self._ball_below(a_in)
        p_mass = ball_part + float(ndtr(a_out / s)) - self._ball_below(a_out)
        # lam1 = exp(l(a_out)), lam1 + lam2 / Z = exp(l(a_in))
        ell = lambda a: (2 * r * a - r**2) / (2 * s**2)  # noqa: E731
        log_lam1 = ell(a_out) if a_out > -math.inf else -math.inf
        high, low = max(ell(a_in), log_lam1), min(ell(a_in), log_lam1)
        log_lam2 = math.log(z) + high + math.log(-math.expm1(low - high)) if high > low else -math.inf
        sign1 = 1 if a_out > -math.inf else 0
        return WorstCase(r, sign1, log_lam1, 1 if a_in > a_out else -1, log_lam2, p_mass, ball_part / z, shifted)

    # ---- scaled Q ------------------------------------------------------------------------
    def _nodes(self, shape: _Shape, center, scale, omega=None):
        """Quadrature nodes, weights and offsets for N(center e_1, scale^2 I), split at b and, given omega
        (and d - 1 < 16), at the zeros of the threshold omega - c(z_1)."""
        # graded towards b, where the threshold diverges logarithmically
        breaks = list(shape.b + shape.sign2 * scale * _GRADING) if shape.sign1 > 0 else []
        if omega is not None and self.df < _SMOOTH_DF:
            breaks += self._crossings(shape, center, scale, omega)
        z, w = _normal_nodes(center, scale, breaks=breaks)
        return w, *shape.offsets(z, self.sigma, self.kappa)

    def _integrate(self, nodes, sign2, scale, omega):
        w, active, c = nodes
        x = (omega - c) / scale**2
        if sign2 > 0:
            return float(w @ np.where(active, _chi2_cdf(x, self.df), 1.0))
        return float(w @ np.where(active, _chi2_sf(x, self.df), 0.0))

    def _mass(self, shape: _Shape, center, scale, omega):
        """Mass of the set (shape, omega) under N(center e_1, scale^2 I)."""
        return self._integrate(self._nodes(shape, center, scale, omega), shape.sign2, scale, omega)

    def _crossings(self, shape: _Shape, center, scale, omega):
        """Where the threshold omega - c(z_1) changes sign in the window.

        There the chi-square CDF has a (z_1 - z_0)^((d - 1) / 2) singularity that
        a panel break makes harmless; found on a grid of 64 points per scale
        (geometrically refined towards b) and polished by Illinois steps.
        """
        grid = np.linspace(center - _WIDTH * scale, center + _WIDTH * scale, int(64 * _WIDTH) + 1)
        if shape.sign1 > 0:
            grid = np.union1d(grid, shape.b - shape.sign2 * scale * 2.0 ** -np.arange(1, 40))
        active, c = shape.offsets(grid, self.sigma, self.kappa)
        g = np.where(active, omega - c, np.nan)
        i = np.flatnonzero(((g[:-1] > 0) != (g[1:] > 0)) & active[:-1] & active[1:])
        x0, x1, g0, g1 = grid[i], grid[i + 1], g[i], g[i + 1]
        for _ in range(6):
            x = x0 - g0 * (x1 - x0) / (g1 - g0)
            gx = omega - shape.offsets(x, self.sigma, self.kappa)[1]
            same = (gx > 0) == (g0 > 0)  # the root lies in [x, x1]
            x0, g0, x1, g1 = np.where(same, x, x0), np.where(same, gx, g0), np.where(same, x1, x), \
                np.where(same, g1 / 2, gx)
        return list(x0 - g0 * (x1 - x0) / (g1 - g0))

    def _omega(self, shape: _Shape, center, scale, target):
        """omega at which the set's mass under N(center e_1, scale^2 I) equals target.

        Brent's method on fixed panels, then (d - 1 < 16) secant steps on the
        mass with panels split at the threshold's zeros.
        """
        nodes = self._nodes(shape, center, scale)
        _, active, c = nodes
        if not active.any():
            return 0.0
        lo = float(c[active].min()) + scale**2 * self.chi2_low
        hi = float(c[active].max()) + scale**2 * self.chi2_high
        xtol = 1e-12 * scale**2 * max(1.0, self.df)
        f = lambda om: shape.sign2 * (self._integrate(nodes, shape.sign2, scale, om) - target)  # noqa: E731
        omega = _root(f, lo, hi, xtol)
        if self.df < _SMOOTH_DF and lo < omega < hi:
            omega = _secant(lambda om: self._mass(shape, center, scale, om) - target, omega, 1e-6 * scale**2, xtol)
        return omega

    def _scaled(self, p_lower, p_upper, q_target, sign2, a_np, radius):
        r, s, sq = radius, self.sigma, self.param
        reach = _WIDTH * s + 40 * s**2 / r  # beyond it, lam1 = exp(l(b)) changes no node's threshold
        b_low, b_high = -reach, r + reach
        if sign2 > 0:
            # lam1 = 0: omega from the Q bound, then its P mass p*
            free = _Shape(r, 0, 1, 0.0)
            omega = self._omega(free, 0.0, sq, q_target)
            p_star = self._mass(free, 0.0, s, omega)
            if p_lower <= p_star <= p_upper:
                return self._case(free, omega)
            if p_star < p_lower:  # lam1 > 0, Q(A) falls from above q_target (b -> -inf) to q_np (b = a_np)
                sign1, p_target, lo, hi, rising = 1, p_lower, b_low, a_np, False
            else:  # lam1 < 0, Q(A) rises with b
                sign1, p_target, lo, hi, rising = -1, p_upper, b_low, b_high, True
        else:  # lam1 > 0, Q(A) falls from q_np (b = a_np) towards the shell's Q mass
            sign1, p_target, lo, hi, rising = 1, p_lower, a_np, b_high, False

        def excess(b):
            shape = _Shape(r, sign1, sign2, b)
            q = self._mass(shape, 0.0, sq, self._omega(shape, 0.0, s, p_target)) - q_target
            return q if rising else -q

        shape = _Shape(r, sign1, sign2, _root(excess, lo, hi, self.xtol))
        case = self._case(shape, self._omega(shape, 0.0, s, p_target))
        solved = abs(case.q_mass - q_target) < 1e-9 and abs(case.p_mass - p_target) < 1e-9
        return case if solved else dataclasses.replace(case, solved=False)

    def _case(self, shape: _Shape, omega):
        r, s = shape.radius, self.sigma
        masses = [self._mass(shape, center, scale, omega) for center, scale in ((0.0, s), (0.0, self.param), (r, s))]
        log_lam1 = (2 * r * shape.b - r**2) / (2 * s**2) if shape.sign1 else -math.inf
        return WorstCase(r, shape.sign1, log_lam1, shape.sign2, self.kappa * omega - self.log_ratio, *masses)


#: Panel ends in the radial quantile u: 24 even panels, graded by factors of 4 to 5e-15 towards both ends.
_U_TAILS = 0.02 * 4.0 ** -np.arange(21.0, 0.0, -1)
_U_GRID = np.concatenate([[0.0], _U_TAILS, np.linspace(0.02, 0.98, 25), 1 - _U_TAILS[::-1], [1.0]])
_GL_X, _GL_W = np.polynomial.legendre.leggauss(10)
_GL_T, _GL_W = (_GL_X + 1) / 2, _GL_W / 2
#: Panel ends towards a support edge, where the level diverges logarithmically: distances 0.02 * 4^-j, j < 23.
_EDGE_GRADING = 0.02 * 4.0 ** -np.arange(23)
_EDGE_REACH = 40.0  # kappa |m - rho^2| beyond which exp(-kappa |m - rho^2|) no longer changes a level
#: ... and towards a turning point's kink, where an interval of the shifted mass appears with a square-root edge.
_KINK_GRADING = np.append(0.0, 0.02 * 4.0 ** -np.arange(12))
_ZONE, _SPREAD, _REFINEMENTS = 8.0, 2.0, 3  # the Beta CDF's rise, +-8 sd; its resolution, 2 sd per panel
_NARROW = 1e-11  # panels narrower in u (mass at most this) are never refined
_FAR = 1e12  # no level or edge lies beyond: a bracket stops growing there
_BISECTIONS = 64  # per-node bisections for the shifted mass's interval ends (2^-64 of the bracket)


def _warm_root(f, guess, width, xtol, lower=-math.inf, upper=math.inf):
    """Root of a decreasing f: a bracket grown geometrically from guess +- width (within [lower, upper], where f
    has the sign it has past the root, and within +-1e12), then Brent's method; the end of the bracket when the
    root lies beyond it."""
    guess = min(max(guess, lower), upper)
    lo, hi = max(guess - width, lower), min(guess + width, upper)
    f_lo, f_hi = f(lo), f(hi)
    while f_lo < 0 and lo > max(lower, -_FAR):
        lo, hi, f_hi = max(lo - 4 * (hi - lo), lower, -_FAR), lo, f_lo
        f_lo = f(lo)
    while f_hi > 0 and hi < min(upper, _FAR):
        lo, hi, f_lo = hi, min(hi + 4 * (hi - lo), upper, _FAR), f_hi
        f_hi = f(hi)
    if f_lo <= 0:
        return lo
    if f_hi >= 0:
        return hi
    return brentq(f, lo, hi, xtol=xtol, rtol=1e-15)


def _newton(value_slope, target, x, steps=6, tol=1e-13):
    """x with ``value(x) = target`` to tol by Newton's method from x (``value_slope(x) = (value, slope)``), or None
    when it does not get there within steps."""
    for _ in range(steps):
        value, slope = value_slope(x)
        if abs(value - target) < tol:
            return x
        x -= (value - target) / slope if slope else math.nan
        if not math.isfinite(x):
            return None
    return None


def _bisect(g, lo, hi):
    """Elementwise sign change of g on [lo, hi] (g < 0 below it, >= 0 above), by _BISECTIONS bisections."""
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        below = g(mid) < 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


@dataclass(frozen=True, eq=False)
class _Radial:
    """Quadrature nodes (rho^2) and weights in u, the CDF of the radial law ``rho^2 / (2 scale^2) ~
    Gamma((d - 2k)/2)``: len(_GL_T) Gauss-Legendre nodes on each panel between consecutive edges (values of u)."""

    rho2: np.ndarray
    w: np.ndarray
    edges: np.ndarray
    scale: float


@dataclass(frozen=True)
class GeneralizedCase:
    """The worst set at radius r for the generalized Gaussian P_k and its ball-truncated Q:
    ``A = {Lambda(z) > c_in, ||z|| <= T} u {Lambda(z) > c_out, ||z|| > T}``,
    ``Lambda(z) = h(||z - r e_1||) - h(||z||)``,
    ``h(t) = k ln t^2 + t^2 / (2 sigma'^2)`` (so ``p(z - r e_1) / p(z) = exp(-Lambda)``); NP has c_in = c_out."""

    radius: float
    c_in: float
    c_out: float
    p_mass: float
    q_mass: float
    shifted_mass: float
    solved: bool = True


@dataclass(frozen=True)
class ScaledCase:
    """The worst set at radius r for P_k and the scaled Q (P_k at sigma_q):
    ``A = {Lambda(z) > level + o(||z||^2)}``, Lambda as in :class:`GeneralizedCase` and the offset o set by the
    multipliers' signs and the edge m (:meth:`ScaledGeneralizedDSRSBound.offset`); sign2 = 0 is the NP set
    (o = 0).  ``solved`` is False when the root finding could not match the masses (the value is then not
    trusted)."""

    radius: float
    sign1: int
    sign2: int
    edge: float
    level: float
    p_mass: float
    q_mass: float
    shifted_mass: float
    solved: bool = True

    @property
    def shape(self):
        return self.sign1, self.sign2, self.edge


class _PolarBound:
    """The polar machinery that the DSRS bounds for the generalized Gaussian primary P_k share (density
    ~ ||z||^(-2k) exp(-||z||^2 / (2 sigma'^2)), sigma' = sigma sqrt(d / (d - 2k));
    :class:`rsscale.noise.GeneralizedGaussian`; Li et al. 2022, Sec. 4 and App. E; Zhang et al., NeurIPS 2020,
    for P_k's NP radius).

    The ratio p(z - r e_1) / p(z) = exp(-Lambda(z)) depends on ||z|| and ||z - r e_1||, and the worst sets are
    ``A = {Lambda(z) > c(||z||^2)}`` for a level function c of the radius alone, so every set is described in polar
    coordinates: for ``rho = ||z||``, ``Lambda > c`` iff ``||z - r e_1||^2 > rho^2 + D(rho; c)`` with
    ``k ln(1 + D / rho^2) + D / (2 sigma'^2) = c`` (D = 2 sigma'^2 k (W(e^y) - x), x = rho^2 / (2 sigma'^2 k),
    y = ln x + x + c / k, W the Lambert function: scipy's ``wrightomega``; one Newton step polishes it), iff
    ``cos(z, e_1) < (r^2 - D) / (2 r rho)``.  The cosine has the law 2 Beta((d-1)/2, (d-1)/2) - 1 independently
    of rho, and ``rho^2 / (2 s^2) ~ Gamma((d - 2k)/2)`` under P_k (s = sigma') and under P_k at any other scale
    s, so every mass is a 1-D integral over a radial law of a Beta CDF, computed by Gauss-Legendre panels in the
    radial quantile u (graded towards u = 0 and 1, split at the set's breaks and at the kinks of the integrand,
    and refined where a threshold sweeps across the Beta CDF's rise, a near step of width ~ 1 / sqrt(d) at large
    d).  A level c with a given mass is found by Newton's method (d mass / dc is the same integral with the Beta
    density), falling back to Brent's method.

    The shifted mass ``P(A - r e_1)`` is the same integral for y = z - r e_1: with x = ||y||^2,
    ``y + r e_1 in A`` iff ``w = ||y + r e_1||^2 = x + r^2 + 2 r sqrt(x) cos(y, e_1)`` lies in the sublevel set
    ``{w : phi(w) < h(x)}`` of ``phi = h + c`` (h(t) written in w = t^2), a union of intervals, one on each
    piece of the domain where phi is monotone; each interval of w is an interval of cos(y, e_1).

    NP and DSRS radii come from the same Lipschitz walk (``S > 1/2`` on ``[r, r + (S(r) - 1/2) / L)``) with L the
    density of z_1 at 0, ``Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) E[1 / rho]``, finite for d - 2k > 1; no
    monotonicity of S in r is assumed.
    """

    secondary: str

    def __init__(self, sigma: float, dim: int, k: float):
        self.sigma, self.dim, self.k = float(sigma), int(dim), float(k)
        nu = self.dim - 2 * self.k
        self.scale = self.sigma * math.sqrt(self.dim / nu)
        self.precision = 1 / self.scale**2  # h(w) = k ln w + precision w / 2
        self.shape, self.beta = nu / 2, (self.dim - 1) / 2
        self.everywhere = self._radial(0.0, 1.0)
        log_cos_density = gammaln(self.dim / 2) - gammaln(self.beta) - 0.5 * math.log(math.pi)
        log_inverse_rho = gammaln(self.shape - 0.5) - gammaln(self.shape) - 0.5 * math.log(2) - math.log(self.scale)
        self.lipschitz = math.exp(log_cos_density + log_inverse_rho)
        self.xtol = 1e-13
        self._warm = {}  # root-finding warm starts only: the roots themselves do not depend on them
        self.np_radius = functools.lru_cache(maxsize=1024)(self._np_radius)
        self.radius = functools.lru_cache(maxsize=4096)(self._radius)  # counts repeat across inputs

    # ---- geometry ------------------------------------------------------------------------
    def _radial(self, lo: float, hi: float, breaks=(), scale: float | None = None) -> _Radial:
        """Composite Gauss-Legendre in the radial quantile u on [lo, hi], panels ending at _U_GRID and at breaks."""
        edges = np.unique(np.clip(np.concatenate([_U_GRID, [lo, hi], np.asarray(breaks, dtype=float)]), lo, hi))
        scale = self.scale if scale is None else scale
        rho2, w = self._panels(edges[:-1], edges[1:], scale)
        return _Radial(rho2.ravel(), w.ravel(), edges, scale)

    def _panels(self, starts, ends, scale):
        """rho^2 and weights of the nodes of the panels [starts, ends] in u (rows: panels)."""
        width = (ends - starts)[:, None]
        u = starts[:, None] + width * _GL_T
        t = np.where(u < 0.5, gammaincinv(self.shape, np.minimum(u, 0.5)),
                     gammainccinv(self.shape, np.minimum(1 - u, 0.5)))
        lost = ~((t > 0) & (t < np.inf))  # nodes of a panel within rounding of u = 0 or 1: weight 0
        return 2 * scale**2 * np.where(lost, self.shape, t), np.where(lost, 0.0, width * _GL_W)

    def _with_breaks(self, nodes: _Radial, breaks) -> _Radial:
        """The nodes with their panels cut at breaks (only the cut panels' nodes are computed afresh)."""
        old, breaks = nodes.edges, np.asarray(breaks, dtype=float)
        edges = np.union1d(old, np.clip(breaks[np.isfinite(breaks)], old[0], old[-1]))
        fresh = ~(np.isin(edges[:-1], old) & np.isin(edges[1:], old))
        rho2, w = np.empty((len(edges) - 1, len(_GL_T))), np.empty((len(edges) - 1, len(_GL_T)))
        kept = np.searchsorted(old, edges[:-1][~fresh])
        rho2[~fresh], w[~fresh] = nodes.rho2.reshape(-1, len(_GL_T))[kept], nodes.w.reshape(-1, len(_GL_T))[kept]
        rho2[fresh], w[fresh] = self._panels(edges[:-1][fresh], edges[1:][fresh], nodes.scale)
        return _Radial(rho2.ravel(), w.ravel(), edges, nodes.scale)

    def _u(self, rho2, scale: float | None = None) -> float:
        return float(gammainc(self.shape, rho2 / (2 * (self.scale if scale is None else scale) ** 2)))

    def gap(self, rho2, c):
        """D(rho; c) with ``k ln(1 + D / rho^2) + D / (2 sigma'^2) = c`` (-rho^2 at c = -inf, inf at c = inf);
        c a number or an array like rho2."""
        rho2 = np.asarray(rho2, dtype=float)
        c = np.broadcast_to(np.asarray(c, dtype=float), rho2.shape)
        finite = np.isfinite(c)
        c_finite = np.where(finite, c, 0.0)
        two_s2 = 2 * self.scale**2
        if self.k == 0:
            gap = two_s2 * c_finite
        else:
            x = rho2 / (two_s2 * self.k)
            gap = two_s2 * self.k * (wrightomega(np.log(x) + x + c_finite / self.k) - x)
            gap = np.maximum(gap, -rho2 * (1 - 1e-16))
            residual = self.k * np.log1p(gap / rho2) + gap / two_s2 - c_finite
            polished = gap - residual / (self.k / (rho2 + gap) + 1 / two_s2)
            gap = np.where(np.isfinite(polished) & (polished > -rho2), polished, gap)
        return np.where(finite, gap, np.where(c > 0, np.inf, -rho2))

    def _inverse(self, c):
        """x -> the w with h(w) = h(x) - c, i.e. ``x + D(sqrt(x); -c)``: where phi = h + c crosses h(x)."""
        return lambda x: x + self.gap(x, -c)

    def _cos_cdf(self, tau):
        """P(cos(z, e_1) < tau)."""
        return betainc(self.beta, self.beta, np.clip((1 + tau) / 2, 0.0, 1.0))

    def _cos_pdf(self, tau):
        """The density of cos(z, e_1) at tau: ``((1 - tau^2) / 4)^(beta - 1) / (2 B(beta, beta))``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log = (self.beta - 1) * np.log(np.maximum(1 - tau**2, 0.0) / 4) - math.log(2) - betaln(self.beta, self.beta)
        return np.where(np.abs(tau) < 1, np.exp(log), 0.0)

    def _saturations(self, rho2, taus, scale: float | None = None):
        """Radial quantiles u where some ``tau(rho^2)`` (a function returning a stack of cosine thresholds) crosses
        +-1: there the Beta CDF saturates with a (1 - x)^((d-1)/2) kink, which a panel break makes harmless.
        Only for d < 16 (beyond, the kink is too smooth to matter); found between sorted nodes, 50 bisections."""
        if self.dim >= _SMOOTH_DF or len(rho2) < 2:
            return []
        rho2 = np.sort(rho2)
        with np.errstate(invalid="ignore"):
            values = np.atleast_2d(taus(rho2))
        found = []
        for side in (-1.0, 1.0):
            sign = np.nan_to_num(values - side) > 0
            rows, cols = np.nonzero(sign[:, :-1] != sign[:, 1:])
            lo, hi = rho2[cols], rho2[cols + 1]
            lo_sign = sign[rows, cols]
            for _ in range(50):
                mid = (lo + hi) / 2
                with np.errstate(invalid="ignore"):
                    mid_sign = np.nan_to_num(np.atleast_2d(taus(mid))[rows, np.arange(len(mid))] - side) > 0
                lo, hi = np.where(mid_sign == lo_sign, mid, lo), np.where(mid_sign == lo_sign, hi, mid)
            found += [self._u(x, scale) for x in (lo + hi) / 2]
        return found

    def _resolve(self, nodes: _Radial, taus):
        """The nodes split at the Beta CDF's kinks (d < 16) and refined where some threshold sweeps across the
        CDF's rise, ``|tau| < 8 / sqrt(d)`` (cos(z, e_1) has standard deviation 1 / sqrt(d)), in a panel by more
        than 2 / sqrt(d) (panels of mass below 1e-11 excepted): at large d the CDF is nearly a step, which a
        threshold pinned to a fixed ||z + r e_1|| crosses within a small part of a panel.  Returns the nodes and
        the thresholds there (one row each)."""
        breaks = self._saturations(nodes.rho2, taus, nodes.scale)
        if breaks:
            nodes = self._with_breaks(nodes, breaks)
        for _ in range(_REFINEMENTS):
            with np.errstate(invalid="ignore"):
                values = np.atleast_2d(taus(nodes.rho2))
            splits = self._splits(nodes, values)
            if not splits:
                return nodes, values
            nodes = self._with_breaks(nodes, splits)
        with np.errstate(invalid="ignore"):
            return nodes, np.atleast_2d(taus(nodes.rho2))

    def _splits(self, nodes: _Radial, values):
        """Breaks that cut each panel whose thresholds sweep across the Beta CDF's rise into pieces of at most
        2 / sqrt(d) each (at most 16 per round)."""
        if not len(nodes.w):
            return []
        sd = 1 / math.sqrt(self.dim)
        tau = np.clip(np.nan_to_num(values, nan=0.0), -1.0, 1.0).reshape(len(values), -1, len(_GL_T))
        low, high = tau.min(axis=2), tau.max(axis=2)
        sweeps = (low < _ZONE * sd) & (high > -_ZONE * sd) & (np.diff(nodes.edges) > _NARROW)
        spread = np.where(sweeps, high - low, 0.0).max(axis=0)
        pieces = np.minimum(np.ceil(spread / (_SPREAD * sd)), 16).astype(int)
        return [b for i in np.flatnonzero(pieces > 1)
                for b in np.linspace(nodes.edges[i], nodes.edges[i + 1], pieces[i] + 1)[1:-1]]

    def _mass_rates(self, nodes: _Radial, radius, c):
        """(mass, rho^2, rates) of {Lambda > c(rho^2)} under the radial law and part of it that the nodes cover (c a
        number or a function of rho^2): raising c by dc at the nodes changes the mass by -sum(rates dc), the rate
        being ``w pdf(tau) (dD/dc) / (2 r rho)``, ``dD/dc = 1 / (k / (rho^2 + D) + 1 / (2 sigma'^2))``."""
        if not len(nodes.w):
            return 0.0, nodes.rho2, nodes.w
        level = c if callable(c) else lambda x: c
        tau = lambda x: (radius**2 - self.gap(x, level(x))) / (2 * radius * np.sqrt(x))  # noqa: E731
        nodes, values = self._resolve(nodes, tau)
        x, tau = nodes.rho2, values[0]
        root = 2 * radius * np.sqrt(x)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            rates = nodes.w * self._cos_pdf(tau) / ((self.k / (x + radius**2 - root * tau) + self.precision / 2) * root)
        return float(nodes.w @ self._cos_cdf(tau)), x, np.where(np.isfinite(rates), rates, 0.0)

    def _part_mass(self, nodes: _Radial, radius, c) -> float:
        """Mass of {Lambda > c(rho^2)} under the radial law and part of it that the nodes cover."""
        return self._mass_rates(nodes, radius, c)[0]

    def _mass_slope(self, nodes: _Radial, radius, c):
        """(mass, d mass / dc) of {Lambda > c + const}: :meth:`_mass_rates`."""
        mass, _, rates = self._mass_rates(nodes, radius, c)
        return mass, -float(rates.sum())

    def _level(self, mass_at, target, total, key):
        """The c with mass target, ``mass_at(c) = (mass, d mass / dc)`` falling from total at c = -inf to 0 at
        c = inf: Newton's method from the last level found under key, else Brent's method on a bracket grown from
        it."""
        if target <= 0:
            return math.inf
        if target >= total - 1e-13:  # the whole part (its mass is total at c = -inf only)
            return -math.inf
        guess = self._warm.get(key, 0.0)
        level = _newton(mass_at, target, guess)
        if level is None:
            level = _warm_root(lambda c: mass_at(c)[0] - target, guess, 1e-3 * (1.0 + abs(guess)), self.xtol)
        if abs(level) < _FAR:
            self._warm[key] = level
        return level

    def _shifted_mass(self, radius, pieces, kinks=()):
        """``P(A - r e_1)``: for y ~ P_k with x = ||y||^2, the P(cos(y, e_1) in the cosines whose
        ``w = x + r^2 + 2 r sqrt(x) cos`` lies in {phi < h(x)}``, integrated over x.  ``pieces``: (start, end,
        increasing, crossing) for the pieces of w where phi is monotone, ``crossing(x)`` the w where phi = h(x) (any
        value past an end when phi stays on one side); ``kinks``: radial quantiles to split the panels at (where an
        interval end meets a piece end, or graded towards such a point)."""
        r = radius

        def taus(x):
            ends = []
            for start, end, increasing, crossing in pieces:
                v = np.clip(crossing(x), start, end)
                ends += [np.full_like(x, start), v] if increasing else [v, np.full_like(x, end)]
            with np.errstate(over="ignore", invalid="ignore"):
                return np.stack([(np.minimum(e, 1e300) - x - r**2) / (2 * r * np.sqrt(x)) for e in ends])

        nodes, values = self._resolve(self._with_breaks(self.everywhere, kinks), taus)
        cdf = self._cos_cdf(values)
        return float(nodes.w @ np.maximum(cdf[1::2] - cdf[::2], 0.0).sum(axis=0))

    # ---- the NP set and the walk -----------------------------------------------------------
    def _np_level(self, p_lower, radius):
        """The level c of the Neyman-Pearson set {Lambda > c} with P mass pL."""
        return self._level(lambda c: self._mass_slope(self.everywhere, radius, c), p_lower, 1.0, "np")

    def _walk(self, value, start: float) -> float:
        """Largest r reached from ``start`` by steps ``(value(r) - 1/2 - MARGIN) / L`` (value > 1/2 on [start, r]);
        a nan value (an unsolved worst case) stops it."""
        radius = start
        for _ in range(_WALK_STEPS):
            step = (value(radius) - 0.5 - MARGIN) / self.lipschitz
            if not step > _WALK_TOL * self.sigma:
                break
            radius += step
        return radius

    def _np_radius(self, p_lower) -> float:
        """The plain Neyman-Pearson radius of P_k: S_NP > 1/2 on [0, r] (0 when pL <= 1/2)."""
        if p_lower <= 0.5:
            return 0.0
        if p_lower >= 1:
            return math.inf
        return self._walk(lambda r: self.np_case(p_lower, r).shifted_mass if r > 0 else p_lower, 0.0)

    def _radius(self, p_lower, p_upper, q_lower, q_upper) -> float:
        """The DSRS radius: the walk continued from the NP radius (S >= S_NP > 1/2 below it); never below it."""
        r_np = self.np_radius(p_lower)
        if not (0 < r_np < math.inf) or not self.consistent(p_lower, p_upper, q_lower, q_upper):
            return r_np

        def value(r):
            case = self.worst_case(p_lower, p_upper, q_lower, q_upper, r)
            return case.shifted_mass if case.solved else math.nan

        return self._walk(value, r_np)


class GeneralizedDSRSBound(_PolarBound):
    """DSRS for the generalized Gaussian primary P_k and Q = P_k on the ball ||z|| <= T (:class:`_PolarBound`).

    The level is c_in inside the ball and c_out outside; for the shifted mass phi increases on [0, T^2] and on
    [T^2, inf), crossing h(x) at ``v^2 = x + D(sqrt(x); -c)``, so ``y in A - r e_1`` iff
    ``||y + r e_1|| < v_in(||y||)`` inside the ball or ``T < ||y + r e_1|| < v_out(||y||)``.

    As for the Gaussian (:class:`DSRSBound`), the truncated Q splits the problem: the worst set is the NP set
    (P mass pL) when its Q mass meets [qL, qU], else its ball part has P mass Z q_B (q_B the binding bound) and
    the outside part max(pL - Z q_B, 0); here each part's level c is found for every r.  k = 0 gives the
    Gaussian (tests compare with :class:`DSRSBound`), as does :class:`ScaledGeneralizedDSRSBound`'s.
    """

    secondary = "truncated"

    def __init__(self, sigma: float, dim: int, k: float, truncation: float = math.inf):
        super().__init__(sigma, dim, k)
        self.param = float(truncation)
        self.ball_mass = float(gammainc(self.shape, 0.5 * (self.param / self.scale) ** 2))
        self.inside = self._radial(0.0, self.ball_mass)
        self.outside = self._radial(self.ball_mass, 1.0)

    def _part_level(self, nodes: _Radial, radius, mass, key):
        """The c with ``P(Lambda > c, part) = mass``."""
        total = float(nodes.w.sum())
        return self._level(lambda c: self._mass_slope(nodes, radius, c), mass, total, key)

    def shifted_mass(self, radius, c_in, c_out) -> float:
        """``P(A - r e_1)`` for the set with levels c_in (ball) and c_out (outside)."""
        t2 = self.param**2
        pieces = [(0.0, t2, True, self._inverse(c_in)), (t2, math.inf, True, self._inverse(c_out))]
        kinks = [self._u(t2 + float(self.gap(np.array([t2]), c)[0])) for c in (c_in, c_out)
                 if math.isfinite(t2) and math.isfinite(c)]
        return self._shifted_mass(radius, pieces, kinks)

    # ---- worst cases and radii -----------------------------------------------------------
    def np_case(self, p_lower, radius, shifted: bool = True) -> GeneralizedCase:
        """The Neyman-Pearson set {Lambda > c} with P mass pL, at radius r (shifted mass nan unless asked)."""
        c = self._np_level(p_lower, radius)
        q_mass = self._part_mass(self.inside, radius, c) / self.ball_mass
        return GeneralizedCase(radius, c, c, p_lower, q_mass, self.shifted_mass(radius, c, c) if shifted else math.nan)

    def consistent(self, p_lower, p_upper, q_lower, q_upper) -> bool:
        """Whether some set has P mass in [pL, pU] and Q mass in [qL, qU]: ``Z Q <= P <= Z Q + 1 - Z``."""
        z = self.ball_mass
        return z * q_lower <= p_upper and p_lower <= z * q_upper + 1 - z

    def worst_case(self, p_lower, p_upper, q_lower, q_upper, radius: float) -> GeneralizedCase:
        """The minimizing set at ``||delta|| = radius`` (consistent bounds, pL in (0, 1), radius > 0)."""
        case = self.np_case(p_lower, radius, shifted=False)
        if q_lower - 1e-12 <= case.q_mass <= q_upper + 1e-12:
            return dataclasses.replace(case, shifted_mass=self.shifted_mass(radius, case.c_in, case.c_out))
        z = self.ball_mass
        m_in = z * (q_lower if case.q_mass < q_lower else q_upper)
        m_out = max(p_lower - m_in, 0.0)
        c_in = self._part_level(self.inside, radius, m_in, "inside")
        c_out = self._part_level(self.outside, radius, m_out, "outside")
        return GeneralizedCase(radius, c_in, c_out, m_in + m_out, m_in / z, self.shifted_mass(radius, c_in, c_out))


class ScaledGeneralizedDSRSBound(_PolarBound):
    """DSRS for the generalized Gaussian primary P_k and Q = P_k at the smaller scale sigma_q (the paper's CIFAR-10
    setting: k = 1530 = d/2 - 6 at d = 3072, sigma_q = 0.8 sigma; :class:`_PolarBound` for the geometry).

    Both densities carry ||z||^(-2k), so ``q / p = R(rho^2) = (s / s_q)^(d - 2k) exp(-kappa rho^2)``,
    ``kappa = (1/s_q^2 - 1/s^2) / 2`` (s = sigma', s_q = sigma_q sqrt(d / (d - 2k))), and the generalized
    Neyman-Pearson set ``{p(z - r e_1) < lam1 p(z) + lam2 q(z)}`` is ``{Lambda > c(rho^2)}`` with
    ``c = -ln(lam1 + lam2 R)`` (inf where that is <= 0).  Written ``c = level + o(rho^2)``: for lam1 = 0,
    ``o = kappa rho^2``; else, with ``|lam1| = exp(-level)`` and the edge m where ``|lam2| R(m) = |lam1|``,
    ``o = -ln(1 + e^t)`` (both > 0), ``-ln(e^t - 1)`` (lam1 < 0 < lam2: the ball rho^2 < m) or ``-ln(1 - e^t)``
    (lam2 < 0 < lam1: the shell rho^2 > m), ``t = kappa (m - rho^2)``.  The case analysis is the Gaussian one
    (:class:`DSRSBound`): NP when its Q mass meets [qL, qU]; else the binding Q bound q_B fixes lam2's sign, the
    set with lam1 = 0 and Q mass q_B when its P mass lies in [pL, pU], else lam1 > 0 with P mass pL or lam1 < 0
    with pU.  (m, level) matching both masses comes from Newton's method started at the last solution (the walk
    moves r a little at a time; the masses' derivatives in m and in the level are integrals of the same kind),
    else from nested roots: the level matching the P mass for each m, and m matching the Q mass, bracketed
    between the NP set (m -> -inf) or the ball / shell of that P mass and the lam1 = 0 set (m -> inf).  Any
    solution is the minimizer (the Lagrangian bound of the generalized NP lemma holds for every set of this form
    whose masses meet the bounds its multipliers' signs name).  The masses' quadrature is graded towards the
    support's edge m, where o diverges logarithmically.

    The shifted mass needs phi = h + c in w = rho^2: phi increases for lam2 > 0 (lam1 + lam2 R falls with rho, and
    so does rho^(-2k) e^(-rho^2 / (2 s^2))); for lam2 < 0, phi' has the sign of the convex
    ``chi(w) = kappa (w - m) - ln(1 + kappa w / (k + w / (2 s^2)))``, so phi rises, falls and rises again (at most),
    and each piece's crossing of h(x) is found per node by bisection.
    """

    secondary = "scaled"

    def __init__(self, sigma: float, dim: int, k: float, sigma_q: float):
        super().__init__(sigma, dim, k)
        self.param = float(sigma_q)
        self.q_scale = self.scale * self.param / self.sigma
        self.kappa = 0.5 * (1 / self.q_scale**2 - 1 / self.scale**2)
        self.q_everywhere = self._radial(0.0, 1.0, scale=self.q_scale)

    # ---- the set's level function --------------------------------------------------------------
    def offset(self, sign1: int, sign2: int, edge: float, rho2):
        """o(rho^2), with ``c = level + o`` (inf off the set's support; the class docstring)."""
        rho2 = np.asarray(rho2, dtype=float)
        if sign2 == 0:
            return np.zeros_like(rho2)
        if sign1 == 0:
            return self.kappa * rho2
        t = self.kappa * (edge - rho2)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if sign1 > 0 and sign2 > 0:
                return -np.logaddexp(0.0, t)
            if sign2 > 0:
                return np.where(t > 0, -t - np.log(-np.expm1(-t)), np.inf)
            return np.where(t < 0, -np.log(-np.expm1(t)), np.inf)

    def _levels(self, shape, level):
        """rho^2 -> c(rho^2) = level + o(rho^2)."""
        def c(rho2):
            o = self.offset(*shape, rho2)
            return np.where(np.isposinf(o), np.inf, level + o)
        return c

    def _support(self, shape, scale):
        """Nodes of the radial law at ``scale`` on the set's support (rho^2 < m for lam1 < 0, rho^2 > m for
        lam2 < 0), graded towards its edge m."""
        sign1, sign2, edge = shape
        if (sign1 >= 0 and sign2 >= 0) or (sign2 < 0 and edge <= 0):
            return self.everywhere if scale == self.scale else self.q_everywhere
        u = self._u(max(edge, 0.0), scale)
        if sign1 < 0:
            return self._radial(0.0, u, u - _EDGE_GRADING, scale)
        return self._radial(u, 1.0, u + _EDGE_GRADING, scale)

    def _masses(self, shape, level, radius):
        """(P(A), Q(A)) of the set (shape, level)."""
        c = self._levels(shape, level)
        return tuple(self._part_mass(self._support(shape, s), radius, c) for s in (self.scale, self.q_scale))

    def _fit_level(self, shape, radius, target, scale, key):
        """The level at which the set's mass under the radial law at ``scale`` is target."""
        nodes = self._support(shape, scale)
        mass_at = lambda level: self._mass_slope(nodes, radius, self._levels(shape, level))  # noqa: E731
        return self._level(mass_at, target, float(nodes.w.sum()), key)

    # ---- the shifted mass ------------------------------------------------------------------------
    def _critical(self, edge):
        """The zeros of chi (class docstring) on w > max(m, 0): where phi turns (chi is convex)."""
        k, a, kap = self.k, self.precision / 2, self.kappa
        start = max(edge, 0.0)

        def chi(w):
            ratio = kap / (a + k / w) if w > 0 else (0.0 if k else kap / a)
            return kap * (w - edge) - math.log1p(ratio)

        # chi' = 0 iff a (a + kappa) w^2 + k (2a + kappa) w + k^2 - k = 0 (a positive root only for k < 1)
        b, c = k * (2 * a + kap), k * k - k
        root = (-b + math.sqrt(b * b - 4 * a * (a + kap) * c)) / (2 * a * (a + kap)) if c < 0 else 0.0
        lowest = max(start, root)
        if chi(lowest) >= 0:
            return []
        far = edge + (math.log1p(kap / a) + 1) / kap  # chi > 0 beyond it
        left = [brentq(chi, start, lowest, xtol=1e-14 * lowest)] if chi(start) > 0 else []
        return left + [brentq(chi, lowest, far, xtol=1e-14 * far)]

    def _pieces(self, shape, level):
        """The monotone pieces of phi(w) = h(w) + c(w) as (start, end, increasing, crossing), and their finite
        turning points."""
        sign1, sign2, edge = shape
        if sign2 == 0 or level == -math.inf:  # a constant level on the support
            start, end = (max(edge, 0.0), math.inf) if sign2 < 0 else (0.0, edge if sign1 < 0 else math.inf)
            return [(start, end, True, self._inverse(level))], []
        c = self._levels(shape, level)
        k, a = self.k, self.precision / 2
        floor = min(float(self.offset(*shape, 0.0)), 0.0)  # o >= floor: phi >= h + level + floor

        def crossing(x, start, end, increasing):
            excess = lambda w: (k * np.log(w / x) if k else 0.0) + a * (w - x) + c(w)  # noqa: E731
            high = np.minimum(end, self._inverse(level + floor)(x)) if increasing else np.full_like(x, end)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return _bisect(excess if increasing else lambda w: -excess(w), np.full_like(x, start), high)

        if sign2 > 0:
            turns, ends = [], [0.0, edge if sign1 < 0 else math.inf]
        else:
            turns = self._critical(edge)
            ends = [max(edge, 0.0), *turns, math.inf]
        pieces = []
        for i, (start, end) in enumerate(zip(ends[:-1], ends[1:], strict=True)):
            increasing = (len(ends) - 2 - i) % 2 == 0  # the last piece rises, the others alternate
            pieces.append((start, end, increasing, functools.partial(crossing, start=start, end=end,
                                                                     increasing=increasing)))
        return pieces, turns

    def shifted_mass(self, shape, level, radius) -> float:
        """``P(A - r e_1)`` of the set (shape, level) (:meth:`_PolarBound._shifted_mass`)."""
        pieces, turns = self._pieces(shape, level)
        c = self._levels(shape, level)
        kinks = [self._u(w + float(self.gap(np.array([w]), c(np.array([w])))[0])) for w in turns]
        graded = [u + side * g for u in kinks for side in (-1, 1) for g in _KINK_GRADING]
        return self._shifted_mass(radius, pieces, graded)

    # ---- worst cases -------------------------------------------------------------------------------
    def np_case(self, p_lower, radius, shifted: bool = True) -> ScaledCase:
        """The Neyman-Pearson set {Lambda > c} with P mass pL, at radius r (shifted mass nan unless asked)."""
        c = self._np_level(p_lower, radius)
        q_mass = self._part_mass(self.q_everywhere, radius, c)
        shape = (1, 0, math.nan)
        return ScaledCase(radius, *shape, c, p_lower, q_mass,
                          self.shifted_mass(shape, c, radius) if shifted else math.nan)

    def consistent(self, p_lower, p_upper, q_lower, q_upper) -> bool:
        """Whether some set has P mass in [pL, pU] and Q mass in [qL, qU]: the reachable (P, Q) lie between the
        balls ||z|| <= t and the shells ||z|| > t (the sets ordered by q / p)."""
        ratio = (self.scale / self.q_scale) ** 2
        ball_q = gammainc(self.shape, gammaincinv(self.shape, p_upper) * ratio)
        shell_q = gammaincc(self.shape, gammainccinv(self.shape, p_lower) * ratio)
        return bool(q_lower <= ball_q and shell_q <= q_upper)

    def worst_case(self, p_lower, p_upper, q_lower, q_upper, radius: float) -> ScaledCase:
        """The minimizing set at ``||delta|| = radius`` (consistent bounds, pL in (0, 1), radius > 0)."""
        case = self.np_case(p_lower, radius, shifted=False)
        if q_lower - 1e-12 <= case.q_mass <= q_upper + 1e-12:
            return self._finish(case.shape, case.level, radius, p_lower, case.q_mass)
        sign2, q_target = (1, q_lower) if case.q_mass < q_lower else (-1, q_upper)
        if sign2 > 0:
            free = (0, 1, math.nan)
            level = self._fit_level(free, radius, q_target, self.q_scale, "free")
            p_star = self._part_mass(self.everywhere, radius, self._levels(free, level))
            if p_lower - 1e-12 <= p_star <= p_upper + 1e-12:  # within rounding: a slightly wider P interval
                return self._finish(free, level, radius, p_star, q_target)
            sign1, p_target = (1, p_lower) if p_star < p_lower else (-1, p_upper)
        else:
            sign1, p_target = 1, p_lower
        edge, level, p_mass, q_mass = self._edge(sign1, sign2, p_target, q_target, radius)
        solved = abs(p_mass - p_target) < 1e-9 and abs(q_mass - q_target) < 1e-9
        return self._finish((sign1, sign2, edge), level, radius, p_mass, q_mass, solved)

    def _edge(self, sign1, sign2, p_target, q_target, radius):
        """(m, level, P mass, Q mass) of the set with P mass p_target and Q mass q_target: Newton's method from the
        last solution, else nested roots, m between the NP set (m -> -inf: lam1 > 0 dominates) or the ball / shell
        with that P mass and the lam1 = 0 set (m -> inf)."""
        reach = _EDGE_REACH / self.kappa
        lower = 2 * self.scale**2 * gammaincinv(self.shape, p_target) if sign1 < 0 else -reach
        upper = 2 * self.scale**2 * gammainccinv(self.shape, p_target) if sign2 < 0 else \
            float(self.everywhere.rho2.max()) + reach

        def excess(edge):  # decreasing in m: Q rises with m when both multipliers are positive, else falls
            shape = (sign1, sign2, edge)
            level = self._fit_level(shape, radius, p_target, self.scale, "edge")
            q_mass = self._part_mass(self._support(shape, self.q_scale), radius, self._levels(shape, level))
            return -sign1 * sign2 * (q_mass - q_target)

        key = ("m", sign1, sign2)
        solution = self._newton_pair(sign1, sign2, p_target, q_target, radius, lower, upper, self._warm.get(key))
        if solution is None:
            edge = _warm_root(excess, (lower + upper) / 2 if sign1 < 0 or sign2 < 0 else 0.0, 0.05 / self.kappa,
                              1e-12 / self.kappa, lower, upper)
            level = self._fit_level((sign1, sign2, edge), radius, p_target, self.scale, "edge")
            solution = edge, level, *self._masses((sign1, sign2, edge), level, radius)
        self._warm[key] = solution[:2]
        return solution

    def _newton_pair(self, sign1, sign2, p_target, q_target, radius, lower, upper, start):
        """(m, level, P mass, Q mass) matching both masses to 1e-11 by Newton's method from start (the last
        (m, level)), each step halved until m stays in [lower, upper] and the larger mass error falls; None when
        that fails or takes more than 12 steps."""
        if start is None or not all(map(math.isfinite, start)):
            return None
        point = np.array(start, dtype=float)
        error, jacobian = self._residual(sign1, sign2, point, radius, p_target, q_target)
        for _ in range(12):
            if np.abs(error).max() < 1e-11:
                return float(point[0]), float(point[1]), p_target + float(error[0]), q_target + float(error[1])
            try:
                step = np.linalg.solve(jacobian, error)
            except np.linalg.LinAlgError:
                return None
            for shrink in 0.5 ** np.arange(8):
                trial = point - shrink * step
                if not (lower <= trial[0] <= upper and np.isfinite(trial).all()):
                    continue
                trial_error, trial_jacobian = self._residual(sign1, sign2, trial, radius, p_target, q_target)
                if np.abs(trial_error).max() < np.abs(error).max():
                    break
            else:
                return None
            point, error, jacobian = trial, trial_error, trial_jacobian
        return None

    def _residual(self, sign1, sign2, point, radius, p_target, q_target):
        """The mass errors (P - p_target, Q - q_target) at point = (m, level) and their Jacobian in (m, level)."""
        shape = (sign1, sign2, float(point[0]))
        rows = [self._slopes(shape, float(point[1]), radius, scale) for scale in (self.scale, self.q_scale)]
        error = np.array([rows[0][0] - p_target, rows[1][0] - q_target])
        return error, np.array([[row[2], row[1]] for row in rows])

    def _slopes(self, shape, level, radius, scale):
        """The set's mass under the radial law at scale and its derivatives in the level and in m (``dc/dm =
        do/dm``; the support's edge adds nothing: the set's mass vanishes there): :meth:`_mass_rates`."""
        mass, x, rates = self._mass_rates(self._support(shape, scale), radius, self._levels(shape, level))
        return mass, -float(rates.sum()), -float(rates @ self._edge_slope(shape, x))

    def _edge_slope(self, shape, rho2):
        """do/dm (the class docstring's offsets, lam1 != 0; 0 off the support)."""
        sign1, sign2, edge = shape
        t = self.kappa * (edge - rho2)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if sign1 > 0 and sign2 > 0:
                slope = -self.kappa * expit(t)
            elif sign2 > 0:
                slope = -self.kappa / -np.expm1(-t)
            else:
                slope = self.kappa / np.expm1(-t)
        return np.where(np.isfinite(slope), slope, 0.0)

    def _finish(self, shape, level, radius, p_mass, q_mass, solved: bool = True) -> ScaledCase:
        """The case (masses as found) with its shifted mass."""
        return ScaledCase(radius, *shape, level, p_mass, q_mass, self.shifted_mass(shape, level, radius), solved)


def _check_k(k) -> float:
    try:
        number = math.nan if isinstance(k, bool) else float(k)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    return number


def _secondary_param(sigma: float, secondary: str, truncation: float | None, sigma_q: float | None) -> float | None:
    """The validated parameter of Q: the truncation T (None: the default, which depends on d) or sigma_q."""
    if secondary not in SECONDARIES:
        raise ValueError(f"unknown secondary {secondary!r}; expected one of {list(SECONDARIES)}")
    unused = ("sigma_q", sigma_q) if secondary == "truncated" else ("truncation", truncation)
    if unused[1] is not None:
        raise ValueError(f"{unused[0]}={unused[1]!r} does not apply to secondary={secondary!r}")
    if secondary == "truncated":
        return None if truncation is None else _positive("truncation", truncation)
    param = DEFAULT_SCALE_RATIO * sigma if sigma_q is None else _positive("sigma_q", sigma_q)
    if not param < sigma:
        raise ValueError(f"sigma_q must be smaller than sigma={sigma}, got {param}")
    return param


@functools.lru_cache(maxsize=64)
def _generalized_bound(sigma: float, dim: int, k: float, secondary: str, param: float | None) -> _PolarBound:
    if not (dim >= 3 and k < (dim - 1) / 2):
        raise ValueError(f"the generalized Gaussian needs d >= 3 and 0 <= k < (d - 1)/2 (a finite Lipschitz "
                         f"constant), got k={k} for d={dim}")
    if secondary == "scaled":
        return ScaledGeneralizedDSRSBound(sigma, dim, k, param)
    if param is None:  # the T with P_k(||z|| <= T) = 1/2
        param = sigma * math.sqrt(dim / (dim - 2 * k)) * math.sqrt(2 * gammaincinv(dim / 2 - k, 0.5))
    return GeneralizedDSRSBound(sigma, dim, k, param)


def np_radius(p_lower: float, sigma: float, dim: int, k: float = 0.0) -> float:
    """The Neyman-Pearson l2 radius of the generalized Gaussian P_k (k = 0: sigma Phi^-1(pL)); 0 when pL <= 1/2."""
    sigma, k = _positive("sigma", sigma), _check_k(k)
    if not 0.0 <= p_lower <= 1.0:
        raise ValueError(f"p_lower must lie in [0, 1], got {p_lower}")
    if k == 0:
        return sigma * float(ndtri(p_lower)) if p_lower > 0.5 else 0.0
    return _generalized_bound(sigma, check_sample_size("dim", dim), k, "truncated", math.inf).np_radius(p_lower)


def dsrs_bound(sigma: float, dim: int, secondary: str = "truncated", truncation: float | None = None,
               sigma_q: float | None = None, k: float = 0.0) -> DSRSBound | _PolarBound:
    """The (cached) bound for these parameters, after validation: :class:`DSRSBound` for k = 0;
    :class:`GeneralizedDSRSBound` (truncated Q) or :class:`ScaledGeneralizedDSRSBound` (scaled Q) for k > 0.

    ``truncation=None`` means the T with P(||z|| <= T) = 1/2, ``sigma' sqrt(chi2_{d-2k} median)``;
    ``sigma_q=None`` means 0.8 sigma (the paper's CIFAR-10 ratio; for k > 0, Q is P_k at sigma_q).
    """
    k = _check_k(k)
    sigma, dim = _positive("sigma", sigma), check_sample_size("dim", dim)
    param = _secondary_param(sigma, secondary, truncation, sigma_q)
    if k > 0:
        return _generalized_bound(sigma, dim, k, secondary, param)
    return _gaussian_bound(sigma, dim, secondary, param)


@functools.lru_cache(maxsize=64)
def _gaussian_bound(sigma: float, dim: int, secondary: str, param: float | None) -> DSRSBound:
    if secondary == "truncated":
        param = sigma * math.sqrt(2 * gammaincinv(dim / 2, 0.5)) if param is None else param
        if gammainc(dim / 2, 0.5 * (param / sigma) ** 2) <= 0:
            raise ValueError(f"truncation={param} leaves the ball no P mass at d={dim} (sigma sqrt(d) = "
                             f"{sigma * math.sqrt(dim):.4g})")
    return DSRSBound(sigma, dim, secondary, param)


def dsrs_radius(p_lower: float, p_upper: float, q_lower: float, q_upper: float, sigma: float, dim: int,
                secondary: str = "truncated", truncation: float | None = None, sigma_q: float | None = None,
                k: float = 0.0) -> float:
    """Certified l2 radius of DSRS from the intervals [pL, pU] (under P) and [qL, qU] (under Q).

    0 when pL <= 1/2; never below the Neyman-Pearson radius (sigma Phi^-1(pL) for k = 0, :func:`np_radius`).
    """
    for name, value in (("p_lower", p_lower), ("p_upper", p_upper), ("q_lower", q_lower), ("q_upper", q_upper)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    if p_lower > p_upper or q_lower > q_upper:
        raise ValueError(f"need p_lower <= p_upper and q_lower <= q_upper, got [{p_lower}, {p_upper}], "
                         f"[{q_lower}, {q_upper}]")
    return dsrs_bound(sigma, dim, secondary, truncation, sigma_q, k).radius(p_lower, p_upper, q_lower, q_upper)


@register
class DSRS(BatchCertifier):
    """DSRS CERTIFY: n0 selection samples of P, then n samples each of P and Q (see the module docstring)."""

    name = "dsrs"
    summary = "double sampling RS: a second noise Q (truncated or scaled) tightens the (generalized) Gaussian l2 radius"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 50_000, alpha: float = 0.001,
                 secondary: str = "truncated", truncation: float | None = None, sigma_q: float | None = None,
                 k: float = 0.0, batch_size: int = 1000, device=None):
        self.n0, self.n = check_selection_and_estimation(n0, n)
        self.alpha = check_alpha(alpha)
        self.sigma = _positive("sigma", sigma)
        self.k = _check_k(k)
        bound = dsrs_bound(self.sigma, 1, secondary, truncation, sigma_q)  # validates; dim 1 stands in for d
        self.secondary, self.truncation = secondary, truncation
        self.sigma_q = bound.param if secondary == "scaled" else None
        self.batch_size = check_sample_size("batch_size", batch_size)
        self._set_model(model, num_classes, device)
        self.primary = self._sampler(GeneralizedGaussian(self.sigma, self.k) if self.k else Gaussian(self.sigma))

    def _sampler(self, noise: NoiseDistribution) -> Sampler:
        return Sampler(self.model, noise, self.num_classes, self.batch_size, self.device)

    def bound(self, dim: int) -> DSRSBound | _PolarBound:
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
        top = self.primary.counts(xs, self.n0, generator).argmax(dim=1)
        count_p = self.primary.counts(xs, self.n, generator).gather(1, top[:, None]).squeeze(1).numpy()
        counts_q = self._sampler(self.secondary_noise(dim)).counts(xs, self.n, generator)
        count_q = counts_q.gather(1, top[:, None]).squeeze(1).numpy()
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
        return {"sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha, "secondary": self.secondary,
                "truncation": self.truncation, "sigma_q": self.sigma_q, **({"k": self.k} if self.k else {})}
