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

The generalized Gaussian primary P_k (``k > 0``, with the truncated Q) is
:class:`GeneralizedDSRSBound`; k = 0 keeps the code above.

Deviations from the official code: c_A comes from n0 selection samples (the
official code counts the true label), and the truncation T is fixed per
dimension (default: the T with P(||z|| <= T) = 1/2) instead of the paper's
heuristic that picks it from the estimated pA.  For k > 0 only the truncated
Q is implemented (the paper's CIFAR-10 runs use P_k at a smaller scale).
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
from scipy.special import betainc, gammainc, gammaincc, gammainccinv, gammaincinv, gammaln, ndtr, ndtri, wrightomega

from rsscale.bounds import check_alpha, clopper_pearson_interval
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import Certifier, register
from rsscale.noise import Gaussian, GeneralizedGaussian, NoiseDistribution, TruncatedGaussian, convert_radius
from rsscale.sampling import Sampler, resolve_device
from rsscale.smooth import check_inputs, check_sample_size, check_selection_and_estimation

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


#: Panel ends in the radial quantile u: 24 even panels, graded to 1e-14 towards both ends.
_U_TAILS = 10.0 ** -np.arange(14.0, 1.0, -1)
_U_GRID = np.concatenate([[0.0], _U_TAILS, np.linspace(0.02, 0.98, 25), 1 - _U_TAILS[::-1], [1.0]])
_GL_X, _GL_W = np.polynomial.legendre.leggauss(10)
_GL_T, _GL_W = (_GL_X + 1) / 2, _GL_W / 2


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


class GeneralizedDSRSBound:
    """DSRS for the generalized Gaussian primary P_k (density ~ ||z||^(-2k) exp(-||z||^2 / (2 sigma'^2)),
    sigma' = sigma sqrt(d / (d - 2k)); :class:`rsscale.noise.GeneralizedGaussian`) and Q = P_k on the ball
    ||z|| <= T (Li et al. 2022, Sec. 4 and App. E; Zhang et al., NeurIPS 2020, for P_k's NP radius).

    The ratio p(z - r e_1) / p(z) depends on ||z|| and ||z - r e_1||, so every set is described in polar
    coordinates: for ``rho = ||z||``, ``Lambda > c`` iff ``||z - r e_1||^2 > rho^2 + D(rho; c)`` with
    ``k ln(1 + D / rho^2) + D / (2 sigma'^2) = c`` (D = 2 sigma'^2 k (W(e^y) - x), x = rho^2 / (2 sigma'^2 k),
    y = ln x + x + c / k, W the Lambert function: scipy's ``wrightomega``; one Newton step polishes it), iff
    ``cos(z, e_1) < (r^2 - D) / (2 r rho)``.  The cosine has the law 2 Beta((d-1)/2, (d-1)/2) - 1 independently
    of rho, and ``rho^2 / (2 sigma'^2) ~ Gamma((d - 2k)/2)``, so every mass is a 1-D integral over the radial law
    of a Beta CDF, computed by Gauss-Legendre panels in the radial quantile u (graded towards u = 0 and 1, split
    at T and at the kinks of the shifted-mass integrand).  The shifted mass ``P(A - r e_1)`` is the same integral
    for y = z - r e_1: ``y in A - r e_1`` iff ``||y + r e_1|| < v_in(||y||)`` inside the ball or
    ``T < ||y + r e_1|| < v_out(||y||)``, ``v^2 = rho^2 + D(rho; -c)``.

    As for the Gaussian (:class:`DSRSBound`), the truncated Q splits the problem: the worst set is the NP set
    (P mass pL) when its Q mass meets [qL, qU], else its ball part has P mass Z q_B (q_B the binding bound) and
    the outside part max(pL - Z q_B, 0); here each part's level c is found for every r.  The NP radius and the
    DSRS radius come from the same Lipschitz walk (``S > 1/2`` on ``[r, r + (S(r) - 1/2) / L)``) with L the
    density of z_1 at 0, ``Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) E[1 / rho]``, finite for d - 2k > 1; no
    monotonicity of S in r is assumed.  k = 0 gives the Gaussian (tests compare with :class:`DSRSBound`).
    """

    def __init__(self, sigma: float, dim: int, k: float, truncation: float = math.inf):
        self.sigma, self.dim, self.k, self.param = float(sigma), int(dim), float(k), float(truncation)
        nu = self.dim - 2 * self.k
        self.scale = self.sigma * math.sqrt(self.dim / nu)
        self.shape, self.beta = nu / 2, (self.dim - 1) / 2
        self.ball_mass = float(gammainc(self.shape, 0.5 * (self.param / self.scale) ** 2))
        self.secondary = "truncated"
        self.inside = self._radial_nodes(0.0, self.ball_mass)
        self.outside = self._radial_nodes(self.ball_mass, 1.0)
        self.everywhere = tuple(np.concatenate(pair) for pair in zip(self.inside, self.outside, strict=True))
        log_cos_density = gammaln(self.dim / 2) - gammaln(self.beta) - 0.5 * math.log(math.pi)
        log_inverse_rho = gammaln(self.shape - 0.5) - gammaln(self.shape) - 0.5 * math.log(2) - math.log(self.scale)
        self.lipschitz = math.exp(log_cos_density + log_inverse_rho)
        self.xtol = 1e-13
        self._last_level = {}  # a root-finding warm start only: the levels themselves do not depend on it
        self.np_radius = functools.lru_cache(maxsize=1024)(self._np_radius)
        self.radius = functools.lru_cache(maxsize=4096)(self._radius)  # counts repeat across inputs

    # ---- geometry ------------------------------------------------------------------------
    def _radial_nodes(self, lo: float, hi: float, breaks=()):
        """(rho^2, weights) of composite Gauss-Legendre in the radial quantile u on [lo, hi], split at breaks."""
        edges = np.unique(np.clip(np.concatenate([_U_GRID, [lo, hi], list(breaks)]), lo, hi))
        if len(edges) < 2:
            return np.empty(0), np.empty(0)
        width = np.diff(edges)[:, None]
        u = (edges[:-1, None] + width * _GL_T).ravel()
        w = (width * _GL_W).ravel()
        t = np.where(u < 0.5, gammaincinv(self.shape, np.minimum(u, 0.5)),
                     gammainccinv(self.shape, np.minimum(1 - u, 0.5)))
        return 2 * self.scale**2 * t, w

    def _u(self, rho2):
        return float(gammainc(self.shape, rho2 / (2 * self.scale**2)))

    def gap(self, rho2, c):
        """D(rho; c) with ``k ln(1 + D / rho^2) + D / (2 sigma'^2) = c`` (-rho^2 at c = -inf, inf at c = inf)."""
        rho2 = np.asarray(rho2, dtype=float)
        if c == math.inf:
            return np.full_like(rho2, math.inf)
        if c == -math.inf:
            return -rho2
        two_s2 = 2 * self.scale**2
        if self.k == 0:
            return np.full_like(rho2, two_s2 * c)
        x = rho2 / (two_s2 * self.k)
        gap = two_s2 * self.k * (wrightomega(np.log(x) + x + c / self.k) - x)
        gap = np.maximum(gap, -rho2 * (1 - 1e-16))
        residual = self.k * np.log1p(gap / rho2) + gap / two_s2 - c
        polished = gap - residual / (self.k / (rho2 + gap) + 1 / two_s2)
        return np.where(np.isfinite(polished) & (polished > -rho2), polished, gap)

    def _cos_cdf(self, tau):
        """P(cos(z, e_1) < tau)."""
        return betainc(self.beta, self.beta, np.clip((1 + tau) / 2, 0.0, 1.0))

    def _saturations(self, rho2, taus):
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
            found += [self._u(x) for x in (lo + hi) / 2]
        return found

    def _part_mass(self, nodes, radius, c):
        """P(Lambda > c, rho in the part the nodes cover)."""
        rho2, w = nodes
        if c == math.inf or not len(w):
            return 0.0
        tau = lambda x: (radius**2 - self.gap(x, c)) / (2 * radius * np.sqrt(x))  # noqa: E731
        breaks = self._saturations(rho2, tau)
        if breaks:
            lo, hi = (0.0, self.ball_mass) if nodes is self.inside else \
                (self.ball_mass, 1.0) if nodes is self.outside else (0.0, 1.0)
            rho2, w = self._radial_nodes(lo, hi, breaks)
        return float(w @ self._cos_cdf(tau(rho2)))

    def _level(self, nodes, radius, mass):
        """The c with ``P(Lambda > c, part) = mass`` (decreasing in c)."""
        total = float(nodes[1].sum())
        if mass <= 0:
            return math.inf
        if mass >= total:
            return -math.inf
        f = lambda c: self._part_mass(nodes, radius, c) - mass  # noqa: E731
        guess = self._last_level.get(id(nodes), 0.0)  # the walk's previous level: a tight bracket
        width = 1e-3 * (1.0 + abs(guess))
        lo, hi = guess - width, guess + width
        f_lo, f_hi = f(lo), f(hi)
        while f_lo < 0:
            lo, hi, f_hi = lo - 4 * (hi - lo), lo, f_lo
            f_lo = f(lo)
        while f_hi > 0:
            lo, hi, f_lo = hi, hi + 4 * (hi - lo), f_hi
            f_hi = f(hi)
        level = lo if f_lo == 0 else hi if f_hi == 0 else brentq(f, lo, hi, xtol=self.xtol, rtol=1e-15)
        self._last_level[id(nodes)] = level
        return level

    def shifted_mass(self, radius, c_in, c_out) -> float:
        """``P(A - r e_1)`` for the set with levels c_in (ball) and c_out (outside)."""
        t2, r = self.param**2, radius
        kinks = [self._u(t2 + float(self.gap(np.array([t2]), c)[0])) for c in (c_in, c_out)
                 if math.isfinite(t2) and math.isfinite(c)]
        # cos(y, e_1) < tau iff ||y + r e_1||^2 < v^2, for v^2 = T^2, v_in^2 = rho^2 + D(rho; -c_in) and v_out^2
        def taus(x):
            v2 = [np.full_like(x, t2), x + self.gap(x, -c_in), x + self.gap(x, -c_out)]
            with np.errstate(over="ignore"):
                return np.stack([(np.minimum(v, 1e300) - x - r**2) / (2 * r * np.sqrt(x)) for v in v2])

        rho2, w = self._radial_nodes(0.0, 1.0, kinks)
        kinks += self._saturations(rho2, taus)
        rho2, w = self._radial_nodes(0.0, 1.0, kinks)
        at_t, at_in, at_out = taus(rho2)
        inside = self._cos_cdf(np.minimum(at_in, at_t))
        outside = np.maximum(self._cos_cdf(at_out) - self._cos_cdf(at_t), 0.0)
        return float(w @ (inside + outside))

    # ---- worst cases and radii -----------------------------------------------------------
    def np_case(self, p_lower, radius, shifted: bool = True) -> GeneralizedCase:
        """The Neyman-Pearson set {Lambda > c} with P mass pL, at radius r (shifted mass nan unless asked)."""
        c = self._level(self.everywhere, radius, p_lower)
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
        c_in, c_out = self._level(self.inside, radius, m_in), self._level(self.outside, radius, m_out)
        return GeneralizedCase(radius, c_in, c_out, m_in + m_out, m_in / z, self.shifted_mass(radius, c_in, c_out))

    def _walk(self, value, start: float) -> float:
        """Largest r reached from ``start`` by steps ``(value(r) - 1/2 - MARGIN) / L`` (value > 1/2 on [start, r])."""
        radius = start
        for _ in range(_WALK_STEPS):
            step = (value(radius) - 0.5 - MARGIN) / self.lipschitz
            if step <= _WALK_TOL * self.sigma:
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
        return self._walk(lambda r: self.worst_case(p_lower, p_upper, q_lower, q_upper, r).shifted_mass, r_np)


def _check_k(k, secondary: str = "truncated") -> float:
    try:
        number = math.nan if isinstance(k, bool) else float(k)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    if number > 0 and secondary != "truncated":
        raise ValueError(f"the generalized Gaussian (k={number}) is implemented with secondary='truncated' only, "
                         f"got secondary={secondary!r}")
    return number


@functools.lru_cache(maxsize=64)
def _generalized_bound(sigma: float, dim: int, k: float, truncation: float | None) -> GeneralizedDSRSBound:
    if not (dim >= 3 and k < (dim - 1) / 2):
        raise ValueError(f"the generalized Gaussian needs d >= 3 and 0 <= k < (d - 1)/2 (a finite Lipschitz "
                         f"constant), got k={k} for d={dim}")
    if truncation is None:  # the T with P_k(||z|| <= T) = 1/2
        truncation = sigma * math.sqrt(dim / (dim - 2 * k)) * math.sqrt(2 * gammaincinv(dim / 2 - k, 0.5))
    return GeneralizedDSRSBound(sigma, dim, k, truncation)


def np_radius(p_lower: float, sigma: float, dim: int, k: float = 0.0) -> float:
    """The Neyman-Pearson l2 radius of the generalized Gaussian P_k (k = 0: sigma Phi^-1(pL)); 0 when pL <= 1/2."""
    sigma, k = _positive("sigma", sigma), _check_k(k)
    if not 0.0 <= p_lower <= 1.0:
        raise ValueError(f"p_lower must lie in [0, 1], got {p_lower}")
    if k == 0:
        return sigma * float(ndtri(p_lower)) if p_lower > 0.5 else 0.0
    return _generalized_bound(sigma, check_sample_size("dim", dim), k, math.inf).np_radius(p_lower)


def dsrs_bound(sigma: float, dim: int, secondary: str = "truncated", truncation: float | None = None,
               sigma_q: float | None = None, k: float = 0.0) -> DSRSBound | GeneralizedDSRSBound:
    """The (cached) bound for these parameters, after validation: :class:`DSRSBound` for k = 0,
    :class:`GeneralizedDSRSBound` (truncated Q only) for k > 0.

    ``truncation=None`` means the T with P(||z|| <= T) = 1/2, ``sigma' sqrt(chi2_{d-2k} median)``;
    ``sigma_q=None`` means 0.8 sigma (the paper's CIFAR-10 ratio).
    """
    k = _check_k(k, secondary)
    if k > 0:
        sigma, dim = _positive("sigma", sigma), check_sample_size("dim", dim)
        if sigma_q is not None:
            raise ValueError(f"sigma_q={sigma_q!r} does not apply to secondary='truncated'")
        return _generalized_bound(sigma, dim, k, None if truncation is None else _positive("truncation", truncation))
    return _gaussian_bound(sigma, dim, secondary, truncation, sigma_q)


@functools.lru_cache(maxsize=64)
def _gaussian_bound(sigma: float, dim: int, secondary: str, truncation: float | None,
                    sigma_q: float | None) -> DSRSBound:
    sigma = _positive("sigma", sigma)
    dim = check_sample_size("dim", dim)
    if secondary not in SECONDARIES:
        raise ValueError(f"unknown secondary {secondary!r}; expected one of {list(SECONDARIES)}")
    unused = ("sigma_q", sigma_q) if secondary == "truncated" else ("truncation", truncation)
    if unused[1] is not None:
        raise ValueError(f"{unused[0]}={unused[1]!r} does not apply to secondary={secondary!r}")
    if secondary == "truncated":
        default = sigma * math.sqrt(2 * gammaincinv(dim / 2, 0.5))
        param = default if truncation is None else _positive("truncation", truncation)
        if gammainc(dim / 2, 0.5 * (param / sigma) ** 2) <= 0:
            raise ValueError(f"truncation={param} leaves the ball no P mass at d={dim} (sigma sqrt(d) = "
                             f"{sigma * math.sqrt(dim):.4g})")
    else:
        param = DEFAULT_SCALE_RATIO * sigma if sigma_q is None else _positive("sigma_q", sigma_q)
        if not param < sigma:
            raise ValueError(f"sigma_q must be smaller than sigma={sigma}, got {param}")
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
class DSRS(Certifier):
    """DSRS CERTIFY: n0 selection samples of P, then n samples each of P and Q (see the module docstring)."""

    name = "dsrs"
    summary = "double sampling RS: a second noise Q (truncated or scaled Gaussian) tightens the Gaussian l2 radius"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 50_000, alpha: float = 0.001,
                 secondary: str = "truncated", truncation: float | None = None, sigma_q: float | None = None,
                 k: float = 0.0, batch_size: int = 1000, device=None):
        self.n0, self.n = check_selection_and_estimation(n0, n)
        self.alpha = check_alpha(alpha)
        self.num_classes = check_sample_size("num_classes", num_classes)
        self.sigma = _positive("sigma", sigma)
        self.k = _check_k(k, secondary)
        bound = dsrs_bound(self.sigma, 1, secondary, truncation, sigma_q)  # validates; dim 1 stands in for d
        self.secondary, self.truncation = secondary, truncation
        self.sigma_q = bound.param if secondary == "scaled" else None
        self.batch_size = check_sample_size("batch_size", batch_size)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.input_shape = tuple(getattr(model, "input_shape", ()) or ()) or None
        self.primary = self._sampler(GeneralizedGaussian(self.sigma, self.k) if self.k else Gaussian(self.sigma))

    def _sampler(self, noise: NoiseDistribution) -> Sampler:
        return Sampler(self.model, noise, self.num_classes, self.batch_size, self.device)

    def bound(self, dim: int) -> DSRSBound:
        return dsrs_bound(self.sigma, dim, self.secondary, self.truncation, self.sigma_q, self.k)

    def secondary_noise(self, dim: int) -> NoiseDistribution:
        """Q for inputs of dimension ``dim``."""
        if self.secondary == "scaled":
            return Gaussian(self.sigma_q)
        if self.k:
            return GeneralizedGaussian(self.sigma, self.k, self.bound(dim).param)
        return TruncatedGaussian(self.sigma, self.bound(dim).param)

    def certify(self, x: torch.Tensor, generator=None) -> Certificate:
        check_inputs(x, self.input_shape, batched=False)
        return self.certify_many(x.unsqueeze(0), generator)[0]

    def certify_many(self, xs, generator=None) -> list[Certificate]:
        """DSRS CERTIFY for a batch; the inputs share forward passes, each gets its own samples and certificate."""
        if isinstance(xs, (list, tuple)):
            xs = torch.stack(list(xs))
        check_inputs(xs, self.input_shape, batched=True)
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
